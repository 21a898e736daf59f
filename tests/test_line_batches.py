"""Per-line values computed a batch at a time (timestamps, cursors, NDJSON objects) are exactly
what a line-by-line computation gives, for kubelet-like logs and for odd ones."""

from __future__ import annotations

import dataclasses
import json
import random

from shared.logs.controls import neutralised
from shared.logs.cursor import Cursor, rfc3339_nanos, timestamp_ns
from shared.logs.events import LogLines, Notice, merged
from shared.logs.line_cursors import ActiveEncoder
from shared.logs.stamps import stamps_ns
from shared.logs.tokens import Binding, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter, TextWriter

BASE = 1_764_000_000_000_000_000
ODD = [
    b"garbage",
    b"2026-12-03T10:00:00Z",
    b"2026-12-03T10:00:00.Z",
    b"2026-12-03T10:00:00.1Z2Z",
    b"2026-12-03T10:00:00.1234567891Z",
    b"2026-12-03T10:00:7x.1Z",
    b"2026-13-03T10:00:00.1Z",
    b"2026-12-03T10:00:60.5Z",
    b"2026-12-03T10:00:00.5",
    b"2026-12-03T10:00:000Z",
    b"2026-12-03T10:00:0.05Z",
    b"2026-12-03T10:00:00.5ZZ",
    b"",
    b"h\xc3\xa9Z",  # not ASCII, ending in `Z`: what a broken upstream may send where the stamp goes
    b"2026-12-03T10:00:0\xc3\xa9Z",
]


def kubelet_stamp(ns: int) -> bytes:
    """RFC3339Nano as Go writes it: trailing zeros of the fraction trimmed, no dot if none left."""
    text = rfc3339_nanos(ns)[:-1].rstrip("0").rstrip(".")
    return (text + "Z").encode()


def one_by_one(stamp: bytes) -> int:
    try:
        return timestamp_ns(stamp)
    except (ValueError, IndexError):
        return -1


def test_batch_timestamps_equal_the_strict_parse() -> None:
    rng = random.Random(3)
    for trial in range(400):
        n = rng.randrange(1, 300)
        start = BASE + rng.getrandbits(45)
        spread = 10 ** rng.randrange(2, 12)  # within a millisecond, up to across minutes
        stamps = [kubelet_stamp(v) for v in sorted(start + rng.randrange(spread) for _ in range(n))]
        if rng.random() < 0.2:
            stamps[rng.randrange(n)] = kubelet_stamp(start - start % 10**9)  # on a whole second
        if rng.random() < 0.3:
            stamps[rng.randrange(n)] = rng.choice(ODD)
        assert stamps_ns(stamps) == [one_by_one(s) for s in stamps], trial
        trimmed = [s[:-1] for s in stamps]  # as a caller that cut each stamp at its `Z ` hands them
        assert stamps_ns(trimmed, zoned=False) == [one_by_one(s + b"Z") for s in trimmed], trial


def test_batch_active_parts_equal_the_line_by_line_encoding() -> None:
    rng = random.Random(4)
    for trial in range(200):
        others = {rng.getrandbits(32): (rng.randrange(3), Cursor(rng.getrandbits(60), rng.randrange(1, 300), 0))}
        key = rng.getrandbits(32)
        active = {**(others if rng.random() < 0.5 else {}), key: (rng.randrange(200), Cursor(5, 1))}
        encoder = ActiveEncoder(active, key, rng.getrandbits(32))
        n = rng.randrange(1, 400)
        ns = [rng.getrandbits(62) for _ in range(n)]
        same = [rng.randrange(1, 128 if trial % 4 else 300) for _ in range(n)]
        assert encoder.texts(ns, same) == [encoder.text(a, b) for a, b in zip(ns, same, strict=True)], trial


def _event(rng: random.Random, previous: int) -> tuple[LogLines, list[bytes], list[bytes]]:
    n = rng.randrange(1, 200)
    values = []
    for _ in range(n):
        previous += rng.choice([0, 0, 1, 999, 37_123, 10**9])  # lines share timestamps too
        values.append(previous)
    stamps = [kubelet_stamp(v) for v in values]
    alphabet = b"abc xyz 0123456789-=:/" + (b'"\\\x1b\t\r\xc3\xa9\xff' if rng.random() < 0.4 else b"")
    contents = [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) for _ in range(n)]
    data = b"".join(s + b" " + c + b"\n" for s, c in zip(stamps, contents, strict=True))
    return LogLines("build", "compile", data, n, Cursor(values[-1], 1), True, 1, "pod-1", 0), stamps, contents


