"""Builders for the objects Tekton v1.15's reconcilers and a kubelet write, in the fixtures' shapes.

Every shape here is copied from `tests/fixtures/tekton/runs/` (objects written by the real
reconcilers; pod status emulated as a kubelet writes it). Builders are pure: they take names,
uids and times and return plain dicts; the simulator decides when to send which.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

API_VERSION = "tekton.dev/v1"
MANAGED_BY = "tekton-pipelines"
RELEASE = "unknown"  # what `changeset.Get()` yields outside a release build, as in the fixtures
ENTRYPOINT_IMAGE = (
    "ghcr.io/tektoncd/pipeline/entrypoint-bff0a22da108bc2f16c818c97641a296:v1.12.0"
    "@sha256:3ec960b07abd85604242e146092e72f11be8787452c2a20d12a37fdee4a666e2"
)
NOP_IMAGE = (
    "ghcr.io/tektoncd/pipeline/nop-8eac7c133edad5df719dc37b36b62482:v1.12.0"
    "@sha256:f89fb760b05fdef6895290e524d992b66ede72546622d5028b0406a9bea36d2f"
)
SHELL_IMAGE = "cgr.dev/chainguard/busybox@sha256:19f02276bf8dbdd62f069b922f10c65262cc34b710eea26ff928129a736be791"
HOST_IP = "127.0.0.1"
FEATURE_FLAGS: Obj = {
    "awaitSidecarReadiness": True,
    "coschedule": "workspaces",
    "enableAPIFields": "beta",
    "enableProvenanceInStatus": True,
    "enforceNonfalsifiability": "none",
    "maxResultSize": 4096,
    "resultExtractionMethod": "termination-message",
    "runningInEnvWithInjectedSidecars": True,
    "sendCloudEventsForRuns": True,
    "verificationNoMatchPolicy": "ignore",
}

# Condition messages and reasons, verbatim from Tekton v1.15 (see the fixtures).
TR_RUNNING_MSG = "Not all Steps in the Task have finished executing"
TR_SUCCEEDED_MSG = "All Steps have completed executing"
CANCELLED_BY_PR_MSG = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
CANCELLED_BY_PR_TIMEOUT_MSG = "TaskRun cancelled as the PipelineRun it belongs to has timed out."
SKIP_WHEN = "When Expressions evaluated to false"
SKIP_STOPPING = "PipelineRun was stopping"


# -- small helpers ---------------------------------------------------------------------------------
def ts(when: float) -> str:
    """`metav1.Time` as serialised: RFC 3339, whole seconds, UTC."""
    return dt.datetime.fromtimestamp(int(when), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_ms(when: float) -> str:
    """The entrypoint's `StartedAt` in a termination message: milliseconds."""
    stamp = dt.datetime.fromtimestamp(when, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def random_suffix(length: int = 5) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def child_name(parent: str, suffix: str) -> str:
    """knative's `kmeta.ChildName`: `<parent><suffix>`, parent shortened with an md5 when > 63."""
    if len(parent) + len(suffix) <= 63:
        return parent + suffix
    digest = hashlib.md5(parent.encode()).hexdigest()  # naming only, as kmeta does
    head = 63 - len(suffix) - len(digest)
    return parent[: max(head, 0)] + digest + suffix


def duration(seconds: float) -> str:
    """Go's `time.Duration.String()` down to milliseconds, e.g. `1h0m0s`, `3s`, `1.5s`, `500ms`."""
    millis = round(seconds * 1000)
    if 0 < millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def qualified_image(image: str) -> str:
    """The image reference containerd reports: docker.io and library/ made explicit."""
    if "@" in image:
        return image
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    if "/" not in image:
        return f"docker.io/library/{image}"
    return f"docker.io/{image}"


def image_id(image: str) -> str:
    if "@" in image:
        return image
    repo = qualified_image(image).rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_id() -> str:
    return "containerd://" + secrets.token_hex(32)


def condition(status: str, reason: str, message: str, now: float) -> Obj:
    return {"lastTransitionTime": ts(now), "message": message, "reason": reason, "status": status, "type": "Succeeded"}


def owner_reference(kind: str, name: str, uid: str) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": kind,
        "name": name,
        "uid": uid,
    }


# -- specs -----------------------------------------------------------------------------------------
@dataclass
class StepSpec:
    """What a Task step declares; the simulator's behaviour lives in `scenarios.Step`."""

    name: str
    image: str
    script: str | None = None
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    on_error: str | None = None
    env: list[Obj] = field(default_factory=list)

    def to_dict(self) -> Obj:
        out: Obj = {"computeResources": {}, "image": self.image, "name": self.name}
        if self.env:
            out["env"] = [dict(e) for e in self.env]
        if self.script is not None:
            out["script"] = self.script
        if self.command:
            out["command"] = list(self.command)
        if self.args:
            out["args"] = list(self.args)
        if self.on_error:
            out["onError"] = self.on_error
        return out


