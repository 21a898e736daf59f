"""The service's log keeps one record per line whatever a message carries (shared/log_lines.py)."""

from __future__ import annotations

import logging

from shared.log_lines import OneLineFormatter


def _format(msg: str, *args: object, exc: bool = False) -> str:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    return OneLineFormatter("%(levelname)s %(message)s").format(record)


def test_control_characters_in_a_message_are_escaped() -> None:
    out = _format("event %s (%s) rejected", "1\nERROR forged", "t\r\x1b[2K\u2028x\x85")
    assert out == "WARNING event 1\\nERROR forged (t\\r\\x1b[2K\\u2028x\\x85) rejected"
    assert len(out.splitlines()) == 1


def test_a_traceback_keeps_its_lines_and_plain_text_is_unchanged() -> None:
    out = _format("plain text, tabs\tand ünïcode stay readable", exc=True)
    first, *rest = out.splitlines()
    assert first == "WARNING plain text, tabs\\tand ünïcode stay readable"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
