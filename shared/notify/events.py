"""Tekton PipelineRun CloudEvents: what happened to which run.

Tekton (pipeline v1.15, `pkg/reconciler/events/cloudevent`) sends one CloudEvent per change of
the run's `Succeeded` condition, with a new random `id` on every send, `subject` = run name and
`data` = `{"pipelineRun": <run in the v1beta1 shape>}` (also for v1 runs). The type is derived
from the condition: Unknown/Started -> started, Unknown/Running -> running, any other Unknown
reason -> unknown, True -> successful, False -> failed. `queued` is not sent by Tekton v1.15; it
is accepted for senders that report a run before the controller picks it up.

Ordering: a run moves forward only, so every event gets a *rank* and the notifier never acts on
an event ranked below one it has already seen for that run:

    rank 0  queued, and unknown/PipelineRunPending            (run waits to be started)
    rank 1  started, and unknown/ResolvingPipelineRef          (picked up, no task yet)
    rank 2  running                                           (TaskRuns created)
    rank 3  unknown with any other reason: PipelineRunStopping, *RunningFinally,
            PipelineRunCouldntCancel/TimeOut, ...              (still running, winding down)
    rank 4  successful / failed                               (terminal, final)

`unknown` is ranked by its reason because Tekton uses it both before `running` (pending,
resolving) and after it (stopping, finally). An unknown reason not listed is put at rank 3: all of
ranks 1-3 map to the same external commit state (pending/running), so a wrong guess never changes
what a commit shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.runs.model import Condition, succeeded_condition
from shared.runs.outcome import Outcome, outcome_of_condition

TYPE_PREFIX = "dev.tekton.event.pipelinerun."
TYPE_SUFFIX = ".v1"
STATES = ("queued", "started", "running", "unknown", "successful", "failed")
TERMINAL_STATES = frozenset({"successful", "failed"})
TERMINAL_RANK = 4

_BASE_RANK = {"queued": 0, "started": 1, "running": 2, "unknown": 3, "successful": 4, "failed": 4}
_UNKNOWN_REASON_RANK = {"PipelineRunPending": 0, "ResolvingPipelineRef": 1, "Started": 1}
_CONDITION_STATUS = {"successful": "True", "failed": "False"}


class EventError(ValueError):
    """The event claims to be a PipelineRun event but cannot be understood (answer 400)."""


def state_from_type(event_type: str) -> str | None:
    """`dev.tekton.event.pipelinerun.failed.v1` -> `failed`; None for any other type."""
    if not (event_type.startswith(TYPE_PREFIX) and event_type.endswith(TYPE_SUFFIX)):
        return None
    state = event_type[len(TYPE_PREFIX) : -len(TYPE_SUFFIX)]
    return state if state in STATES else None


def state_from_condition(condition: Condition | None) -> str | None:
    """The event type Tekton derives from a Succeeded condition (None: no condition)."""
    if condition is None:
        return None
    if condition.status == "True":
        return "successful"
    if condition.status == "False":
        return "failed"
    reason = condition.reason
    if reason == "Started":
        return "started"
    if reason == "Running":
        return "running"
    return "unknown"


def rank_of(state: str, reason: str = "") -> int:
    if state == "unknown":
        return _UNKNOWN_REASON_RANK.get(reason, _BASE_RANK["unknown"])
    return _BASE_RANK[state]


@dataclass(frozen=True)
class RunEvent:
    """One PipelineRun event, reduced to what the notifier needs."""

    event_type: str
    event_id: str
    state: str
    reason: str
    message: str
    uid: str
    name: str
    namespace: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    start_time: str = ""
    completion_time: str = ""

    @property
    def rank(self) -> int:
        return rank_of(self.state, self.reason)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def outcome(self) -> Outcome:
        """The run model's outcome of the state the event reports."""
        status = _CONDITION_STATUS.get(self.state, "Unknown")
        return outcome_of_condition(Condition("Succeeded", status, self.reason, self.message))

    @property
    def cancelled(self) -> bool:
        return self.outcome is Outcome.CANCELLED

    pipeline_ref: str = ""

    @property
    def pipeline(self) -> str:
        """`spec.pipelineRef.name`, else the run name (inline specs, resolver refs).

        Not the `tekton.dev/pipeline` label: the controller adds it after the first events, and
        the status name built from this must not change during a run.
        """
        return self.pipeline_ref or self.name