def task_spec(steps: list[StepSpec], sidecars: list[tuple[str, str]]) -> Obj:
    """A TaskRun's `spec.taskSpec` / `status.taskSpec`."""
    spec: Obj = {"steps": [step.to_dict() for step in steps]}
    if sidecars:
        spec["sidecars"] = [{"computeResources": {}, "image": image, "name": name} for name, image in sidecars]
    return spec


def embedded_task_spec(steps: list[StepSpec], sidecars: list[tuple[str, str]]) -> Obj:
    """A pipeline task's inline `taskSpec`, as the webhook leaves it (`metadata: {}`)."""
    return {"metadata": {}, **task_spec(steps, sidecars)}


# -- PipelineRun -----------------------------------------------------------------------------------
def pipelinerun(name: str, namespace: str, pipeline_spec: Obj, timeout: str, labels: dict[str, str]) -> Obj:
    """A PipelineRun as submitted, after the webhook's `SetDefaults()`."""
    metadata: Obj = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": metadata,
        "spec": {
            "pipelineSpec": pipeline_spec,
            "taskRunTemplate": {"serviceAccountName": "default"},
            "timeouts": {"pipeline": timeout},
        },
    }


def tasks_message(completed: int, failed: int, cancelled: int, incomplete: int | None, skipped: int) -> str:
    """The PipelineRun condition message (`Incomplete` only while running)."""
    head = f"Tasks Completed: {completed} (Failed: {failed}, Cancelled {cancelled})"
    if incomplete is None:
        return f"{head}, Skipped: {skipped}"
    return f"{head}, Incomplete: {incomplete}, Skipped: {skipped}"


def child_reference(taskrun_name: str, pipeline_task: str, when: list[Obj] | None = None) -> Obj:
    ref: Obj = {"apiVersion": API_VERSION, "kind": "TaskRun", "name": taskrun_name, "pipelineTaskName": pipeline_task}
    if when:
        ref["whenExpressions"] = when
    return ref


def pipelinerun_status(
    *,
    pipeline_spec: Obj,
    start_time: float,
    cond: Obj,
    child_refs: list[Obj],
    skipped: list[Obj],
    finally_start: float | None = None,
    completion: float | None = None,
) -> Obj:
    status: Obj = {
        "conditions": [cond],
        "pipelineSpec": pipeline_spec,
        "provenance": {"featureFlags": dict(FEATURE_FLAGS)},
        "startTime": ts(start_time),
    }
    if child_refs:
        status["childReferences"] = child_refs
    if skipped:
        status["skippedTasks"] = skipped
    if finally_start is not None:
        status["finallyStartTime"] = ts(finally_start)
    if completion is not None:
        status["completionTime"] = ts(completion)
    return status


# -- TaskRun ---------------------------------------------------------------------------------------
def run_labels(pr_name: str, pr_uid: str, pipeline_task: str, member_of: str, extra: dict[str, str]) -> dict[str, str]:
    """Labels Tekton puts on a pipeline's TaskRun (the PipelineRun's own labels propagate)."""
    return {
        **extra,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "tekton.dev/memberOf": member_of,
        "tekton.dev/pipeline": extra.get("tekton.dev/pipeline", pr_name),
        "tekton.dev/pipelineRun": pr_name,
        "tekton.dev/pipelineRunUID": pr_uid,
        "tekton.dev/pipelineTask": pipeline_task,
    }


def controller_metadata(name: str, namespace: str, labels: dict[str, str], owner: Obj) -> Obj:
    """Metadata of an object Tekton's controller creates for its owner (TaskRun, Pod)."""
    return {
        "annotations": {"pipeline.tekton.dev/release": RELEASE},
        "labels": dict(labels),
        "name": name,
        "namespace": namespace,
        "ownerReferences": [owner],
    }


def taskrun(
    name: str, namespace: str, labels: dict[str, str], owner: Obj, spec_task: Obj, timeout: str, retries: int
) -> Obj:
    spec: Obj = {"serviceAccountName": "default", "taskSpec": spec_task, "timeout": timeout}
    if retries:
        spec["retries"] = retries
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": controller_metadata(name, namespace, labels, owner),
        "spec": spec,
    }


