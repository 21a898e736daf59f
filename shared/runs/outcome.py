"""How a run (or a TaskRun) ended, read from its `Succeeded` condition: one mapping for every user.

`/status`, the log stream's last line and the notifier all ask this module, so they agree on which
reasons mean cancelled or timed out.
"""

from __future__ import annotations

from enum import StrEnum

from shared.runs.model import Condition, Obj, succeeded_condition


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed-out"
    RUNNING = "running"
    PENDING = "pending"

    @property
    def done(self) -> bool:
        return self not in (Outcome.RUNNING, Outcome.PENDING)


# False reasons that mean "somebody stopped it" rather than "it failed" (PipelineRuns and TaskRuns).
CANCELLED_REASONS = frozenset(
    {"Cancelled", "PipelineRunCancelled", "TaskRunCancelled", "StoppedRunFinally", "CancelledRunFinally"}
)
TIMED_OUT_REASONS = frozenset({"PipelineRunTimeout", "TaskRunTimeout"})
# False reasons that are a failure of the pipeline's own code; any other is a setup error
# (validation, a missing Pipeline, a resolver that failed...).
CODE_FAILURE_REASONS = frozenset({"Failed"}) | TIMED_OUT_REASONS
PENDING_REASONS = frozenset({"PipelineRunPending", "Pending"})


def outcome_of_condition(cond: Condition | None) -> Outcome:
    if cond is None:
        return Outcome.PENDING
    if cond.status == "True":
        return Outcome.SUCCEEDED
    if cond.status == "False":
        if cond.reason in TIMED_OUT_REASONS:
            return Outcome.TIMED_OUT
        if cond.reason in CANCELLED_REASONS:
            return Outcome.CANCELLED
        return Outcome.FAILED  # StepFailed, Failed, validation reasons...: any False fails
    if cond.reason in PENDING_REASONS:
        return Outcome.PENDING
    return Outcome.RUNNING


def outcome_of(obj: Obj) -> Outcome:
    return outcome_of_condition(succeeded_condition(obj))
