"""Per-task commit statuses: one per pipeline task, next to the run's own.

For every TaskRun of the run (read from the API with the run), each GitLab/GitHub target of the
run gets a sibling target: status name / context `<run context>/<pipeline task>`, linking to
that task's live log (`/logs/<ns>/<run>?task=<task>`), in the TaskRun's own state (its
Succeeded condition, ranked like a run's). A failed task's description names the reason and
the failed step with its exit code; a failed run's (for every kind of target) names its first
failed task. Each is de-duplicated in the run's delivery record under its own key, like any target.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

from shared.notify.events import TYPE_PREFIX, RunEvent, state_from_condition
from shared.notify.target import Target
from shared.runs.digest import failed_step as step_failure
from shared.runs.model import Obj, pipeline_task_of, status_of, succeeded_condition, taskrun_start_key

COMMIT_KINDS = frozenset({"gitlab", "github"})


def failed_step(taskrun: Obj) -> str:
    """`step build exited 2`, from the first step that failed by itself with an exit code (as the
    failure digest has it: not one skipped after it, nor one whose failure `onError: continue` let pass)."""
    for step in status_of(taskrun).get("steps") or []:
        failed = step_failure(step or {})
        if failed is not None and failed["exitCode"] is not None:
            return f"step {failed['step'] or '?'} exited {failed['exitCode']}"
    return ""


def task_event(run: RunEvent, taskrun: Obj) -> RunEvent:
    """The run's event as seen by one TaskRun: its state, reason and message (with the failed step)."""
    cond = succeeded_condition(taskrun)
    state = state_from_condition(cond) or "queued"
    message = cond.message if cond else ""
    if state == "failed" and (step := failed_step(taskrun)):
        message = f"{step}: {message}" if message else step
    return replace(
        run,
        event_type=f"{TYPE_PREFIX}{state}.v1",
        state=state,
        reason=cond.reason if cond else "",
        message=message,
        start_time=str(status_of(taskrun).get("startTime") or ""),
        completion_time=str(status_of(taskrun).get("completionTime") or ""),
    )


def with_failed_task(run: RunEvent, taskruns: list[Obj]) -> RunEvent:
    """A failed run's event naming the first task that failed and its step, ahead of the message:
    `task compile, step build exited 2; Tasks Completed: 2 (Failed: 1, …)`."""
    if run.state != "failed":
        return run
    for taskrun in sorted(taskruns, key=taskrun_start_key):
        cond = succeeded_condition(taskrun)
        if cond is not None and cond.status == "False":
            where = ", ".join(x for x in (f"task {pipeline_task_of(taskrun)}", failed_step(taskrun)) if x)
            return replace(run, message=f"{where}; {run.message}" if run.message else where)
    return run


def task_targets(targets: list[Target], task: str) -> list[Target]:
    return [
        replace(t, key=f"{t.key}|task={task}", context=f"{t.context}/{task}", task=task)
        for t in targets
        if t.kind in COMMIT_KINDS and not t.error
    ]


def per_task(run: RunEvent, targets: list[Target], taskruns: list[Obj]) -> list[tuple[RunEvent, Target]]:
    """(the task's event, a target) for every task of the run and commit-status target, in start order."""
    out = []
    for taskrun in sorted(taskruns, key=taskrun_start_key):
        event = task_event(run, taskrun)
        out += [(event, target) for target in task_targets(targets, pipeline_task_of(taskrun))]
    return out


def task_logs_url(logs_url: str, task: str) -> str:
    return f"{logs_url}?task={quote(task, safe='')}" if logs_url and task else logs_url
