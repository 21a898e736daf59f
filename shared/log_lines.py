"""The service's own log, one record per line.

Log messages carry values from requests: an event's id and type, run names, the API's error texts.
One with a line break (or another control character) would start a line of its own in the log,
which a reader or a log shipper then takes for one of ours: a forged error, a fake access line. So
the message part of every record is written with its control characters escaped (`\\n` as the
two characters `\\` `n`); a traceback, which the formatter adds after the message, keeps its lines.
"""

from __future__ import annotations

import logging
import re

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 -- logging.Formatter's name
        return _CONTROLS.sub(_escaped, super().formatMessage(record))


def install(fmt: str = "%(message)s", level: int | None = None) -> None:
    """Gives the root logger a one-line handler on stderr, unless something configured it already.
    By default the format is what Python's last-resort handler wrote before (the message alone) and
    the level stays the root's (WARNING), so only the escaping is new."""
    root = logging.getLogger()
    if level is not None:
        root.setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(OneLineFormatter(fmt))
        root.addHandler(handler)
