"""Resuming a container log without losing or repeating a line (pure parts)."""

from __future__ import annotations

from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.lines import MAX_LINE, LineSplitter


def test_timestamp_parsing_handles_trimmed_fractions() -> None:
    assert timestamp_ns("2026-01-01T00:00:00Z") + 5 * 10**8 == timestamp_ns("2026-01-01T00:00:00.5Z")
    assert timestamp_ns("2026-01-01T00:00:00.000000001Z") - timestamp_ns("2026-01-01T00:00:00Z") == 1


def _contents(pieces: list) -> list[bytes]:
    out = []
    for piece in pieces:
        for row in piece.data.split(b"\n")[:-1]:
            out.append(row.partition(b" ")[2] if piece.stamped else row)
    return out


def _feed(splitter: LineSplitter, data: bytes, size: int) -> list:
    out = []
    for i in range(0, len(data), size):
        out += splitter.feed(data[i : i + size])
    return out


def test_resume_drops_exactly_what_was_delivered_even_with_equal_timestamps() -> None:
    stream = [
        ("2026-01-01T00:00:01Z", b"a"),
        ("2026-01-01T00:00:02.5Z", b"b1"),
        ("2026-01-01T00:00:02.5Z", b"b2"),
        ("2026-01-01T00:00:02.5Z", b"b3"),
        ("2026-01-01T00:00:03Z", b"c"),
    ]
    for cut in range(len(stream) + 1):
        for size in (1, 5, 1000):
            first = LineSplitter(Cursor())
            delivered = _contents(
                _feed(first, b"".join(f"{ts} ".encode() + line + b"\n" for ts, line in stream[:cut]), size)
            )
            # The reopened stream starts at the cut's whole second (sinceTime is truncated), so it
            # repeats everything from that second on.
            since = stream[cut - 1][0][:19] if cut else ""
            replay = [(ts, line) for ts, line in stream if not since or ts[:19] >= since]
            again = LineSplitter(first.cursor)
            raw = b"".join(f"{ts} ".encode() + line + b"\n" for ts, line in replay)
            delivered += _contents(_feed(again, raw, size) + again.finish())
            assert delivered == [line for _, line in stream], (cut, size)


def test_line_reader_splits_chunks_anywhere() -> None:
    data = b"2026-01-01T00:00:01Z hello\n2026-01-01T00:00:02Z w\xc3\xb6rld\n2026-01-01T00:00:03Z tail"
    for size in (1, 2, 3, 7, len(data)):
        reader = LineSplitter(Cursor())
        out = _feed(reader, data, size) + reader.finish()
        assert _contents(out) == [b"hello", "wörld".encode(), b"tail"]
        assert out[0].data.startswith(b"2026-01-01T00:00:01Z ")
        assert reader.cursor == Cursor(timestamp_ns("2026-01-01T00:00:03Z"), 1)


def test_cursor_counts_lines_sharing_the_last_timestamp_across_reads() -> None:
    same = b"2026-01-01T00:00:02.5Z "
    reader = LineSplitter(Cursor())
    reader.feed(b"2026-01-01T00:00:01Z a\n" + same + b"b\n")
    reader.feed(same + b"c\n" + same + b"d\n")
    assert reader.cursor == Cursor(timestamp_ns(same.strip()), 3)


def test_long_lines_cut_mid_piece_do_not_repeat_on_resume() -> None:
    long = b"x" * (MAX_LINE + 10) + b"y" * (MAX_LINE + 10) + b"z" * 100
    stamp = b"2026-01-01T00:00:05Z "
    raw = b"2026-01-01T00:00:04Z before\n" + stamp + long + b"\n2026-01-01T00:00:06Z after\n"
    whole = LineSplitter(Cursor())
    reference = b"".join(_contents(_feed(whole, raw, 65536) + whole.finish()))
    assert reference == b"before" + long + b"after"
    for cut in range(MAX_LINE, len(raw), 300_001):
        first = LineSplitter(Cursor())
        got = _feed(first, raw[:cut], 65536)  # the connection breaks here
        again = LineSplitter(first.cursor)
        got += _feed(again, raw, 65536) + again.finish()  # sinceTime of whole seconds: all again
        assert b"".join(_contents(got)) == reference, cut


def test_the_kubelets_own_words_at_the_end_are_not_a_line() -> None:
    """Seen on a real node: a pod deleted mid-follow ends its log with the kubelet's words."""
    kubelet = b"unable to retrieve container logs for containerd://da16f19d6ddc8204"
    data = b"2026-01-01T00:00:01.5Z one\n2026-01-01T00:00:02Z two\n" + kubelet + b"\n"
    for size in (1, 7, 1000):
        splitter = LineSplitter(Cursor())
        pieces = _feed(splitter, data, size) + splitter.finish()
        assert _contents(pieces) == [b"one", b"two"], size
        assert pieces[-1].cursor == Cursor(timestamp_ns("2026-01-01T00:00:02Z"), 1)
    # Without a newline, as the last bytes of the response.
    splitter = LineSplitter(Cursor())
    pieces = splitter.feed(data[:-1]) + splitter.finish()
    assert _contents(pieces) == [b"one", b"two"]
