"""The writer for a request's format: text, NDJSON, GitLab or GitHub sections, server-sent events."""

from __future__ import annotations

from shared.logs.formats.framed import FramedWriter, Hint, no_hint
from shared.logs.formats.github import GitHubWriter
from shared.logs.formats.gitlab import GitLabWriter
from shared.logs.formats.sse import SseWriter
from shared.logs.formats.tails import Fetch, Tails
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter, TextWriter, Writer
from shared.runs.digest import LAST_LINES, known_failures
from shared.runs.watch import RunWatchRegistry


class _Plain(FramedWriter):
    """Text without sections: the digest before the final line."""

    sections = False

    def open_section(self, section: object, is_step: bool) -> list[str]:
        return []

    def close_section(self, section: object, is_step: bool) -> list[str]:
        return []


class _Ndjson(_Plain):
    """NDJSON: the digest, with the failed steps' last lines, is in the `end` object's status."""

    def digest(self, name: str, digest: dict) -> list[str]:
        return []


def make_writer(
    fmt: str,
    tracker: Tracker,
    *,
    timestamps: bool = False,
    cursors: bool = False,
    digest: bool = True,
    digest_lines: int = LAST_LINES,
    hint: Hint = no_hint,
    stop_commands: str | None = None,
    fetch_tail: Fetch | None = None,
) -> Writer:
    tails = Tails(digest_lines if digest else 0, fetch_tail)
    if fmt in ("ndjson", "sse"):
        ndjson = _Ndjson(NdjsonWriter(tracker=tracker), tracker, False, tails, no_hint)
        return SseWriter(ndjson) if fmt == "sse" else ndjson
    text = TextWriter(timestamps, tracker, cursors=cursors)
    framed: FramedWriter
    if fmt == "gitlab":
        framed = GitLabWriter(text, tracker, cursors, tails, hint)
    elif fmt == "github":
        framed = GitHubWriter(text, tracker, cursors, tails, hint, token=stop_commands)
    else:
        framed = _Plain(text, tracker, cursors, tails, no_hint)
    framed.show_digest = digest
    return framed


def watch_hint(registry: RunWatchRegistry, namespace: str, name: str) -> Hint:
    """What the run's shared watch knows of an attempt's and a step's failure, read when a section
    opens (no API request)."""

    def hint(pod: str, step: str) -> tuple[bool | None, bool | None]:
        watch = registry.peek(namespace, name)
        if watch is None:
            return None, None
        with watch.cond:
            taskruns = list(watch.taskruns.values())
        return known_failures(taskruns, pod, step)

    return hint
