"""Resuming a container log without losing or repeating a line (pure parts)."""

from __future__ import annotations

from shared.logs.container import Cursor, _LineReader, timestamp_ns


def test_timestamp_parsing_handles_trimmed_fractions() -> None:
    assert timestamp_ns("2026-01-01T00:00:00Z") + 5 * 10**8 == timestamp_ns("2026-01-01T00:00:00.5Z")
    assert timestamp_ns("2026-01-01T00:00:00.000000001Z") - timestamp_ns("2026-01-01T00:00:00Z") == 1


def test_resume_drops_exactly_what_was_delivered_even_with_equal_timestamps() -> None:
    stream = [
        ("2026-01-01T00:00:01Z", b"a"),
        ("2026-01-01T00:00:02.5Z", b"b1"),
        ("2026-01-01T00:00:02.5Z", b"b2"),
        ("2026-01-01T00:00:02.5Z", b"b3"),
        ("2026-01-01T00:00:03Z", b"c"),
    ]
    for cut in range(len(stream) + 1):
        cursor = Cursor()
        delivered = [line for ts, line in stream[:cut] if cursor.record(ts)]
        # The reopened stream starts at the cut's whole second (sinceTime is truncated), so it
        # repeats everything from that second on.
        since = stream[cut - 1][0][:19] if cut else ""
        replay = [(ts, line) for ts, line in stream if not since or ts[:19] >= since]
        resume = cursor.resume()
        delivered += [line for ts, line in replay if resume.accept(ts)]
        assert delivered == [line for _, line in stream], cut


def test_line_reader_splits_chunks_anywhere() -> None:
    data = b"2026-01-01T00:00:01Z hello\n2026-01-01T00:00:02Z w\xc3\xb6rld\n2026-01-01T00:00:03Z tail"
    for size in (1, 2, 3, 7, len(data)):
        cursor = Cursor()
        reader = _LineReader(cursor.record)
        out = []
        for i in range(0, len(data), size):
            out += reader.feed(data[i : i + size])
        out += reader.finish()
        assert [line for _, line in out] == [b"hello", "wörld".encode(), b"tail"]
        assert out[0][0] == "2026-01-01T00:00:01Z"