def _params(spec: Mapping[str, Any]) -> dict[str, str]:
    """String params of the run (array/object params are kept as compact JSON)."""
    out: dict[str, str] = {}
    params = spec.get("params")
    for param in params if isinstance(params, list) else []:
        if not isinstance(param, Mapping) or not isinstance(param.get("name"), str):
            continue
        value = param.get("value")
        out[param["name"]] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return out


def _pipeline_ref(spec: Mapping[str, Any]) -> str:
    ref = spec.get("pipelineRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else ""


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def parse_event(event_type: str, event_id: str, data: Any) -> RunEvent | None:
    """A RunEvent from a CloudEvent's type, id and data; None if it is no PipelineRun event.

    `data` may be the decoded JSON object, or bytes/str holding it. The state comes from the type
    and is checked against the payload's Succeeded condition; if they disagree the condition wins
    (it is the snapshot the event was made from). Raises EventError for a PipelineRun event type
    whose payload is unusable.

    What this returns is a *claim*: whoever can reach the notifier can send it. The notifier only
    takes the run's namespace, name and uid from it and reads the run itself (`run_event`).
    """
    type_state = state_from_type(event_type)
    if type_state is None:
        return None
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as e:  # nesting deeper than the parser's stack: not JSON we take
            raise EventError(f"data is not JSON: {e}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("pipelineRun"), Mapping):
        raise EventError('data has no "pipelineRun" object')
    return run_event(data["pipelineRun"], event_type, event_id, type_state)


def run_event(run: Mapping[str, Any], event_type: str = "", event_id: str = "", claimed: str | None = None) -> RunEvent:
    """The RunEvent a PipelineRun object stands for: an event's payload, or the run as the API
    returns it (`claimed` None: the state is its Succeeded condition's, `queued` without one)."""
    metadata = run.get("metadata") if isinstance(run.get("metadata"), Mapping) else {}
    spec = run.get("spec") if isinstance(run.get("spec"), Mapping) else {}
    status = run.get("status") if isinstance(run.get("status"), Mapping) else {}
    uid, name, namespace = metadata.get("uid"), metadata.get("name"), metadata.get("namespace")
    for key, value in (("uid", uid), ("name", name), ("namespace", namespace)):
        if not isinstance(value, str) or not value:
            raise EventError(f"pipelineRun.metadata.{key} is missing")
    condition = succeeded_condition(run)
    condition_state = state_from_condition(condition)
    state = claimed or condition_state or "queued"
    if condition_state is not None and condition_state != state:
        # e.g. a `running` type carrying a False condition: the payload is the snapshot the event
        # was made from, so it wins. A `queued` run may already carry an Unknown condition.
        if not (state == "queued" and condition_state == "unknown"):
            state = condition_state
    reason = condition.reason if condition else ""
    message = condition.message if condition else ""
    return RunEvent(
        event_type=event_type or f"{TYPE_PREFIX}{state}{TYPE_SUFFIX}",
        event_id=event_id,
        state=state,
        reason=reason,
        message=message,
        uid=str(uid),
        name=str(name),
        namespace=str(namespace),
        annotations=_str_map(metadata.get("annotations")),
        labels=_str_map(metadata.get("labels")),
        params=_params(spec),
        start_time=str(status.get("startTime") or ""),
        completion_time=str(status.get("completionTime") or ""),
        pipeline_ref=_pipeline_ref(spec),
    )
