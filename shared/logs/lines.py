"""A container log's bytes, in whatever pieces they arrive, cut into runs of whole lines.

The kubelet sends `<RFC 3339 time> <content>\\n` lines (`timestamps=true`). Runs of whole lines are
passed on as they are, found with `bytes.rfind`; only the last line's timestamp is parsed (for
the cursor). Lines at a resume boundary are looked at one by one until the stream has caught
up with its cursor: every line at or before it is dropped, and of a long line cut into pieces,
the bytes already delivered. A run of bytes without a newline longer than `MAX_LINE` is passed
on as a piece of its own, so one endless line cannot grow memory without bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.logs.cursor import Cursor, timestamp_ns

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024
_STAMP_MAX = 40  # an RFC3339Nano timestamp is at most 35 bytes: no space by then, no timestamp
# Go trims a stamp's trailing zeros (`...:05.1Z`, `...:05Z`): with `Z` below `.` and the digits,
# two stamps compare as bytes the way their times do.
_IN_TIME_ORDER = bytes.maketrans(b"Z", b"!")


@dataclass(frozen=True, slots=True)
class Piece:
    """Whole lines, each ending with a newline (a long line's pieces get one each)."""

    data: bytes
    lines: int
    stamped: bool  # each line starts with its timestamp (False: the rest of a long line)
    cursor: Cursor  # after these lines


def stamp_ns(data: bytes, start: int) -> int:
    """The timestamp of the line beginning at `start`, in ns (-1: it has none)."""
    space = data.find(b" ", start, start + _STAMP_MAX)
    try:
        return timestamp_ns(data[start:space]) if space > start else -1
    except ValueError:
        return -1


def cursor_after(block: bytes, before: Cursor, last: int, space: int, ns: int) -> Cursor:
    """The cursor once `block`'s whole stamped lines went out after `before`; its last line
    starts at `last` and is stamped `ns` (the stamp ends at `space`)."""
    # Lines sharing the last timestamp, counted back from the end (usually just one).
    stamp, same, start = block[last : space + 1], 1, last
    while start > 0:
        previous = block.rfind(b"\n", 0, start - 1) + 1
        if not block.startswith(stamp, previous):
            break
        same, start = same + 1, previous
    if start == 0 and ns == before.ns:
        same += before.same
    return Cursor(ns, same)


class LineSplitter:
    """Splits one read of a container log (one HTTP response) into `Piece`s. `ordered` (for a
    follow): a line stamped before the one delivered last is dropped: kubelet 1.20's follow sends
    a file's lines again when it reopens a rotated log file more than once."""

    def __init__(self, cursor: Cursor, ordered: bool = False) -> None:
        self.cursor = cursor
        self.ordered = ordered
        self.tail = b""  # bytes after the last newline, held for the next read
        self.seen = 0  # complete lines read, delivered or dropped as repeats: the stream worked
        self._catching_up = cursor.started
        self._same_left = cursor.same  # lines stamped `cursor.ns` still to drop
        self._dropping = False  # inside a line already delivered: drop up to its newline
        self._skip = 0  # bytes of a long line's content already delivered, still to drop
        self._in_long = False  # inside a long line: what comes is the rest of it
        self.first_ns = -1  # a reopened stream's first line's timestamp (-1: none seen)

    def feed(self, data: bytes) -> list[Piece]:
        buf = self.tail + data if self.tail else data
        self.tail = b""
        out: list[Piece] = []
        pos, size = 0, len(buf)
        while pos < size:
            if self._dropping or self._skip:
                pos = self._drop(buf, pos)
            elif self._in_long:
                pos = self._long_rest(buf, pos, out)
            elif self._catching_up:
                pos = self._catch_up(buf, pos)
                if pos < 0:
                    self.tail = buf[-pos - 1 :]
                    break
            else:
                end = buf.rfind(b"\n", pos) + 1
                if end <= pos:
                    self._hold_or_cut(buf[pos:], out)
                    break
                if self.ordered and (back := self._sent_again(buf, pos, end)) >= 0:
                    if back > pos and (piece := self._block(buf[pos:back])) is not None:
                        out.append(piece)
                    log.info("dropped lines the kubelet sent again, from %.40r", buf[back : back + 40])
                    self._catching_up, self._same_left = True, self.cursor.same
                    pos = back
                    continue
                piece = self._block(buf[pos:end] if pos or end < size else buf)
                if piece is not None:
                    out.append(piece)
                pos = end
        return out

    def finish(self) -> list[Piece]:
        """At the end of the log: a last line without a newline is a line too."""
        return self.feed(b"\n") if self.tail else []

    # -- the fast path -------------------------------------------------------------------------
    def _block(self, block: bytes) -> Piece | None:
        last = block.rfind(b"\n", 0, len(block) - 1) + 1
        space = block.find(b" ", last, last + _STAMP_MAX)
        try:
            ns = timestamp_ns(block[last:space]) if space > last else -1
        except ValueError:
            ns = -1
        if ns < 0:
            # Every line a container wrote starts with its timestamp. A response's last line
            # without one is the kubelet's own, appended when it cannot go on (`unable to
            # retrieve container logs for containerd://...` when the pod goes away mid-follow):
            # never the step's output.
            log.info("dropped the kubelet's own words at the end of a log: %.200r", block[last:])
            self.seen += 1
            return self._block(block[:last]) if last else None
        lines = block.count(b"\n")
        self.seen += lines
        self.cursor = cursor_after(block, self.cursor, last, space, ns)
        return Piece(block, lines, True, self.cursor)

    def _sent_again(self, buf: bytes, pos: int, end: int) -> int:
        """Where a line stamped before the one before it begins in `buf[pos:end]` (-1: none)."""
        # Quick: the block's stamps, compared as bytes (with `Z` made to sort first that is time
        # order), are in order, and the first is not before the cursor.
        lines = buf[pos:end].translate(_IN_TIME_ORDER).split(b"\n")
        lines.pop()
        firsts = [line.partition(b" ")[0] for line in lines]
        if firsts == sorted(firsts) and stamp_ns(buf, pos) >= self.cursor.ns:
            return -1
        latest, offset = self.cursor.ns, pos
        for line in lines:  # the translated lines are as long as the lines sent
            ns = stamp_ns(buf, offset)
            if 0 <= ns < latest:
                return offset
            latest, offset = max(latest, ns), offset + len(line) + 1
        return -1

    # -- long lines ----------------------------------------------------------------------------
    def _hold_or_cut(self, rest: bytes, out: list[Piece]) -> None:
        if len(rest) <= MAX_LINE:
            self.tail = rest
            return
        space = rest.find(b" ", 0, _STAMP_MAX)
        try:
            ns = timestamp_ns(rest[:space]) if space > 0 else -1
        except ValueError:
            ns = -1
        if ns >= 0:
            self.cursor = Cursor(ns, self.cursor.after(ns).same, len(rest) - space - 1)
        self._in_long = True
        out.append(Piece(rest + b"\n", 1, True, self.cursor))

    def _long_rest(self, buf: bytes, pos: int, out: list[Piece]) -> int:
        newline = buf.find(b"\n", pos)
        if newline < 0:
            if len(buf) - pos <= MAX_LINE:
                self.tail = buf[pos:]
                return len(buf)
            self._advance_piece(len(buf) - pos)
            out.append(Piece(buf[pos:] + b"\n", 1, False, self.cursor))
            return len(buf)
        self._in_long = False
        self.seen += 1
        self.cursor = Cursor(self.cursor.ns, self.cursor.same)  # the whole line is out now
        out.append(Piece(buf[pos : newline + 1], 1, False, self.cursor))
        return newline + 1

    def _advance_piece(self, size: int) -> None:
        c = self.cursor
        self.cursor = Cursor(c.ns, c.same, c.piece + size)

    # -- resuming ------------------------------------------------------------------------------
    def _drop(self, buf: bytes, pos: int) -> int:
        """Drops a delivered line, or the delivered bytes of a long line's content."""
        if self._dropping:
            newline = buf.find(b"\n", pos)
            if newline < 0:
                return len(buf)
            self._dropping = False
            self.seen += 1
            return newline + 1
        take = min(self._skip, len(buf) - pos)
        newline = buf.find(b"\n", pos, pos + take)
        if newline >= 0:  # the line is shorter than what was delivered of it: nothing new in it
            self._skip = 0
            self.seen += 1
            self.cursor = Cursor(self.cursor.ns, self.cursor.same)
            return newline + 1
        self._skip -= take
        if not self._skip:
            self._in_long = True
        return pos + take

    def _catch_up(self, buf: bytes, pos: int) -> int:
        """Decides about the line at `pos` of a reopened stream. Returns where to go on, or
        `-pos - 1` when its timestamp is not complete yet (wait for more bytes)."""
        space = buf.find(b" ", pos, pos + _STAMP_MAX)
        if space < 0:
            newline = buf.find(b"\n", pos, pos + _STAMP_MAX)
            if newline < 0 and len(buf) - pos < _STAMP_MAX:
                return -pos - 1
            self._catching_up = False  # a line without a timestamp: nothing to compare
            return pos
        try:
            ns = timestamp_ns(buf[pos:space])
        except ValueError:
            self._catching_up = False
            return pos
        if self.first_ns < 0:
            self.first_ns = ns
        cursor = self.cursor
        if ns == cursor.ns and self._same_left > 0:
            self._same_left -= 1
            if not self._same_left and cursor.piece:
                # The long line that was cut: its first `piece` content bytes went out already.
                self._catching_up = False
                self._skip = cursor.piece
                return space + 1
        elif ns >= cursor.ns:
            self._catching_up = False
            return pos
        self._dropping = True
        return pos
