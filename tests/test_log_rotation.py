"""A live follow checked against the first lines of the kubelet's log files
(shared/logs/file_starts.py): a lagging follow that steps over a rotated file is caught where it
happens, a follow stuck on a rotated file is reopened. The kubelet's side is on the real node:
tests/test_real_pods.py."""

from __future__ import annotations

import threading

import pytest

from shared.logs import file_starts
from shared.logs.cursor import Cursor, rfc3339_nanos
from shared.logs.file_starts import LAG_NS, FileStarts
from shared.logs.lines import LineSplitter, Piece

SECOND = 1_000_000_000
T0 = 1_780_000_000 * SECOND


def stamped(*numbers: int) -> bytes:
    """Log lines as the kubelet sends them, line `n` stamped T0 + n ms."""
    return b"".join(b"%s line %d\n" % (rfc3339_nanos(T0 + n * 1_000_000).encode(), n) for n in numbers)


class Node:
    """The clocks and the current log file's first line, as a lagging follow would see them."""

    def __init__(self) -> None:
        self.wall = T0 + 60 * SECOND  # the follow's lines are a minute old: it lags
        self.head = b""
        self.looks = 0
        self.gaps: list[tuple[int, int]] = []
        self.done = threading.Event()  # set once `looks_left` is used up (None: never)
        self.looks_left: int | None = None

    def starts(self) -> FileStarts:
        return FileStarts(self._head, lambda a, b: self.gaps.append((a, b)), lambda: self.wall)

    def _head(self) -> bytes:
        if self.looks_left is not None and self.looks >= self.looks_left:
            self.done.set()
        self.looks += 1
        return self.head


def follow(starts: FileStarts, data: bytes, cursor: Cursor) -> tuple[list[Piece], Cursor]:
    """Passes one read's pieces through `starts`, as the container reader does."""
    out: list[Piece] = []
    for piece in LineSplitter(cursor).feed(data):
        if piece.cursor.ns >= starts.next_ns:
            starts.pass_on(piece, cursor, out.append)
        else:
            out.append(piece)
        cursor = out[-1].cursor
    return out, cursor


def test_a_follow_that_skips_a_file_gets_a_gap_where_it_skipped() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2, 3))[-1].cursor
    node.head = stamped(100)[:64]  # the kubelet rotated: the current file begins with line 100
    starts.look(cursor)
    # The follow goes from line 5 straight to line 200: the file beginning with line 100 was never read.
    pieces, cursor = follow(starts, stamped(4, 5, 200, 201), cursor)
    assert b"".join(p.data for p in pieces) == stamped(4, 5, 200, 201)
    assert [p.data for p in pieces] == [stamped(4, 5), stamped(200, 201)]
    assert node.gaps == [(T0 + 5_000_000, T0 + 200_000_000)]
    # The first part's cursor is the one its own last line gives.
    assert pieces[0].cursor == LineSplitter(Cursor()).feed(stamped(4, 5))[-1].cursor
    assert cursor == pieces[-1].cursor and cursor.ns == T0 + 201_000_000
    assert starts.next_ns > cursor.ns  # checked once


def test_a_follow_that_reads_the_next_file_from_its_first_line_has_no_gap() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    node.head = stamped(100)
    starts.look(cursor)
    pieces, _ = follow(starts, stamped(98, 99, 100, 101), cursor)
    assert b"".join(p.data for p in pieces) == stamped(98, 99, 100, 101)
    assert len(pieces) == 1 and node.gaps == []


def test_a_gap_at_a_pieces_first_line_and_two_files_skipped() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    for first in (100, 200):
        node.head = stamped(first)
        starts.look(cursor)
    pieces, _ = follow(starts, stamped(300, 301), cursor)
    assert [p.data for p in pieces] == [stamped(300, 301)]
    assert node.gaps == [(T0 + 1_000_000, T0 + 300_000_000)]  # one gap for both files


def test_looks_only_while_the_follow_lags() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    node.head = stamped(100)
    node.wall = cursor.ns + LAG_NS - 1  # keeping up: the kubelet follows the current file itself
    starts.look(cursor)
    assert node.looks == 0
    node.wall = cursor.ns + LAG_NS
    starts.look(cursor)
    assert node.looks == 1 and starts.next_ns == T0 + 100_000_000


def test_the_watch_looks_only_while_the_follow_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_starts, "LOOK_EVERY", 0.001)
    node, done = Node(), threading.Event()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    busy = iter([False, False, True, False, True])
    node.head = stamped(100)

    def is_busy() -> bool:
        value = next(busy, None)
        if value is None:
            done.set()
        return bool(value)

    starts.watch(done, lambda: cursor, is_busy, lambda: False, done.set)
    assert node.looks == 2  # a quiet container's follow costs no requests


