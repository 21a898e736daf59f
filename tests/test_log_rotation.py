"""A lagging follow that steps over a rotated log file is caught where it happens
(shared/logs/rotation.py). The kubelet's side is on the real node: tests/test_real_pods.py."""

from __future__ import annotations

from shared.logs.cursor import Cursor, rfc3339_nanos
from shared.logs.lines import LineSplitter, Piece
from shared.logs.rotation import LAG_NS, LOOK_EVERY, FileStarts

SECOND = 1_000_000_000
T0 = 1_780_000_000 * SECOND


def stamped(*numbers: int) -> bytes:
    """Log lines as the kubelet sends them, line `n` stamped T0 + n ms."""
    return b"".join(b"%s line %d\n" % (rfc3339_nanos(T0 + n * 1_000_000).encode(), n) for n in numbers)


class Node:
    """The clocks and the current log file's first line, as a lagging follow would see them."""

    def __init__(self) -> None:
        self.wall = T0 + 60 * SECOND  # the follow's lines are a minute old: it lags
        self.clock = 0.0
        self.head = b""
        self.looks = 0
        self.gaps: list[tuple[int, int]] = []

    def starts(self) -> FileStarts:
        return FileStarts(self._head, lambda a, b: self.gaps.append((a, b)), lambda: self.wall, lambda: self.clock)

    def _head(self) -> bytes:
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
        node.clock += LOOK_EVERY
    pieces, _ = follow(starts, stamped(300, 301), cursor)
    assert [p.data for p in pieces] == [stamped(300, 301)]
    assert node.gaps == [(T0 + 1_000_000, T0 + 300_000_000)]  # one gap for both files


def test_looks_only_while_lagging_and_not_more_often_than_it_must() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1))[-1].cursor
    node.head = stamped(100)
    node.wall = cursor.ns + LAG_NS - 1  # keeping up: the kubelet follows the current file itself
    starts.look(cursor)
    assert node.looks == 0
    node.wall = cursor.ns + LAG_NS
    starts.look(cursor)
    starts.look(cursor)  # again within LOOK_EVERY: no second request
    assert node.looks == 1
    node.clock += LOOK_EVERY
    starts.look(cursor)
    assert node.looks == 2


def test_a_file_start_the_follow_passed_already_or_an_unreadable_head_is_ignored() -> None:
    node = Node()
    starts = node.starts()
    cursor = LineSplitter(Cursor()).feed(stamped(1, 2, 3))[-1].cursor
    for head in (stamped(2), b"", b"unable to retrieve container logs", b"\xff\xfe garbage"):
        node.head = head
        starts.look(cursor)
        node.clock += LOOK_EVERY
    assert node.looks == 4
    pieces, _ = follow(starts, stamped(4, 500), cursor)
    assert [p.data for p in pieces] == [stamped(4, 500)] and node.gaps == []
