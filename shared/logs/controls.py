"""Control characters a step prints, made visible in text mode.

A terminal or CI console obeys what a step prints: `\\r` returns to the start of the line, so
`\\r[deploy : push] done` would paint another task's prefix over ours; `ESC[2K` erases the line,
`ESC[A` goes up a line, `ESC]…` (OSC) sets titles and links, backspace walks back over the
prefix. Text mode shows those as `cat -v` does (`^M`, `^[[2K`, `^H`; C1 controls, which a UTF-8
console may obey too, as `M-^[`), so every line on screen starts with the prefix the listener
wrote. Colour and style (SGR: `ESC[…m`) moves nothing and CI consoles render it: it stays.

Whole chunks at a time: a chunk without ESC, CR, BS, VT, FF or a C1 lead byte (nearly every
chunk of a build log) is passed on untouched after a few `bytes.__contains__` scans; a chunk whose
every ESC starts an SGR sequence is too. The rest goes through one regex substitution. Other C0
controls (NUL, BEL, SO/SI, …) move nothing and pass.
"""

from __future__ import annotations

import re

_TRIGGERS = (b"\x1b", b"\r", b"\x08", b"\x0b", b"\x0c", b"\xc2")
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")
# An ESC that does not start an SGR sequence, a cursor-moving C0 control, a C1 control in UTF-8.
_MOVING = re.compile(rb"\x1b(?!\[[0-9;:]*m)|[\r\x08\x0b\x0c]|\xc2[\x80-\x9f]")


def _caret(code: int) -> bytes:
    return b"^" + bytes([code ^ 0x40])


_SHOWN = {bytes([c]): _caret(c) for c in (0x1B, 0x0D, 0x08, 0x0B, 0x0C)}
_SHOWN.update({bytes([0xC2, c]): b"M-" + _caret(c - 0x80) for c in range(0x80, 0xA0)})


def neutralised(data: bytes) -> bytes:
    """`data` with every control that moves the cursor or erases shown as text; SGR kept."""
    if not any(trigger in data for trigger in _TRIGGERS):
        return data
    escapes = data.count(b"\x1b")
    if escapes and escapes == len(_SGR.findall(data)) and not any(t in data for t in _TRIGGERS[1:]):
        return data  # colour only
    return _MOVING.sub(_show, data)


def neutralised_text(text: str) -> str:
    """The same for a line the listener writes itself from what the API says (a step's
    termination message can end up in a notice or the final status line)."""
    raw = text.encode("utf-8", "surrogateescape")
    shown = neutralised(raw)
    return text if shown is raw else shown.decode("utf-8", "surrogateescape")


def _show(match: re.Match[bytes]) -> bytes:
    return _SHOWN[match.group()]