def test_a_file_start_learnt_after_the_follow_passed_it_makes_no_gap() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    node.head = stamped(100)
    starts.look(cursor)  # the reader went on meanwhile: its cursor is past line 100 already
    passed = LineSplitter(Cursor()).feed(stamped(150))[-1].cursor
    pieces, _ = follow(starts, stamped(151, 152), passed)
    assert [p.data for p in pieces] == [stamped(151, 152)] and node.gaps == []


def test_a_file_start_the_follow_passed_already_or_an_unreadable_head_is_ignored() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2, 3))[-1].cursor
    for head in (stamped(2), b"", b"unable to retrieve container logs", b"\xff\xfe garbage"):
        node.head = head
        starts.look(cursor)
    assert node.looks == 4
    pieces, _ = follow(starts, stamped(4, 500), cursor)
    assert [p.data for p in pieces] == [stamped(4, 500)] and node.gaps == []


def _idle_watch(node: Node, starts: FileStarts, cursor: Cursor, looks: int) -> list[str]:
    """Runs the watch on an idle follow until it reopens it or has looked `looks` times."""
    said: list[str] = []
    node.looks_left = looks
    starts.watch(node.done, lambda: cursor, lambda: False, lambda: True, lambda: said.append("reopen"))
    return said


def test_a_follow_stuck_on_a_rotated_file_is_reopened_where_it_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_starts, "LOOK_EVERY", 0.001)
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2))[-1].cursor
    node.head = stamped(3)  # idle, while the current file begins after the last line delivered
    assert _idle_watch(node, starts, cursor, looks=10) == ["reopen"]
    assert node.looks == 2  # once more first: the line may have been on its way
    assert starts.resumes_at == T0 + 3_000_000  # the next file: a read beginning with it lost nothing


def test_a_stuck_follow_that_skipped_a_file_keeps_its_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_starts, "LOOK_EVERY", 0.001)
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2))[-1].cursor
    node.head = stamped(100)
    starts.look(cursor)  # learnt while it lagged: a file begins with line 100
    node.head = stamped(200)
    assert _idle_watch(node, starts, cursor, looks=10) == ["reopen"]
    assert starts.resumes_at == -1  # the file beginning with line 100 was never read


def test_an_idle_follow_at_the_current_files_end_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_starts, "LOOK_EVERY", 0.001)
    monkeypatch.setattr(file_starts, "IDLE_LOOK_MAX", 0.004)
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2))[-1].cursor
    node.head = stamped(1)  # a quiet container: its file holds the last line delivered
    assert _idle_watch(node, starts, cursor, looks=4) == []
    assert starts.resumes_at == -1


@pytest.mark.parametrize("cut", [0, 3, 7])
def test_a_follow_drops_lines_the_kubelet_sends_again(cut: int) -> None:
    """kubelet 1.20 reopening a rotated file twice sends the new file's lines again: a follow's
    splitter passes each line once, in order, wherever the repeat begins in what arrives."""
    sent = stamped(1, 2, 3, 4, 5) + stamped(3, 4, 5) + stamped(6, 7)
    splitter = LineSplitter(LineSplitter(Cursor()).feed(stamped(1))[-1].cursor, ordered=True)
    out = splitter.feed(sent[: cut * 25]) + splitter.feed(sent[cut * 25 :]) + splitter.finish()
    assert b"".join(p.data for p in out) == stamped(2, 3, 4, 5, 6, 7)
    assert sum(p.lines for p in out) == 6 and out[-1].cursor.ns == T0 + 7_000_000


def test_a_finished_containers_read_keeps_lines_as_they_come() -> None:
    sent = stamped(1, 2) + stamped(1)  # not a follow: nothing to take for a repeat
    assert b"".join(p.data for p in LineSplitter(Cursor()).feed(sent)) == sent


def test_stamps_with_trimmed_zeros_are_compared_as_times() -> None:
    """Go trims a stamp's trailing zeros: `...:05Z` < `...:05.1Z` < `...:05.12Z` < `...:06Z`."""
    stamps = [b"2026-12-03T19:03:05Z", b"2026-12-03T19:03:05.1Z", b"2026-12-03T19:03:05.12Z", b"2026-12-03T19:03:06Z"]
    sent = b"".join(b"%s line %d\n" % (stamp, i) for i, stamp in enumerate(stamps))
    in_order = LineSplitter(Cursor(), ordered=True).feed(sent)
    assert b"".join(p.data for p in in_order) == sent
    again = sent + b"%s line 1\n" % stamps[1] + b"2026-12-03T19:03:07Z line 4\n"
    out = LineSplitter(Cursor(), ordered=True).feed(again)
    assert b"".join(p.data for p in out) == sent + b"2026-12-03T19:03:07Z line 4\n"
