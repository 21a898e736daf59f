"""The run model: what the listener needs to know of a PipelineRun, its TaskRuns and their pods.

Functions here read plain Kubernetes object dicts and never call the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

Obj = dict[str, Any]

STEP_PREFIX = "step-"
SIDECAR_PREFIX = "sidecar-"
PIPELINE_RUN_LABEL = "tekton.dev/pipelineRun"
PIPELINE_TASK_LABEL = "tekton.dev/pipelineTask"
TASK_RUN_LABEL = "tekton.dev/taskRun"

# Container waiting reasons after which a container will not start by itself soon.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def labels_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def uid_of(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("uid") or "")


def owned_by(obj: Obj, kind: str, uids: set[str] | frozenset[str]) -> bool:
    """True if an ownerReference of `obj` names an owner of `kind` whose uid is in `uids`.

    Labels say which run an object claims to belong to, and anyone who may create TaskRuns or
    pods in the namespace can set them; the owner's uid is what Tekton's controller writes when it
    creates the child. Labels select, the ownerReference decides."""
    refs = (obj.get("metadata") or {}).get("ownerReferences")
    return any(
        isinstance(ref, dict) and ref.get("kind") == kind and ref.get("uid") in uids
        for ref in (refs if isinstance(refs, list) else [])
    )


def owned_children(
    pipelinerun: Obj | None, taskruns: Mapping[str, Obj], pods: Mapping[str, Obj]
) -> tuple[dict[str, Obj], dict[str, Obj]]:
    """The run's own TaskRuns (owned by its uid) and their pods (owned by one of those TaskRuns'
    uids), out of the objects that carry its label."""
    run_uid = uid_of(pipelinerun)
    if not run_uid:
        return {}, {}
    mine = {name: tr for name, tr in taskruns.items() if owned_by(tr, "PipelineRun", {run_uid})}
    taskrun_uids = {uid_of(tr) for tr in mine.values()} - {""}
    return mine, {name: pod for name, pod in pods.items() if owned_by(pod, "TaskRun", taskrun_uids)}


def status_of(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def succeeded_condition(obj: Mapping[str, Any]) -> Condition | None:
    """The `Succeeded` condition; not the last one, since conditions are sorted by type. Tolerates
    malformed objects (a CloudEvent's payload is not checked by any API server)."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    for cond in conditions if isinstance(conditions, list) else []:
        if isinstance(cond, Mapping) and cond.get("type") == "Succeeded":
            return Condition(
                type="Succeeded",
                status=str(cond.get("status") or "Unknown"),
                reason=str(cond.get("reason") or ""),
                message=str(cond.get("message") or ""),
            )
    return None


def is_done(obj: Obj) -> bool:
    cond = succeeded_condition(obj)
    return cond is not None and cond.status in ("True", "False")


@dataclass(frozen=True)
class Container:
    """One container of a TaskRun pod, in `pod.spec.containers` order."""

    container: str  # e.g. "step-build"
    name: str  # e.g. "build" (tkn strips the prefix)
    is_step: bool
    state: str  # waiting | running | terminated | unknown
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    restarts: int = 0  # the kubelet's restartCount
    finished_at: str = ""  # terminated: the kubelet's finishedAt
    restarting: bool = False  # terminated, and the pod's restartPolicy has the kubelet start it again

    @property
    def started(self) -> bool:
        return self.state in ("running", "terminated")

    @property
    def stuck(self) -> bool:
        return self.state == "waiting" and self.reason in STUCK_REASONS


def pod_containers(pod: Obj, sidecars: bool = False) -> list[Container]:
    """Step containers (and sidecars if asked) in the pod spec's order, never the kubelet's
    name-sorted `containerStatuses` order (`step-10` would come before `step-2`)."""
    statuses = {s.get("name"): s for s in status_of(pod).get("containerStatuses") or []}
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    pod_ended = status_of(pod).get("phase") in ("Succeeded", "Failed")
    out = []
    for spec in (pod.get("spec") or {}).get("containers") or []:
        cname = str(spec.get("name", ""))
        is_step = cname.startswith(STEP_PREFIX)
        if not is_step and not (sidecars and cname.startswith(SIDECAR_PREFIX)):
            continue
        short = cname[len(STEP_PREFIX) :] if is_step else cname[len(SIDECAR_PREFIX) :]
        container = _container(cname, short, is_step, statuses.get(cname))
        if container.state == "terminated" and not pod_ended:
            again = policy == "Always" or (policy == "OnFailure" and container.exit_code != 0)
            container = replace(container, restarting=again)
        out.append(container)
    return out


def _container(cname: str, short: str, is_step: bool, status: Obj | None) -> Container:
    state = (status or {}).get("state") or {}
    restarts = int((status or {}).get("restartCount") or 0)
    if "terminated" in state:
        term = state["terminated"] or {}
        return Container(
            cname,
            short,
            is_step,
            "terminated",
            str(term.get("reason") or ""),
            str(term.get("message") or ""),
            term.get("exitCode"),
            restarts,
            str(term.get("finishedAt") or ""),
        )
    if "running" in state:
        return Container(cname, short, is_step, "running", restarts=restarts)
    if "waiting" in state:
        wait = state["waiting"] or {}
        return Container(
            cname, short, is_step, "waiting", str(wait.get("reason") or ""), str(wait.get("message") or "")
        )
    return Container(cname, short, is_step, "unknown")


@dataclass(frozen=True)
class Attempt:
    """One pod of a TaskRun: retries get a new pod, earlier ones listed in `retriesStatus`."""

    task: str  # pipelineTask name
    taskrun: str
    index: int
    pod: str
    start_time: str


def pipeline_task_of(taskrun: Obj) -> str:
    return labels_of(taskrun).get(PIPELINE_TASK_LABEL) or name_of(taskrun)


def attempts_of(taskrun: Obj) -> list[Attempt]:
    status = status_of(taskrun)
    task, trname = pipeline_task_of(taskrun), name_of(taskrun)
    out = []
    for index, retry in enumerate(status.get("retriesStatus") or []):
        pod = str((retry or {}).get("podName") or "")
        if pod:
            out.append(Attempt(task, trname, index, pod, str(retry.get("startTime") or "")))
    pod = str(status.get("podName") or "")
    if pod and all(a.pod != pod for a in out):
        out.append(
            Attempt(task, trname, len(status.get("retriesStatus") or []), pod, str(status.get("startTime") or ""))
        )
    return out


def taskrun_start_key(taskrun: Obj) -> tuple[str, str]:
    """Start order: startTime, then creation, then name (stable for equal times)."""
    meta = taskrun.get("metadata") or {}
    start = str(status_of(taskrun).get("startTime") or meta.get("creationTimestamp") or "~")
    return start, name_of(taskrun)
