"""Active parts of resume tokens (see `shared.logs.tokens`) for every line of a batch.

NDJSON and `cursors=true` text carry a cursor on every line. Between two lines of one container
only that container's entry moves, and of it only the timestamp (8 bytes) and the count of lines
sharing it (1 byte); everything else is packed once per batch (`ActiveEncoder`).

A batch of such parts is built without a Python step per line: the packed bodies are laid out
side by side in one buffer and their moving bytes written as strided columns; CRC-32 is linear
over GF(2), so for bodies of one length the low 16 bits of each body's CRC are a constant XOR
one table lookup per moving byte, done a column at a time with `bytes.translate` and XORed as
big integers; one base64 call encodes the lot (a body plus its checksum is a multiple of three
bytes long, so each line's part is a fixed-width slice of the result). The output is byte for
byte what `ActiveEncoder.text` makes line by line.

Where the C module `shared.logs._rows` was built, `Tracker.rows` lays a whole batch out with its
cursors in one pass instead (the common case; the rest still comes here): see `_rows.c`.
"""

from __future__ import annotations

import binascii
import functools
import struct
import zlib

from shared.logs.cursor import Cursor
from shared.logs.tokens import CRC16, NS, POD, pack_entry, put_varint

try:  # compiled by `pip install` where a C compiler is at hand (setup.py); optional
    from shared.logs._rows import CONTENT, PART, STAMP
    from shared.logs._rows import rows as native_rows
except ImportError:  # the Python path below does it all, a little slower
    native_rows = None
    STAMP, CONTENT, PART = 0, 1, 2

_NS_SMALL = struct.Struct(">QBB")  # ns, and `same` and `piece` when each fits one varint byte
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_MOVING = 9  # the timestamp's 8 bytes and the one-byte count of lines sharing it
_MIN_BATCH = 8  # below this, line by line is as quick


class ActiveEncoder:
    """Active parts for a run of lines that move one entry's cursor only: everything else is
    packed once, so a cursor on every line costs a few bytes' packing and a CRC."""

    def __init__(self, active: dict[int, tuple[int, Cursor]], key: int, stable_crc: int) -> None:
        head = bytearray()
        tail = bytearray()
        put_varint(len(active), head)
        target = head
        for pod, (index, cursor) in active.items():
            if pod == key:
                head += POD.pack(pod)
                put_varint(index, head)
                target = tail
            else:
                pack_entry(pod, index, cursor, target)
        self.head, self.tail, self.crc = bytes(head), bytes(tail), stable_crc

    def text(self, ns: int, same: int, piece: int = 0) -> bytes:
        """The active part (base64url, ASCII) with this entry at (`ns`, `same`, `piece`)."""
        ns = max(ns, 0)  # a line without a timestamp before any with one
        if same < 0x80 and piece < 0x80:
            body = self.head + _NS_SMALL.pack(ns, same, piece) + self.tail
        else:
            packed = bytearray(self.head)
            packed += NS.pack(ns)
            put_varint(same, packed)
            put_varint(piece, packed)
            body = bytes(packed + self.tail)
        sealed = body + CRC16.pack(zlib.crc32(body, self.crc) & 0xFFFF)
        return binascii.b2a_base64(sealed, newline=False).translate(_URLSAFE).rstrip(b"=")

    def texts(self, ns: list[int], same: list[int]) -> list[bytes]:
        """`[text(ns[i], same[i]) for i ...]` (piece 0), a batch at a time."""
        n = len(ns)
        at = len(self.head)
        body = at + 10 + len(self.tail)
        size = body + 2
        if n < _MIN_BATCH or size % 3 or max(same) >= 0x80 or min(ns) < 0:
            return [self.text(a, b) for a, b in zip(ns, same, strict=True)]
        template = self.head + bytes(10) + self.tail
        stamps, counts = struct.pack(f">{n}Q", *ns), bytes(same)
        const = zlib.crc32(template, self.crc) & 0xFFFF
        high, low = _FILL[const >> 8] * n, _FILL[const & 0xFF] * n
        hi, lo = int.from_bytes(high, "big"), int.from_bytes(low, "big")
        sealed = bytearray((template + b"\0\0") * n)
        for k, (hi_table, lo_table) in enumerate(_crc_tables(body, at)):
            column = stamps[k::8] if k < 8 else counts
            hi ^= int.from_bytes(column.translate(hi_table), "big")
            lo ^= int.from_bytes(column.translate(lo_table), "big")
            sealed[at + k :: size] = column
        sealed[body::size] = hi.to_bytes(n, "big")
        sealed[body + 1 :: size] = lo.to_bytes(n, "big")
        encoded = binascii.b2a_base64(sealed, newline=False).translate(_URLSAFE)
        # One C call cuts each line's part out, even with its format compiled anew, several times
        # quicker than a slice per line.
        return list(struct.unpack(f"{size // 3 * 4}s" * n, encoded))


_FILL = [bytes([value]) for value in range(256)]


@functools.lru_cache(maxsize=64)
def _crc_tables(body: int, at: int) -> tuple[tuple[bytes, bytes], ...]:
    """Per moving byte (at `at`..`at + 8` of a `body`-byte body): `bytes.translate` tables from
    the byte's value to the high and low byte of what it adds (XOR) to the CRC's low 16 bits."""
    zero = zlib.crc32(bytes(body))
    tables = []
    for position in range(at, at + _MOVING):
        hi_table, lo_table = bytearray(256), bytearray(256)
        probe = bytearray(body)
        for value in range(256):
            probe[position] = value
            delta = (zlib.crc32(probe) ^ zero) & 0xFFFF
            hi_table[value], lo_table[value] = delta >> 8, delta & 0xFF
        tables.append((bytes(hi_table), bytes(lo_table)))
    return tuple(tables)