def taskrun_status(
    *,
    cond: Obj,
    pod_name: str | None,
    start_time: float | None,
    steps: list[Obj],
    spec_task: Obj,
    sidecars: list[Obj] | None = None,
    completion: float | None = None,
    retries_status: list[Obj] | None = None,
    artifacts: bool = False,
) -> Obj:
    status: Obj = {
        "conditions": [cond],
        "provenance": {"featureFlags": dict(FEATURE_FLAGS)},
        "steps": steps,
        "taskSpec": spec_task,
    }
    if pod_name is not None:
        status["podName"] = pod_name
    if start_time is not None:
        status["startTime"] = ts(start_time)
    if sidecars:
        status["sidecars"] = sidecars
    if completion is not None:
        status["completionTime"] = ts(completion)
    if retries_status:
        status["retriesStatus"] = retries_status
    if artifacts:
        status["artifacts"] = {}
    return status


# -- container state, shared by Pod and TaskRun status ---------------------------------------------
@dataclass
class Container:
    """One container's state as a kubelet reports it, plus what the entrypoint wrote."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    waiting_reason: str = "PodInitializing"
    waiting_message: str = ""
    cid: str = ""
    started_at: float = 0.0  # container start (kubelet)
    step_started_at: float = 0.0  # the entrypoint's StartedAt (actual step start)
    finished_at: float = 0.0
    exit_code: int = 0  # the container's exit code
    reason: str = ""  # Completed | Error
    message: str = ""  # termination message
    last_state: Obj | None = None
    restart_count: int = 0

    def run(self, now: float) -> None:
        self.state, self.cid, self.started_at = "running", container_id(), now

    def terminate(self, now: float, exit_code: int, message: str = "", started: float | None = None) -> None:
        if not self.cid:
            self.cid = container_id()
            self.started_at = started if started is not None else now
        self.state, self.finished_at, self.exit_code = "terminated", now, exit_code
        self.reason = "Completed" if exit_code == 0 else "Error"
        self.message = message

    def k8s_state(self) -> Obj:
        if self.state == "waiting":
            waiting: Obj = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            return {"waiting": waiting}
        if self.state == "running":
            return {"running": {"startedAt": ts(self.started_at)}}
        term: Obj = {
            "containerID": self.cid,
            "exitCode": self.exit_code,
            "finishedAt": ts(self.finished_at),
            "reason": self.reason,
            "startedAt": ts(self.started_at),
        }
        if self.message:
            term["message"] = self.message
        return {"terminated": term}

    def status(self, init: bool = False) -> Obj:
        """A `corev1.ContainerStatus` as in the fixtures' pods."""
        out: Obj = {
            "image": self.image if init else qualified_image(self.image),
            "imageID": image_id(self.image) if self.state != "waiting" else "",
            "lastState": self.last_state or {},
            "name": self.name,
            # An init container that completed counts as ready; a finished step does not.
            "ready": self.state == "running" if not init else self.state == "terminated",
            "restartCount": self.restart_count,
            "started": self.state == "running",
            "state": self.k8s_state(),
        }
        if self.state != "waiting":
            out["containerID"] = self.cid
        return out


def termination_message(started: float, extra: list[tuple[str, str]] = ()) -> str:
    """What Tekton's entrypoint writes to /tekton/termination (type 3 = internal, 1 = result)."""
    entries = [{"key": "StartedAt", "value": ts_ms(started), "type": 3}]
    entries += [{"key": key, "value": value, "type": 3} for key, value in extra]
    return json.dumps(entries, separators=(",", ":"))


def step_status(step_name: str, c: Container, termination_reason: str | None, step_exit: int | None = None) -> Obj:
    """A TaskRun `status.steps[]` entry from its container (Tekton rewrites startedAt, drops StartedAt)."""
    out: Obj = {"container": c.name, "name": step_name, "provenance": {}}
    if c.state == "waiting":
        out["waiting"] = c.k8s_state()["waiting"]
        return out
    out["imageID"] = image_id(c.image)
    if c.state == "running":
        out["running"] = {"startedAt": ts(c.started_at)}
        return out
    term: Obj = {
        "containerID": c.cid,
        "exitCode": c.exit_code if step_exit is None else step_exit,
        "finishedAt": ts(c.finished_at),
        "reason": c.reason,
        "startedAt": ts(c.step_started_at or c.started_at),
    }
    out["terminated"] = term
    out["terminationReason"] = termination_reason or c.reason
    return out


