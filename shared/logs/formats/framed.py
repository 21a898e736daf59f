"""The base of the text-like formats: a plain writer's output framed by sections, with the failure
digest before the final status line.

A subclass says how a section opens and closes (`open_section`, `close_section`); this class
decides when: a step's lines open a section for their task (attempt) and one for the step inside
it; lines of another step, another task (parallel tasks interleave), a notice for another task,
the end of the attempt, a cut or the run's end close them. Sections are named after the first
line's timestamp, so the sections of a resumed stream do not take the names of the earlier one's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.logs.cursor import timestamp_ns
from shared.logs.events import AttemptDone, Event, LogLines, Notice, RunFinished, StreamEnded
from shared.logs.formats.digest_text import digest_lines, with_tails
from shared.logs.formats.tails import Tails
from shared.logs.tracker import Tracker
from shared.logs.writers import Writer

# (pod, step) -> (task failed, step failed), each None while not known.
Hint = Callable[[str, str], tuple[bool | None, bool | None]]
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")


def no_hint(pod: str, step: str) -> tuple[bool | None, bool | None]:
    return None, None


@dataclass
class Section:
    id: str
    title: str
    start: int  # Unix seconds
    last: int
    expanded: bool


def _first_stamp_seconds(event: LogLines) -> int | None:
    if not event.stamped:
        return None
    try:
        return timestamp_ns(event.data[: event.data.find(b" ")]) // 1_000_000_000
    except ValueError:
        return None


class FramedWriter:
    """Subclasses implement `open_section` and `close_section`, each
    returning the marker lines (without cursors; `line` adds them)."""

    sections = True
    show_digest = True  # print the failure digest (text-like formats)

    def __init__(self, inner: Writer, tracker: Tracker | None, cursors: bool, tails: Tails, hint: Hint) -> None:
        self.inner = inner
        self.content_type = inner.content_type
        self.tracker = tracker
        self.cursors = cursors and tracker is not None
        self.tails = tails
        self.hint = hint
        self.task: tuple[str, str, Section] | None = None  # (task, pod, section)
        self.step: tuple[str, Section] | None = None  # (step, section)
        self._names: set[str] = set()

    # -- what subclasses say -------------------------------------------------------------------
    def open_section(self, section: Section, is_step: bool) -> list[str]:
        raise NotImplementedError

    def close_section(self, section: Section, is_step: bool) -> list[str]:
        raise NotImplementedError

    def run_failed(self, status: dict) -> list[str]:
        """Lines before the digest of a failed run (annotations)."""
        return []

    def digest(self, name: str, digest: dict) -> list[str]:
        return digest_lines(name, digest)

    def before_last_line(self) -> list[str]:
        """Lines just before a stream's last line (the run's status, or where it was cut)."""
        return []

    # -- events ----------------------------------------------------------------------------------
    def write(self, event: Event) -> bytes:
        match event:
            case LogLines():
                self.tails.add(event)
                return (self._frame(event) if self.sections else b"") + self.inner.write(event)
            case Notice(task=task):
                if self.task is not None and self.task[0] == task:
                    head = self._close(step_only=True)
                    tail = self._close() if event.kind == "failed" else b""
                    return head + self.inner.write(event) + tail
                return self._close() + self.inner.write(event)
            case AttemptDone(pod=pod):
                closing = self.task is not None and self.task[1] == pod
                return (self._close() if closing else b"") + self.inner.write(event)
            case StreamEnded():
                return self._close() + self.lines(self.before_last_line()) + self.inner.write(event)
            case RunFinished(status=status):
                status = with_tails(status, self.tails)
                out = self._close()
                digest = status.get("digest")
                if isinstance(digest, dict) and self.show_digest:
                    out += self.lines(self.run_failed(status) + self.digest(str(status.get("name")), digest))
                return out + self.lines(self.before_last_line()) + self.inner.write(RunFinished(status))
        return self.inner.write(event)

    def line(self, text: str) -> bytes:
        if self.cursors:
            assert self.tracker is not None
            text = f"{self.tracker.line_prefix()} {text}"
        return text.encode("utf-8", "surrogateescape") + b"\n"

    def lines(self, texts: list[str]) -> bytes:
        return b"".join(self.line(text) for text in texts)

    # -- sections --------------------------------------------------------------------------------
    def _frame(self, event: LogLines) -> bytes:
        out = b""
        if self.step is not None and (self.step[0] != event.step or self.task is None or self.task[1] != event.pod):
            out += self._close(step_only=True)
        if self.task is not None and self.task[1] != event.pod:
            out += self._close()
        last = event.cursor.ns // 1_000_000_000 if event.cursor.started else int(time.time())
        start = _first_stamp_seconds(event) or last
        if self.task is None or self.step is None:
            task_failed, step_failed = self.hint(event.pod, event.step)
            if self.task is None:
                attempt = f" (attempt {event.attempt + 1})" if event.attempt else ""
                section = self._section(f"{event.task}{attempt}", f"{event.task}_{event.attempt}", start, task_failed)
                self.task = (event.task, event.pod, section)
                out += self.lines(self.open_section(section, is_step=False))
            if self.step is None:
                title = f"{event.task} : {event.step}"
                name = f"{event.task}_{event.attempt}_{event.step}"
                section = self._section(title, name, start, step_failed)
                self.step = (event.step, section)
                out += self.lines(self.open_section(section, is_step=True))
        self.task[2].last = self.step[1].last = max(last, self.step[1].start)
        return out

    def _section(self, title: str, name: str, start: int, failed: bool | None) -> Section:
        base = _NAME_CHARS.sub("-", f"{name}_{start}")
        unique, n = base, 1
        while unique in self._names:
            n += 1
            unique = f"{base}_{n}"
        self._names.add(unique)
        return Section(unique, title, start, start, expanded=bool(failed))

    def _close(self, step_only: bool = False) -> bytes:
        out: list[str] = []
        if self.step is not None:
            out += self.close_section(self.step[1], is_step=True)
            self.step = None
        if not step_only and self.task is not None:
            out += self.close_section(self.task[2], is_step=False)
            self.task = None
        return self.lines(out)
