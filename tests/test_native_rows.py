"""The compiled `shared.logs._rows` writes byte for byte what the Python writers write.

NDJSON and `cursors=true` text put a cursor on every line; where `pip install` had a C compiler,
`Tracker.rows` lays a whole batch out in one C pass, and the Python path (`_cells`, `stamps_ns`,
`ActiveEncoder.texts`, `_weave`) remains the reference and the fallback for anything the C pass
leaves to it. Here both write the same events, from the same resume point, and must give the same
bytes and the same token after every event: kubelet-like batches, hostile ones, timestamps on
the calendar's edges, and arbitrary bytes from Hypothesis.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.logs.cursor import Cursor
from shared.logs.events import LogLines
from shared.logs.line_cursors import CONTENT, PART, STAMP, native_rows
from shared.logs.tokens import Binding, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter, TextWriter, Writer
from tests.needs import need
from tests.test_line_batches import BASE, ODD, _ends, _event, _hostile_event, kubelet_stamp

BINDING = Binding.of("uid-1")


@pytest.fixture(autouse=True)
def _compiled() -> None:
    """`make install` builds it (setup.py) and the image ships it: CI must exercise it."""
    missing = None if native_rows is not None else "not built (pip install found no C compiler or Python headers)"
    need("shared.logs._rows", missing)


class PythonTracker(Tracker):
    """A tracker whose batches always take the Python path."""

    def rows(self, event: LogLines, template: tuple[bytes | int, ...], json: bool) -> bytes | None:
        return None


class CountingTracker(Tracker):
    """Counts the batches the C pass wrote."""

    native = 0

    def rows(self, event: LogLines, template: tuple[bytes | int, ...], json: bool) -> bytes | None:
        out = super().rows(event, template, json)
        CountingTracker.native += out is not None
        return out


MAKERS: list[Callable[[Tracker], Writer]] = [
    lambda tracker: NdjsonWriter(tracker),
    lambda tracker: TextWriter(tracker=tracker, cursors=True),
    lambda tracker: TextWriter(tracker=tracker, cursors=True, timestamps=True),
]


def _resume_point() -> object:
    earlier = Tracker(BINDING)
    earlier.advance("pod-0", 2, Cursor(BASE - 10**9, 3))
    earlier.attempt_done("pod-done")
    return decode(earlier.token(), BINDING)


def _pair(make: Callable[[Tracker], Writer], start: object) -> tuple[Writer, Tracker, Writer, Tracker]:
    native, python = CountingTracker(BINDING, start), PythonTracker(BINDING, start)  # type: ignore[arg-type]
    return make(native), native, make(python), python


@pytest.mark.parametrize("make", MAKERS, ids=["ndjson", "text cursors", "text cursors timestamps"])
@pytest.mark.parametrize("resumed", [False, True], ids=["fresh", "resumed"])
def test_kubelet_like_batches_are_written_alike(make: Callable[[Tracker], Writer], resumed: bool) -> None:
    rng = random.Random(11)
    native_writer, native, python_writer, python = _pair(make, _resume_point() if resumed else None)
    CountingTracker.native = 0
    position, previous = Cursor(), BASE
    for trial in range(60):
        event, stamps, _ = _event(rng, previous)
        ends = _ends(stamps, position)
        # Now and then the reader's end cursor is a long line's piece: the last line's cursor is it.
        end = ends[-1] if trial % 7 else Cursor(ends[-1].ns, ends[-1].same, 5)
        event = dataclasses.replace(event, cursor=end, pod=f"pod-{trial % 3}", index=trial % 2)
        assert native_writer.write(event) == python_writer.write(event), trial
        assert native.token() == python.token(), trial
        position, previous = end, end.ns
    # Content with quotes or control characters is NDJSON's to escape: Python does those.
    assert CountingTracker.native >= 30


@pytest.mark.parametrize("make", MAKERS, ids=["ndjson", "text cursors", "text cursors timestamps"])
def test_hostile_batches_are_written_alike(make: Callable[[Tracker], Writer]) -> None:
    rng = random.Random(12)
    native_writer, native, python_writer, python = _pair(make, None)
    position, previous = Cursor(), BASE
    for trial in range(80):
        event, _, stamps = _hostile_event(rng, previous)
        ends = _ends(stamps, position)
        event = dataclasses.replace(event, cursor=ends[-1])
        assert native_writer.write(event) == python_writer.write(event), trial
        assert native.token() == python.token(), trial
        position, previous = ends[-1], max(previous, ends[-1].ns)


CALENDAR = [
    b"1970-01-01T00:00:00Z",
    b"1970-01-01T00:00:00.000000001Z",
    b"1969-12-31T23:59:59.999999999Z",
    b"2024-02-29T12:00:00.5Z",
    b"2023-02-29T12:00:00.5Z",
    b"2000-02-29T00:00:00Z",
    b"2100-02-29T00:00:00Z",
    b"2026-04-31T00:00:00Z",
    b"2026-12-31T23:59:59.999999999Z",
    b"2026-12-03T24:00:00Z",
    b"2026-12-03T23:60:00Z",
    b"2026-12-03T23:59:60Z",
    b"2026-00-03T10:00:00Z",
    b"2026-12-00T10:00:00Z",
    b"2262-04-11T23:47:16.854775807Z",
    b"2262-04-11T23:47:16.854775808Z",
    b"9999-12-31T23:59:59.999999999Z",
    b"0000-01-01T00:00:00Z",
    b"2026-12-03t10:00:00Z",
    b"2026-12-03 10:00:00Z",
    b"+026-12-03T10:00:00Z",
    b"2026-1-03T10:00:00.5Z",
    b"2026-12-03T10:00:00.123456789Z",
    b"2026-12-03T10:00:00.1234567890Z",
    *ODD,
]


@pytest.mark.parametrize("make", MAKERS, ids=["ndjson", "text cursors", "text cursors timestamps"])
def test_timestamps_on_the_calendars_edges_are_read_alike(make: Callable[[Tracker], Writer]) -> None:
    for i, stamp in enumerate(CALENDAR):
        for lines in (1, 9):
            native_writer, native, python_writer, python = _pair(make, None)
            good = kubelet_stamp(BASE + 10**9 * i)
            rows = [good + b" before\n"] * (lines - 1) + [stamp + b" the line\n"]
            event = LogLines("build", "compile", b"".join(rows), lines, Cursor(BASE + 10**9 * i, 1), True, 0, "p", 0)
            assert native_writer.write(event) == python_writer.write(event), stamp
            assert native.token() == python.token(), stamp


_LINE = st.tuples(
    st.one_of(st.sampled_from(CALENDAR), st.binary(max_size=32)),
    st.sampled_from([b" ", b"", b"  ", b"Z "]),
    st.binary(max_size=64).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_LINE, min_size=1, max_size=40),
    make=st.sampled_from(MAKERS),
    ns=st.integers(0, 2**63 - 1),
    same=st.integers(1, 300),
    piece=st.integers(0, 300),
)
def test_arbitrary_bytes_are_written_alike(
    lines: list[tuple[bytes, bytes, bytes]], make: Callable[[Tracker], Writer], ns: int, same: int, piece: int
) -> None:
    data = b"".join(stamp + sep + content + b"\n" for stamp, sep, content in lines)
    event = LogLines("t", "s", data, len(lines), Cursor(ns, same, piece), True, 0, "pod", 1)
    native_writer, native, python_writer, python = _pair(make, None)
    assert native_writer.write(event) == python_writer.write(event)
    assert native.token() == python.token()


def test_bad_templates_are_errors_not_crashes() -> None:
    assert native_rows is not None
    data = kubelet_stamp(BASE) + b" x\n"
    args = (b"", b"", 0, -1, 0, BASE, 1, 0, True)
    assert native_rows(data, (b"[", STAMP, b"] ", CONTENT, b" ", PART, b"\n"), *args) is not None
    with pytest.raises(ValueError, match="unknown template item"):
        native_rows(data, (7,), *args)
    with pytest.raises(TypeError):
        native_rows(data, ("text",), *args)
    with pytest.raises(ValueError, match="template too long"):
        native_rows(data, (b"x",) * 17, *args)
    with pytest.raises(TypeError):
        native_rows("not bytes", (CONTENT,), *args)
    # What the C pass does not lay out is left to Python: None, never a guess.
    assert native_rows(b"no newline at the end", (CONTENT,), *args) is None
    assert native_rows(b"", (CONTENT,), *args) is None
    assert native_rows(data, (CONTENT,), b"", b"", 0, -1, 0, BASE, 128, 0, True) is None


@pytest.mark.parametrize("make", MAKERS, ids=["ndjson", "text cursors", "text cursors timestamps"])
def test_counts_of_lines_sharing_a_stamp_past_one_byte_are_left_to_python(make: Callable[[Tracker], Writer]) -> None:
    """Past 127 lines in a row with one timestamp a cursor's count takes two bytes: that batch is
    Python's, whether the count grows inside it or was already near the limit (a resumed stream)."""
    stamp = kubelet_stamp(BASE)
    for lines, start_same in ((130, 0), (5, 0x7E), (5, 0x7F), (1, 0x7F)):
        earlier = Tracker(BINDING)
        if start_same:
            earlier.advance("pod", 0, Cursor(BASE, start_same))
        point = decode(earlier.token(), BINDING)
        native_writer, native, python_writer, python = _pair(make, point)
        CountingTracker.native = 0
        data = b"".join(stamp + b" same stamp %d\n" % i for i in range(lines))
        end = Cursor(BASE, min(start_same + lines, 0x7F))
        event = LogLines("build", "compile", data, lines, end, True, 0, "pod", 0)
        assert native_writer.write(event) == python_writer.write(event), (lines, start_same)
        assert native.token() == python.token()
        assert CountingTracker.native == (start_same + lines - 1 < 0x80), (lines, start_same)


def test_a_failing_call_moves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error in the compiled pass (memory) leaves the tracker where it was: no token may name
    lines that did not go out."""
    import shared.logs.tracker as tracker_module

    def failing(*args: object) -> bytes:
        raise MemoryError

    tracker = Tracker(BINDING)
    before = tracker.token()
    monkeypatch.setattr(tracker_module, "native_rows", failing)
    event = LogLines("t", "s", kubelet_stamp(BASE) + b" x\n", 1, Cursor(BASE, 1), True, 0, "pod", 0)
    with pytest.raises(MemoryError):
        NdjsonWriter(tracker).write(event)
    assert tracker.token() == before