def killed_step_status(step_name: str, c: Container, pod_name: str, reason: str, now: float) -> Obj:
    """`terminateStepsInPod`: a running/waiting step of a failed TaskRun marked terminated, exit 1."""
    term: Obj = {
        "exitCode": 1,
        "finishedAt": ts(now),
        "message": f"Step {step_name} terminated as pod {pod_name} is terminated",
        "reason": reason,
    }
    out: Obj = {"container": c.name, "name": step_name, "provenance": {}}
    if c.state == "running":
        term["startedAt"] = ts(c.started_at)
        out["imageID"] = image_id(c.image)
    out["terminated"] = term
    out["terminationReason"] = reason
    return out


def sidecar_status(sidecar_name: str, c: Container, stopped: bool) -> Obj:
    out: Obj = {"container": c.name, "name": sidecar_name}
    if c.state == "waiting":
        out["waiting"] = c.k8s_state()["waiting"]
        return out
    if stopped and c.last_state:
        # Tekton reports the killed original container, with its own words for the nop swap.
        last = dict(c.last_state["terminated"])
        last["reason"] = "Completed"
        last["message"] = "Sidecar container successfully stopped by nop image"
        return {**out, "imageID": image_id(NOP_IMAGE), "terminated": last}
    out["imageID"] = image_id(c.image)
    out.update(c.k8s_state())
    return out


# -- Pod -------------------------------------------------------------------------------------------
def script_file(index: int) -> str:
    return f"/tekton/scripts/script-{index}-{random_suffix()}"


def _encoded_script(script: str) -> str:
    # A script without a shebang runs under sh with `set -e` (pkg/pod/script.go).
    if not script.startswith("#!"):
        script = "#!/bin/sh\nset -e\n" + script
    return base64.b64encode(script.encode()).decode()


