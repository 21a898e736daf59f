"""The failure digest: what a person reads first when a run did not succeed.

Built from the objects alone (no API call): the run's reason and message, each TaskRun that did
not succeed with its reason, message, duration and the steps that failed (exit code, reason,
duration), and the tasks that were skipped and why. The log writers add the last lines of each
failed step (`shared.logs.formats.tails`); `/status` reads them with `pods/log?tailLines=`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.runs.model import Obj, name_of, pipeline_task_of, status_of, succeeded_condition, taskrun_start_key
from shared.runs.outcome import Outcome, outcome_of

# Last lines of each failed step in the digest (`digest_lines=`): by default, at most.
LAST_LINES = 20
MAX_LAST_LINES = 500

NOT_FAILED = frozenset({Outcome.SUCCEEDED, Outcome.RUNNING, Outcome.PENDING})
# Tekton's `terminationReason` of steps that did not fail by themselves: skipped after an earlier
# step failed, or failed with `onError: continue`.
NOT_FAILING_STEP = frozenset({"Skipped", "Continued"})


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from one RFC 3339 time to another; None when either is missing or malformed."""
    try:
        first = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        last = dt.datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((last - first).total_seconds(), 3)


def failure_digest(pipelinerun: Obj, taskruns: list[Obj]) -> dict[str, Any] | None:
    """The digest of a run that ended without success; None for any other run."""
    outcome = outcome_of(pipelinerun)
    if outcome in NOT_FAILED:
        return None
    cond = succeeded_condition(pipelinerun)
    status = status_of(pipelinerun)
    failed = [_task(tr) for tr in sorted(taskruns, key=taskrun_start_key) if outcome_of(tr) not in NOT_FAILED]
    skipped = [
        {"task": str(item.get("name", "")), "reason": str(item.get("reason") or "skipped")}
        for item in status.get("skippedTasks") or []
    ]
    return {
        "outcome": str(outcome),
        "reason": cond.reason if cond else "",
        "message": cond.message if cond else "",
        "durationSeconds": seconds_between(status.get("startTime"), status.get("completionTime")),
        "failedTasks": failed,
        "skippedTasks": skipped,
    }


def _task(taskrun: Obj) -> dict[str, Any]:
    cond = succeeded_condition(taskrun)
    status = status_of(taskrun)
    return {
        "task": pipeline_task_of(taskrun),
        "taskRun": name_of(taskrun),
        "pod": str(status.get("podName") or ""),
        "outcome": str(outcome_of(taskrun)),
        "reason": cond.reason if cond else "",
        "message": cond.message if cond else "",
        "durationSeconds": seconds_between(status.get("startTime"), status.get("completionTime")),
        "retries": len(status.get("retriesStatus") or []),
        "steps": [step for step in map(failed_step, status.get("steps") or []) if step is not None],
    }


def failed_step(step: Obj) -> dict[str, Any] | None:
    """A step that failed by itself (non-zero exit, or it never started); None otherwise."""
    name = str(step.get("name", ""))
    waiting = step.get("waiting")
    if isinstance(waiting, dict):
        reason = str(waiting.get("reason") or "")
        return {"step": name, "exitCode": None, "reason": reason, "message": str(waiting.get("message") or "")}
    term = step.get("terminated")
    if not isinstance(term, dict) or not term.get("exitCode"):
        return None
    reason = str(step.get("terminationReason") or term.get("reason") or "")
    if reason in NOT_FAILING_STEP:
        return None
    message = str(term.get("message") or "")
    if message.startswith("["):
        message = ""  # Tekton's termination message: results as JSON, not words for a person
    return {
        "step": name,
        "exitCode": term.get("exitCode"),
        "reason": reason,
        "message": message,
        "durationSeconds": seconds_between(term.get("startedAt"), term.get("finishedAt")),
    }


def known_failures(taskruns: list[Obj], pod: str, step: str) -> tuple[bool | None, bool | None]:
    """Whether the task attempt that ran in `pod`, and its `step`, are known to have failed yet:
    (task, step), each None while not known (still running)."""
    for taskrun in taskruns:
        status = status_of(taskrun)
        for retry in status.get("retriesStatus") or []:
            if isinstance(retry, dict) and retry.get("podName") == pod:
                return _known({"status": retry}, step)
        if status.get("podName") == pod:
            return _known(taskrun, step)
    return None, None


def _known(attempt: Obj, step: str) -> tuple[bool | None, bool | None]:
    cond = succeeded_condition(attempt)
    task = None if cond is None or cond.status not in ("True", "False") else cond.status == "False"
    for entry in status_of(attempt).get("steps") or []:
        if entry.get("name") == step and isinstance(entry.get("terminated"), dict):
            return task, failed_step(entry) is not None
    return task, None
