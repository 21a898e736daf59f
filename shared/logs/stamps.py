"""The timestamps of a batch of log lines in ns, a column at a time.

NDJSON and `cursors=true` put a cursor on every line, and a cursor holds its line's timestamp in
ns. Parsing each stamp in Python costs more than everything else a line needs, so a batch is
parsed the way a vector unit would: the kubelet's stamps (`YYYY-MM-DDTHH:MM:SS.<1-9 digits>Z`)
are laid out at a fixed width, padded with `Z` (a `Z` in a digit's place reads as a trailing
zero: Go trims those, and a stamp on a whole second has no fraction at all), each character
position becomes a strided column, and the columns, as lanes of big integers, are checked with
bitwise operations and summed with their weights; the sum's bytes are every line's ns, packed.
The date, hour and minute are parsed once, strictly; a batch that crosses a minute, or holds
anything but that exact form, is parsed line by line.
"""

from __future__ import annotations

import struct
from itertools import repeat

from shared.logs.cursor import MAX_NS, timestamp_ns

_WIDTH = 30  # `YYYY-MM-DDTHH:MM:SS.` (20) + at most 9 digits + `Z`
_FIXED = 17  # `YYYY-MM-DDTHH:MM:`: the same in every line of a batch that stays within a minute
_DIGITS = b"0123456789"
_VALUE = bytes.maketrans(_DIGITS + b"Z", bytes(range(10)) + b"\0")
# Per character: 1 a digit, 2 `Z`, 4 anything else; for the dot's position: `.` is 0.
_CLASS = bytes(1 if c in _DIGITS else 2 if c == ord("Z") else 0 if c == ord(".") else 4 for c in range(256))
# Digit pairs combined in one-byte lanes (at most 99) before they are spread into 8-byte lanes:
# (tens column, units column or None, weight in ns).
_PAIRS = [(17, 18, 10**9), (20, 21, 10**7), (22, 23, 10**5), (24, 25, 10**3), (26, 27, 10), (28, None, 1)]
_LAST_MINUTE = MAX_NS - MAX_NS % 60_000_000_000
_MINUTES: dict[bytes, int] = {}  # `YYYY-MM-DDTHH:MM:` to its ns, parsed strictly


def stamps_ns(stamps: list[bytes], zoned: bool = True) -> list[int]:
    """Each stamp's ns; -1 for one that is not a timestamp. `zoned=False`: the stamps come without
    their final `Z` (cut off by the caller, who found each followed by `Z `)."""
    values = _columns(stamps, zoned) if len(stamps) >= 8 else None
    if values is not None:
        return values
    out = []
    for stamp in stamps:
        try:
            out.append(timestamp_ns(stamp if zoned else stamp + b"Z"))
        except (ValueError, IndexError):
            out.append(-1)
    return out


def _columns(stamps: list[bytes], zoned: bool) -> list[int] | None:
    n = len(stamps)
    joined = b"\n".join(stamps) + b"\n"
    if joined.count(b"Z") != (n if zoned else 0) or (zoned and joined.count(b"Z\n") != n):
        # A stamp with a `Z` anywhere but at its end (`…00.5ZZ`) would read as padded: not a timestamp.
        return None
    laid = b"".join(map(bytes.ljust, stamps, repeat(_WIDTH, n), repeat(b"Z", n)))
    if len(laid) != _WIDTH * n:
        return None  # a stamp too long
    fixed = laid[:_FIXED]
    if any(laid[k::_WIDTH] != fixed[k : k + 1] * n for k in range(_FIXED)):
        return None
    minute = _minute_ns(fixed)
    seconds = laid[17::_WIDTH] + laid[18::_WIDTH]
    if minute is None or seconds.translate(None, _DIGITS) or max(laid[17::_WIDTH]) > ord("5"):
        return None
    # Positions 19-29 of every lane: `.` and 1-9 digits then `Z`s, or `Z`s only (a whole second).
    one = int.from_bytes(b"\1" * n, "big")
    dot = int.from_bytes(laid[19::_WIDTH].translate(_CLASS), "big")
    if dot & (5 * one):
        return None  # neither `.` nor `Z` after the seconds
    seen_z = (dot >> 1) & one
    for position in range(20, _WIDTH):
        kind = int.from_bytes(laid[position::_WIDTH].translate(_CLASS), "big")
        digits = kind & one
        if kind & (4 * one) or digits & seen_z or (position == 20 and (kind >> 1) & one & ~seen_z):
            return None  # not a digit or `Z`; a digit after a `Z`; a dot with no digit after it
        seen_z |= (kind >> 1) & one
    if seen_z != one:
        return None  # a lane without its `Z`
    ones = int.from_bytes(b"\0\0\0\0\0\0\0\1" * n, "big")
    total = minute * ones
    lane = bytearray(8 * n)
    for tens, units, weight in _PAIRS:
        pair = int.from_bytes(laid[tens::_WIDTH].translate(_VALUE), "big")
        if units is not None:
            pair = pair * 10 + int.from_bytes(laid[units::_WIDTH].translate(_VALUE), "big")
        lane[7::8] = pair.to_bytes(n, "big")
        total += int.from_bytes(lane, "big") * weight
    values = list(struct.unpack(f">{n}Q", total.to_bytes(8 * n, "big")))
    # Only the minute 2262-04-11T23:47 (its start parsed above) can end past int64 ns.
    return values if minute < _LAST_MINUTE or max(values) <= MAX_NS else None


def _minute_ns(fixed: bytes) -> int | None:
    ns = _MINUTES.get(fixed)
    if ns is None:
        try:
            ns = timestamp_ns(fixed + b"00Z")
        except ValueError:
            return None
        if len(_MINUTES) > 1024:
            _MINUTES.clear()
        _MINUTES[fixed] = ns
    return ns