def pod(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: Obj,
    steps: list[StepSpec],
    sidecars: list[tuple[str, str]],
    timeout_seconds: float,
    node_name: str,
) -> Obj:
    """The pod `pkg/pod.Builder` creates for a TaskRun attempt (plus `nodeName`: no scheduler here)."""
    count = len(steps)
    scripts = {i: script_file(i) for i, step in enumerate(steps) if step.script is not None}
    containers: list[Obj] = []
    for i, step in enumerate(steps):
        args = ["-wait_file", "/tekton/downward/ready", "-wait_file_content"] if i == 0 else []
        if i:
            args += ["-wait_file", f"/tekton/run/{i - 1}/out"]
        args += ["-post_file", f"/tekton/run/{i}/out", "-termination_path", "/tekton/termination"]
        args += ["-step_metadata_dir", f"/tekton/run/{i}/status"]
        if step.on_error:
            args += ["-on_error", step.on_error]
        if i in scripts:
            args += ["-entrypoint", scripts[i], "--"]
        else:
            command = step.command or ["sh"]
            args += ["-entrypoint", command[0], "--", *command[1:], *step.args]
        mounts: list[Obj] = []
        if i in scripts:
            mounts.append({"mountPath": "/tekton/scripts", "name": "tekton-internal-scripts", "readOnly": True})
        if i == 0:
            mounts.append({"mountPath": "/tekton/downward", "name": "tekton-internal-downward", "readOnly": True})
        mounts.append({"mountPath": "/tekton/creds", "name": f"tekton-creds-init-home-{i}"})
        for j in range(count):
            mount: Obj = {"mountPath": f"/tekton/run/{j}", "name": f"tekton-internal-run-{j}"}
            if j != i:
                mount["readOnly"] = True
            mounts.append(mount)
        mounts += [
            {"mountPath": "/tekton/bin", "name": "tekton-internal-bin", "readOnly": True},
            {"mountPath": "/workspace", "name": "tekton-internal-workspace"},
            {"mountPath": "/tekton/home", "name": "tekton-internal-home"},
            {"mountPath": "/tekton/results", "name": "tekton-internal-results"},
            {"mountPath": "/tekton/steps", "name": "tekton-internal-steps", "readOnly": True},
            {"mountPath": "/tekton/artifacts", "name": "tekton-internal-artifacts"},
        ]
        containers.append(
            {
                "args": args,
                "command": ["/tekton/bin/entrypoint"],
                "image": step.image,
                "name": f"step-{step.name}",
                "resources": {},
                **({"env": [dict(e) for e in step.env]} if step.env else {}),
                "terminationMessagePath": "/tekton/termination",
                "volumeMounts": mounts,
            }
        )
    containers += [{"image": image, "name": f"sidecar-{sname}", "resources": {}} for sname, image in sidecars]

    init: list[Obj] = [
        {
            "command": [
                "/ko-app/entrypoint",
                "init",
                "/ko-app/entrypoint",
                "/tekton/bin/entrypoint",
                *[f"step-{s.name}" for s in steps],
            ],
            "image": ENTRYPOINT_IMAGE,
            "name": "prepare",
            "resources": {},
            "volumeMounts": [
                {"mountPath": "/tekton/bin", "name": "tekton-internal-bin"},
                {"mountPath": "/tekton/steps", "name": "tekton-internal-steps"},
            ],
            "workingDir": "/",
        }
    ]
    if scripts:
        blocks = []
        for i, path in scripts.items():
            blocks.append(
                f'scriptfile="{path}"\n'
                "touch ${scriptfile} && chmod +x ${scriptfile}\n"
                "cat > ${scriptfile} << '_EOF_'\n"
                f"{_encoded_script(steps[i].script or '')}\n"
                "_EOF_\n"
                '/tekton/bin/entrypoint decode-script "${scriptfile}"\n'
            )
        init.append(
            {
                "args": ["-c", "".join(blocks)],
                "command": ["sh"],
                "image": SHELL_IMAGE,
                "name": "place-scripts",
                "resources": {},
                "volumeMounts": [
                    {"mountPath": "/tekton/scripts", "name": "tekton-internal-scripts"},
                    {"mountPath": "/tekton/bin", "name": "tekton-internal-bin"},
                ],
            }
        )
    volumes: list[Obj] = [
        {"emptyDir": {}, "name": f"tekton-internal-{v}"} for v in ("workspace", "home", "results", "steps", "artifacts")
    ]
    if scripts:
        volumes.append({"emptyDir": {}, "name": "tekton-internal-scripts"})
    volumes.append({"emptyDir": {}, "name": "tekton-internal-bin"})
    volumes.append(
        {
            "downwardAPI": {
                "items": [{"fieldRef": {"fieldPath": "metadata.annotations['tekton.dev/ready']"}, "path": "ready"}]
            },
            "name": "tekton-internal-downward",
        }
    )
    for i in range(count):
        volumes.append({"emptyDir": {"medium": "Memory"}, "name": f"tekton-creds-init-home-{i}"})
        volumes.append({"emptyDir": {}, "name": f"tekton-internal-run-{i}"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": controller_metadata(name, namespace, labels, owner),
        "spec": {
            # Tekton sets the pod deadline to 1.5x the TaskRun timeout.
            "activeDeadlineSeconds": int(timeout_seconds * 1.5),
            "containers": containers,
            "initContainers": init,
            "nodeName": node_name,
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "volumes": volumes,
        },
    }


def _pod_condition(kind: str, status: bool, now: float, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"lastProbeTime": None, "lastTransitionTime": ts(now), "status": "True" if status else "False"}
    if message:
        out["message"] = message
    if reason:
        out["reason"] = reason
    out["type"] = kind
    return out


def pod_status(
    *, init: list[Container], containers: list[Container], phase: str, start: float, now: float, pod_ip: str
) -> Obj:
    """A kubelet's `PodStatus` for the fixtures' stages (initializing, running, done)."""
    initialized = all(c.state == "terminated" for c in init)
    conditions = [_pod_condition("PodReadyToStartContainers", True, now)]
    if phase in ("Succeeded", "Failed"):
        done = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        conditions += [
            _pod_condition("Initialized", True, now, done),
            _pod_condition("Ready", False, now, done),
            _pod_condition("ContainersReady", False, now, done),
        ]
    else:
        if initialized:
            # The fixtures' kubelet keeps the old reason once Initialized turns True.
            conditions.append(_pod_condition("Initialized", True, now, "ContainersNotInitialized"))
        else:
            pending = " ".join(c.name for c in init if c.state != "terminated")
            conditions.append(
                _pod_condition(
                    "Initialized",
                    False,
                    now,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{pending}]",
                )
            )
        unready = [c.name for c in containers if c.state != "running"]
        for kind in ("Ready", "ContainersReady"):
            if unready:
                message = f"containers with unready status: [{' '.join(unready)}]"
                conditions.append(_pod_condition(kind, False, now, "ContainersNotReady", message))
            else:
                conditions.append(_pod_condition(kind, True, now))
    conditions.append(_pod_condition("PodScheduled", True, start))
    return {
        "conditions": conditions,
        # The kubelet lists container statuses sorted by name.
        "containerStatuses": [c.status() for c in sorted(containers, key=lambda c: c.name)],
        "hostIP": HOST_IP,
        "initContainerStatuses": [c.status(init=True) for c in init],
        "phase": phase,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "qosClass": "BestEffort",
        "startTime": ts(start),
    }


def merge_patch(old: Any, new: Any) -> Any:
    """An RFC 7386 merge patch turning `old` into `new` (lists are replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: Obj = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch
