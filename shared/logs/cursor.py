"""Where one container's log was delivered up to: the one cursor type, from the container reader
through the resume token to the writers.

The kubelet stamps every line with an RFC 3339 time; a cursor names the last delivered line by
that time in ns and by how many delivered lines carry it (lines can share a timestamp), plus,
for a line longer than `MAX_LINE` that was passed on in pieces, how many bytes of it went out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_SECONDS: dict[bytes, int] = {}  # parsed whole seconds: lines of one second share the work


_SCALE = [10 ** (9 - n) for n in range(10)]  # a fraction of n digits, in ns per unit


MAX_NS = 2**63 - 1  # a Go time in int64 ns: what a kubelet can stamp, and what a token holds
_LAST_SECOND = MAX_NS // 1_000_000_000  # from this second on, a fraction can go past MAX_NS


def timestamp_ns(value: str | bytes) -> int:
    """RFC 3339 in UTC with up to nanoseconds (Go's RFC3339Nano trims trailing zeros) to Unix ns.
    A time past int64 ns (year 2262) is no kubelet's stamp: refused like any malformed one."""
    raw = value.encode("ascii", "replace") if isinstance(value, str) else value
    # The kubelet's own form, in a second seen before: one lookup and one int().
    seconds = _SECONDS.get(raw[:19])
    if seconds is not None and raw[19:20] == b"." and raw[-1:] == b"Z" and 21 < len(raw) <= 30:
        digits = raw[20:-1]
        if digits.isdigit() and seconds < _LAST_SECOND:
            return seconds * 1_000_000_000 + int(digits) * _SCALE[len(digits)]
    if raw[-1:] != b"Z" or len(raw) < 20:
        raise ValueError(f"not a UTC timestamp: {value!r}")
    body, frac = raw[:19], 0
    if len(raw) > 20:
        digits = raw[20:-1]
        if raw[19:20] != b"." or not digits.isdigit() or len(digits) > 9:
            raise ValueError(f"not a timestamp: {value!r}")
        frac = int(digits) * 10 ** (9 - len(digits))
    seconds = _SECONDS.get(body)
    if seconds is None:
        try:
            parsed = dt.datetime.strptime(body.decode("ascii"), "%Y-%m-%dT%H:%M:%S")
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"not a timestamp: {value!r}") from err
        seconds = int(parsed.replace(tzinfo=dt.UTC).timestamp())
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        _SECONDS[body] = seconds
    ns = seconds * 1_000_000_000 + frac
    if ns > MAX_NS:
        raise ValueError(f"timestamp beyond int64 ns: {value!r}")
    return ns


def rfc3339_nanos(ns: int) -> str:
    """A timestamp as the kubelet writes it, nanoseconds included."""
    seconds = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{ns % 1_000_000_000:09d}Z"


def rfc3339_seconds(ns: int) -> str:
    """`sinceTime` for a cursor: the apiserver truncates to whole seconds anyway."""
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Cursor:
    """After which line a container's log continues."""

    ns: int = -1  # the last delivered line's timestamp; -1: nothing delivered yet
    same: int = 0  # delivered lines that carry `ns` (this one included)
    piece: int = 0  # of a long line delivered in pieces: its bytes delivered so far; 0: all of it

    @property
    def started(self) -> bool:
        return self.ns >= 0

    def since_time(self) -> str | None:
        return rfc3339_seconds(self.ns) if self.ns >= 0 else None

    def after(self, ns: int) -> Cursor:
        """The cursor once one more whole line stamped `ns` went out."""
        return Cursor(ns, self.same + 1 if ns == self.ns else 1)
