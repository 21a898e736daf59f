"""What a run's log says about tasks that have no lines to show, worded once.

Each notice has a key, so that it is said once per stream and, through the resume token, once
across resumed streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from shared.logs.cursor import rfc3339_nanos
from shared.logs.events import Notice
from shared.runs.model import (
    attempts_of,
    is_done,
    name_of,
    pipeline_task_of,
    status_of,
    succeeded_condition,
)

if TYPE_CHECKING:
    from shared.runs.model import Attempt, Obj


class Said:
    """The notices said so far: each key once per stream, and not again in a stream that resumes
    one that said it (`sent_before`). Notices without a key are always said."""

    def __init__(self, sent_before: Callable[[str], bool]) -> None:
        self.sent_before = sent_before
        self.keys: set[str] = set()

    def once(self, candidates: Iterable[Notice]) -> Iterator[Notice]:
        for notice in candidates:
            if not notice.key:
                yield notice
            elif notice.key not in self.keys:
                self.keys.add(notice.key)
                if not self.sent_before(notice.key):
                    yield notice


def no_pod(taskrun: Obj) -> Notice:
    cond = succeeded_condition(taskrun)
    if cond is None:
        message = "no logs: the task never started"
    else:
        message = f"no logs: the task ended before a pod ran ({cond.reason}: {cond.message})".replace(": )", ")")
    return Notice(pipeline_task_of(taskrun), message, kind="no-logs", key=f"nopod/{name_of(taskrun)}")


def pod_deleted(attempt: Attempt, taskrun: Obj | None, streamed: bool) -> Notice:
    cond = succeeded_condition(taskrun) if taskrun else None
    why = f" ({cond.reason}: {cond.message})" if cond and cond.status == "False" else ""
    if streamed:
        message = f"pod {attempt.pod} was deleted while running{why}; its logs end here"
    else:
        message = f"no logs: pod {attempt.pod} was deleted{why}"
    return Notice(attempt.task, message, kind="no-logs", key=f"deleted/{attempt.pod}")


def skipped(pipelinerun: Obj, wanted: Callable[[str], bool]) -> Iterator[Notice]:
    for item in status_of(pipelinerun).get("skippedTasks") or []:
        task = str(item.get("name", ""))
        if wanted(task):
            reason = item.get("reason") or "skipped"
            yield Notice(task, f"task skipped: {reason}", kind="skipped", key=f"skipped/{task}")


def custom_runs(pipelinerun: Obj, wanted: Callable[[str], bool]) -> Iterator[Notice]:
    for ref in status_of(pipelinerun).get("childReferences") or []:
        kind = ref.get("kind", "TaskRun")
        task = str(ref.get("pipelineTaskName", ""))
        if kind != "TaskRun" and wanted(task):
            message = f"{kind} {ref.get('name', '')} has no container logs to show"
            yield Notice(task, message, kind="no-logs", key=f"custom/{ref.get('name')}")


def retries(taskrun: Obj) -> Iterator[Notice]:
    task = pipeline_task_of(taskrun)
    for index, retry in enumerate(status_of(taskrun).get("retriesStatus") or []):
        cond = succeeded_condition(retry)
        why = f"{cond.reason}: {cond.message}" if cond else "failed"
        message = f"attempt {index + 1} failed ({why}); retrying"
        yield Notice(task, message, kind="retry", key=f"retry/{name_of(taskrun)}/{index}")


def task_failed(taskrun: Obj, delivered: Callable[[str], bool]) -> Iterator[Notice]:
    """Once every attempt of a done TaskRun was delivered, whether it failed."""
    if not is_done(taskrun) or not all(delivered(a.pod) for a in attempts_of(taskrun)):
        return
    cond = succeeded_condition(taskrun)
    if cond is not None and cond.status == "False":
        message = f"task failed: {cond.reason}: {cond.message}".rstrip(": ")
        yield Notice(pipeline_task_of(taskrun), message, kind="failed", key=f"failed/{name_of(taskrun)}")


def cannot_start(attempt: Attempt, step: str, index: int, reason: str) -> Notice:
    message = f"container cannot start: {reason}".rstrip(": ")
    return Notice(attempt.task, message, step=step, kind="image-pull", key=f"stuck/{attempt.pod}/{index}")


def read_failed(attempt: Attempt, step: str, index: int, message: str) -> Notice:
    return Notice(attempt.task, f"error: {message}", step=step, kind="error", key=f"error/{attempt.pod}/{index}")


def lines_missing(attempt: Attempt, step: str, index: int, after_ns: int, next_ns: int) -> Notice:
    """The kubelet rotated the log file while it was read: what only the rotated file held is gone."""
    message = (
        "the kubelet rotated this step's log file while it was read; lines written between "
        f"{rfc3339_nanos(after_ns)} and {rfc3339_nanos(next_ns)} may be missing"
    )
    return Notice(attempt.task, message, step=step, kind="lines-missing", key=f"gap/{attempt.pod}/{index}/{after_ns}")


def crashed(attempt: Attempt) -> Notice:
    return Notice(attempt.task, "log stream failed unexpectedly", kind="error", key=f"crash/{attempt.pod}")


def masking_unavailable(attempt: Attempt, why: str) -> Notice:
    """Its Secret values cannot be read (MASKING=required): the attempt's lines are withheld."""
    message = f"logs withheld: the values to mask could not be read: {why}"
    return Notice(attempt.task, message, kind="error", key=f"masking/{attempt.pod}")
