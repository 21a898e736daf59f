"""Status mapping: a PipelineRun's Succeeded condition to an outcome, an HTTP code and a body."""

from __future__ import annotations

from typing import Any

from shared.runs.digest import failure_digest
from shared.runs.model import Obj, name_of, status_of, succeeded_condition
from shared.runs.outcome import Outcome, outcome_of

__all__ = ["HTTP_CODES", "Outcome", "http_code", "outcome_of", "run_status", "task_summaries"]


# `curl -f` must pass only for success: every other state is a non-2xx code, and "not finished
# yet" (409, retry later) is told apart from "finished, not successful" (422).
HTTP_CODES = {
    Outcome.SUCCEEDED: 200,
    Outcome.RUNNING: 409,
    Outcome.PENDING: 409,
    Outcome.FAILED: 422,
    Outcome.CANCELLED: 422,
    Outcome.TIMED_OUT: 422,
}


def run_status(pipelinerun: Obj, taskruns: list[Obj] | None = None, task_details: bool = True) -> dict[str, Any]:
    """The seed's four fields from the Succeeded condition, plus extras. Without `task_details`,
    the TaskRuns make only the failure digest and `tasks` holds the names alone."""
    cond = succeeded_condition(pipelinerun)
    meta = pipelinerun.get("metadata") or {}
    status = status_of(pipelinerun)
    outcome = outcome_of(pipelinerun)
    body: dict[str, Any] = {
        "message": cond.message if cond else "The PipelineRun has no status yet",
        "reason": cond.reason if cond else "Pending",
        "type": "Succeeded",
        "status": cond.status if cond else "Unknown",
        "name": name_of(pipelinerun),
        "namespace": meta.get("namespace", ""),
        "outcome": str(outcome),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "tasks": task_summaries(pipelinerun, taskruns if task_details else None),
    }
    # Only where the TaskRuns were read: the steps that failed are in their status.
    digest = failure_digest(pipelinerun, taskruns) if taskruns is not None else None
    if digest is not None:
        body["digest"] = digest
    return body


def task_summaries(pipelinerun: Obj, taskruns: list[Obj] | None) -> list[dict[str, Any]]:
    status = status_of(pipelinerun)
    by_name = {name_of(tr): tr for tr in taskruns or []}
    tasks: list[dict[str, Any]] = []
    for ref in status.get("childReferences") or []:
        item: dict[str, Any] = {
            "name": ref.get("pipelineTaskName", ""),
            "kind": ref.get("kind", "TaskRun"),
            "run": ref.get("name", ""),
        }
        if ref.get("displayName"):
            item["displayName"] = ref["displayName"]
        taskrun = by_name.get(ref.get("name", ""))
        if taskrun is not None:
            cond = succeeded_condition(taskrun)
            tr_status = status_of(taskrun)
            item.update(
                outcome=str(outcome_of(taskrun)),
                reason=cond.reason if cond else "Pending",
                message=cond.message if cond else "",
                startTime=tr_status.get("startTime"),
                completionTime=tr_status.get("completionTime"),
                retries=len(tr_status.get("retriesStatus") or []),
            )
        tasks.append(item)
    for skipped in status.get("skippedTasks") or []:
        tasks.append({"name": skipped.get("name", ""), "outcome": "skipped", "reason": skipped.get("reason", "")})
    return tasks


def http_code(outcome: Outcome) -> int:
    return HTTP_CODES[outcome]