def _expected_positions(stamps: list[bytes], start: Cursor) -> list[Cursor]:
    out, ns, same = [], start.ns, start.same
    for stamp in stamps:
        value = timestamp_ns(stamp)
        same, ns = (same + 1 if value == ns else 1), value
        out.append(Cursor(ns, same))
    return out


def test_ndjson_and_text_cursors_name_each_line_exactly() -> None:
    rng = random.Random(5)
    binding = Binding.of("uid-1")
    ndjson, text = Tracker(binding), Tracker(binding)
    ndjson_writer, text_writer = NdjsonWriter(ndjson), TextWriter(tracker=text, cursors=True, timestamps=True)
    position, previous, stable = Cursor(), BASE, ""
    for _ in range(60):
        event, stamps, contents = _event(rng, previous)
        expected = _expected_positions(stamps, position)
        event = dataclasses.replace(event, cursor=expected[-1])
        objects = [json.loads(line) for line in ndjson_writer.write(event).splitlines()]
        assert [o["timestamp"] for o in objects] == [s.decode() for s in stamps]
        assert [o["line"] for o in objects] == [c.decode("utf-8", "replace") for c in contents]
        assert [decode(o["cursor"], binding).position("pod-1") for o in objects] == [(0, c) for c in expected]
        lines = text_writer.write(event).splitlines()
        for line, stamp, content, cursor in zip(lines, stamps, contents, expected, strict=True):
            token, _, rest = line.partition(b" ")
            stable = token.split(b".")[0].decode() or stable
            assert decode(stable + "." + token.decode().split(".")[1], binding).position("pod-1") == (0, cursor)
            assert rest == b"[build : compile] " + stamp + b" " + neutralised(content)
        position, previous = expected[-1], expected[-1].ns


def test_merged_events_write_what_the_separate_events_write() -> None:
    rng = random.Random(6)
    binding = Binding.of("uid-1")
    events: list = []
    previous, position = BASE, Cursor()
    for i in range(12):
        event, stamps, _ = _event(rng, previous)
        expected = _expected_positions(stamps, position)
        cursor = expected[-1]
        if i == 5:  # the first piece of a long line: its cursor counts bytes, and must stay its own
            cursor = Cursor(cursor.ns, cursor.same, 7)
        events.append(dataclasses.replace(event, cursor=cursor))
        if i == 8:
            events.append(Notice("build", "a notice between runs of lines", key="n/1"))
        position, previous = cursor, cursor.ns
    joined = merged(events)
    assert len(joined) == 4  # lines 0-5 | 6-8 | the notice | 9-11
    assert sum(e.lines for e in joined if isinstance(e, LogLines)) == sum(
        e.lines for e in events if isinstance(e, LogLines)
    )
    for make in (
        lambda: NdjsonWriter(Tracker(binding)),
        lambda: TextWriter(tracker=Tracker(binding), cursors=True),
        lambda: TextWriter(tracker=Tracker(binding)),
    ):
        one, other = make(), make()
        assert b"".join(map(one.write, events)) == b"".join(map(other.write, joined))


def _hostile_event(rng: random.Random, previous: int) -> tuple[LogLines, list[bytes], list[bytes]]:
    """Lines a step could print: control characters, ESC sequences, quotes, backslashes, invalid
    UTF-8 and lone-surrogate bytes, `Z ` inside the text, very long lines, masked values; now and
    then a line without a timestamp or without the space after it."""
    n = rng.randrange(1, 150)
    hostile = rng.random() < 0.5
    alphabet = b"abc xyz 0123456789-=:/***" + (b'"\\\x00\x1b[2J\t\r\x7f\xc3\xa9\xff\xed\xa0\x80Z %' if hostile else b"")
    rows = []
    for _ in range(n):
        previous += rng.choice([0, 1, 999, 10**9, 61 * 10**9])
        stamp = kubelet_stamp(previous) if rng.random() > 0.02 else rng.choice(ODD)
        content = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 4000 if rng.random() < 0.02 else 90)))
        rows.append(stamp + (b" " if rng.random() > 0.01 else b"") + content + b"\n")
    event = LogLines('build "x"', "comp\\ile", b"".join(rows), n, Cursor(previous, 1), True, 1, "pod-1", 0)
    return event, rows, [stamp for stamp, _ in event.split()]  # a line without its space: no stamp


def test_batch_writers_write_what_one_line_events_write() -> None:
    """A whole read written at once is byte for byte the lines written one event each (the
    line-by-line path: one JSON object and one cursor encoded per line), resumed or not."""
    rng = random.Random(7)
    binding = Binding.of("uid-1")
    earlier = Tracker(binding)
    earlier.advance("pod-0", 2, Cursor(BASE - 10**9, 3))
    point = decode(earlier.token(), binding)
    makers = [
        lambda tracker: NdjsonWriter(tracker),
        lambda tracker: NdjsonWriter(None),
        lambda tracker: TextWriter(tracker=tracker, cursors=True),
        lambda tracker: TextWriter(tracker=tracker, cursors=True, timestamps=True),
    ]
    for make in makers:
        for start in (None, point):
            whole, single = make(Tracker(binding, start)), make(Tracker(binding, start))
            position, previous = Cursor(), BASE
            for trial in range(25):
                event, rows, stamps = _hostile_event(rng, previous)
                ends = _ends(stamps, position)  # each line's own event ends where the line does
                event = dataclasses.replace(event, cursor=ends[-1])
                pairs = zip(rows, ends, strict=True)
                one_each = [dataclasses.replace(event, data=row, lines=1, cursor=end) for row, end in pairs]
                assert whole.write(event) == b"".join(map(single.write, one_each)), trial
                position, previous = ends[-1], max(previous, ends[-1].ns)


def _ends(stamps: list[bytes], position: Cursor) -> list[Cursor]:
    """Where the container's log stands after each line: a line without a timestamp moves nothing."""
    out = []
    for stamp in stamps:
        value = one_by_one(stamp)
        if value >= 0:
            position = Cursor(value, position.same + 1 if value == position.ns else 1)
        out.append(position)
    return out


def test_ndjson_line_whose_first_word_is_no_ascii_stamp_has_no_timestamp() -> None:
    """A line without the kubelet's timestamp whose first word has bytes beyond ASCII and ends in
    `Z` (a broken upstream) is written, batch or not, with no timestamp and its whole text as the
    line; its cursor stays where the line before left it, and the other lines are as ever."""
    binding = Binding.of("uid-1")
    for odd in (b"h\xc3\xa9Z", b"\xffZ", b"2026-12-03T10:00:0\xc3\xa9Z", b"2026-12-03T10:00:00.12\xffZ"):
        for n in (3, 12):  # the line-by-line path and the batch path
            stamps = [kubelet_stamp(BASE + i * 1000) for i in range(n)]
            rows = [stamp + b" line %d\n" % i for i, stamp in enumerate(stamps)]
            rows[1] = odd + b" world\n"
            ends = _ends([s if i != 1 else b"" for i, s in enumerate(stamps)], Cursor())
            event = LogLines("build", "compile", b"".join(rows), n, ends[-1], True, 1, "pod-1", 0)
            for tracker in (Tracker(binding), None):
                objects = [json.loads(line) for line in NdjsonWriter(tracker).write(event).splitlines()]
                assert len(objects) == n, (odd, n)
                assert objects[1]["timestamp"] is None
                assert objects[1]["line"] == (odd + b" world").decode("utf-8", "replace")
                others = [o for i, o in enumerate(objects) if i != 1]
                assert [o["timestamp"] for o in others] == [s.decode() for i, s in enumerate(stamps) if i != 1]
                assert [o["line"] for o in others] == [f"line {i}" for i in range(n) if i != 1]
                if tracker is not None:
                    got = [decode(o["cursor"], binding).position("pod-1") for o in objects]
                    assert got == [(0, c) for c in ends], (odd, n)


def test_a_z_inside_a_stamp_is_no_padding() -> None:
    """A batch parse pads stamps with `Z`: a `Z` of the stamp's own (`…00.5ZZ`) must not pass for
    padding, as the line-by-line parse refuses it."""
    minute = [b"2026-12-03T10:00:%02d.5Z" % i for i in range(8)]
    for odd in (b"2026-12-03T10:00:00.5ZZ", b"2026-12-03T10:00:00.Z5Z", b"2026-12-03T10:00:00ZZ"):
        stamps = [*minute, odd]
        assert stamps_ns(stamps) == [one_by_one(s) for s in stamps], odd
        trimmed = [s[:-1] for s in stamps]
        assert stamps_ns(trimmed, zoned=False) == [one_by_one(s + b"Z") for s in trimmed], odd
