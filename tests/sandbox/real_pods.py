"""Scenarios played on the real node: real pods, real containers, the kubelet's own status.

The pod keeps the shape Tekton's `pkg/pod` builds (labels, ownerReferences, the `prepare` and
`place-scripts` init containers, one `step-<name>` container per step with the entrypoint's
`-wait_file`/`-post_file` arguments, Tekton's volumes), with busybox in every container:
- `prepare` installs a small shell stand-in for Tekton's entrypoint binary into /tekton/bin:
  it waits for the previous step's post file, runs the step, writes the post file (`.err` on
  failure) and the termination message; a step after a failed one exits 1 at once, logging
  nothing, as Tekton's entrypoint does;
- `place-scripts` writes each step's script, which prints the scenario's lines (any bytes),
  at the scenario's pace, waits for a test's `hold`, and exits with the attempt's exit code.

The TaskRun's status is then read off the real pod, as Tekton's controller does it: steps from
`containerStatuses`, the termination message's `StartedAt`/`Reason`/`ExitCode`, the `Succeeded`
condition from the pod phase; cancel and timeout delete the pod (gracefully, as Tekton does).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from . import images
from . import objects as o
from .cluster import ApiError
from .kubelet import parse_rfc3339
from .node import NODE_NAME
from .scenarios import Step
from .simulator import Obj, _Done, _TaskPlayer

# Waiting reasons of a container that will never start without someone changing the pod.
NEVER_STARTS = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
# A printf format per line must stay well inside ARG_MAX; unpaced lines are batched up to this.
PRINTF_BATCH = 32 * 1024

ENTRYPOINT = r"""#!/bin/busybox sh
# A stand-in for Tekton's entrypoint binary: ordering, post files, termination message.
wait_file=""; wait_content=""; post_file=""; term=/tekton/termination; on_error=""; cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    -wait_file) wait_file=$2; shift 2 ;;
    -wait_file_content) wait_content=1; shift ;;
    -post_file) post_file=$2; shift 2 ;;
    -termination_path) term=$2; shift 2 ;;
    -step_metadata_dir) shift 2 ;;
    -on_error) on_error=$2; shift 2 ;;
    -entrypoint) cmd=$2; shift 2 ;;
    --) shift; break ;;
    *) shift ;;
  esac
done
trap 'exit 143' TERM
if [ -n "$wait_file" ]; then
  while :; do
    [ -e "$wait_file.err" ] && break
    if [ -n "$wait_content" ]; then [ -s "$wait_file" ] && break; else [ -e "$wait_file" ] && break; fi
    sleep 0.01
  done
fi
started=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
if [ -n "$wait_file" ] && [ -e "$wait_file.err" ]; then
  printf '[{"key":"StartedAt","value":"%s","type":3},{"key":"Reason","value":"Skipped","type":3}]' "$started" >"$term"
  touch "$post_file.err"
  exit 1
fi
"$cmd" "$@"
code=$?
if [ "$code" -ne 0 ] && [ "$on_error" = continue ]; then
  printf '[{"key":"StartedAt","value":"%s","type":3},{"key":"ExitCode","value":"%s","type":3}]' \
    "$started" "$code" >"$term"
  touch "$post_file"
  exit 0
fi
printf '[{"key":"StartedAt","value":"%s","type":3}]' "$started" >"$term"
if [ "$code" -eq 0 ]; then rm -f "$post_file.err"; touch "$post_file"; else touch "$post_file.err"; fi
exit "$code"
"""


def _printf_literal(data: bytes) -> str:
    """`data` as a single-quoted printf format that prints exactly these bytes."""
    out = []
    for byte in data:
        ch = chr(byte)
        if byte == 0x0A:
            out.append("\\n")
        elif 0x20 <= byte < 0x7F and ch not in "\\'%":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return "'" + "".join(out) + "'"


def _print_lines(step: Step, lines: list[bytes], parts: list[str]) -> None:
    """printf commands for `lines`: one per line when paced, batched up to PRINTF_BATCH when not."""
    batch: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            parts.append("printf " + _printf_literal(b"".join(batch)))
            batch, size = [], 0

    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        data = line if (last and not step.final_newline) else line + b"\n"
        batch.append(data)
        size += len(data)
        if step.interval > 0:
            flush()
            if not last:
                parts.append(f"sleep {step.interval:.3f}")
        elif size >= PRINTF_BATCH:
            flush()
    flush()


def step_script(step: Step, index: int, attempt: int, hold_key: str | None) -> str:
    """A busybox sh script that prints the step's lines at its pace, then holds and exits."""
    parts = ["#!/bin/busybox sh", "trap 'exit 143' TERM"]
    if step.restart_lines is not None:
        # The first instance prints `lines` and crashes; the kubelet starts it again.
        marker = f"/tekton/run/{index}/tpl-restarted"
        parts.append(f"if [ ! -e {marker} ]; then")
        _print_lines(step, list(step.iter_lines()), parts)
        parts += [f"touch {marker}", "exit 1", "fi"]
        _print_lines(step, list(step.iter_restart_lines()), parts)
    elif step.real_script is not None:
        parts.append(step.real_script)
    else:
        _print_lines(step, list(step.iter_lines()), parts)
    if hold_key is not None:
        parts.append(f"while [ ! -e /tpl-hold/{hold_key} ]; do sleep 0.02; done")  # see hold_marker
    if step.forever:
        parts.append("while :; do sleep 0.1; done")
    parts.append(f"exit {step.exit_for(attempt)}")
    return "\n".join(parts) + "\n"


def hold_marker(index: int, step: Step) -> str:
    """Inside a step container: the file that appears once the step's `hold` is set."""
    return f"/tpl-hold/{index}-{step.name}"


def _heredoc_install(path: str, content: str) -> str:
    encoded = base64.b64encode(content.encode()).decode()
    return f"/bin/busybox base64 -d > {path} << '_EOF_'\n{encoded}\n_EOF_\n/bin/busybox chmod +x {path}\n"


def realize(pod: Obj, steps: list[Step], attempt: int, hold_dir: Path, hold_keys: dict[int, str]) -> Obj:
    """Turns the pod `objects.pod` builds for Tekton into one the real node can run."""
    spec = pod["spec"]
    spec["nodeName"] = NODE_NAME
    spec["hostNetwork"] = True  # steps need no pod network: the node's own is enough
    spec["dnsPolicy"] = "Default"
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    # Without sidecars Tekton creates the pod already marked ready (the first step's wait file).
    pod["metadata"].setdefault("annotations", {})["tekton.dev/ready"] = "READY"
    scripts: dict[int, str] = {}
    for i, container in enumerate(spec["containers"]):
        if not container["name"].startswith("step-"):
            raise NotImplementedError("sidecars are played on the kubelet stand-in only")
        step = steps[i]
        container["image"] = images.MISSING if step.image_pull_error else images.BUSYBOX
        container["imagePullPolicy"] = "Never"
        path = f"/tekton/scripts/script-{i}-{o.random_suffix()}"
        scripts[i] = path
        args = container["args"]
        at = args.index("-entrypoint")
        container["args"] = [*args[:at], "-entrypoint", path, "--"]
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] != "/tekton/scripts"]
        mounts.append({"mountPath": "/tekton/scripts", "name": "tekton-internal-scripts", "readOnly": True})
        if i in hold_keys:
            mounts.append({"mountPath": "/tpl-hold", "name": "tpl-hold", "readOnly": True})
        container["volumeMounts"] = mounts
    prepare = spec["initContainers"][0]
    prepare["image"] = images.BUSYBOX
    prepare["imagePullPolicy"] = "Never"
    prepare["command"] = ["/bin/busybox", "sh", "-c", _heredoc_install("/tekton/bin/entrypoint", ENTRYPOINT)]
    blocks = "".join(
        _heredoc_install(path, step_script(steps[i], i, attempt, hold_keys.get(i))) for i, path in scripts.items()
    )
    place = {
        "command": ["/bin/busybox", "sh", "-c", blocks],
        "image": images.BUSYBOX,
        "imagePullPolicy": "Never",
        "name": "place-scripts",
        "resources": {},
        "volumeMounts": [
            {"mountPath": "/tekton/scripts", "name": "tekton-internal-scripts"},
            {"mountPath": "/tekton/bin", "name": "tekton-internal-bin"},
        ],
    }
    spec["initContainers"] = [prepare, place]
    if any(step.restart_lines is not None for step in steps):
        spec["restartPolicy"] = "OnFailure"
    volumes = [v for v in spec["volumes"] if v["name"] != "tekton-internal-scripts"]
    volumes.append({"emptyDir": {}, "name": "tekton-internal-scripts"})
    if hold_keys:
        volumes.append({"hostPath": {"path": str(hold_dir), "type": "Directory"}, "name": "tpl-hold"})
    spec["volumes"] = volumes
    return pod


def _parse_time(value: str | None) -> float:
    return parse_rfc3339(value) / 1e9 if value else 0.0


def _termination_entries(message: str) -> dict[str, str]:
    try:
        return {e["key"]: e["value"] for e in json.loads(message) if isinstance(e, dict)}
    except (ValueError, TypeError, KeyError):
        return {}


class RealTaskPlayer(_TaskPlayer):
    """A TaskRun whose pods run on the real node; its status follows the kubelet's."""

    def _new_attempt(self, attempt: int) -> None:
        if self.task.sidecars:
            raise NotImplementedError("sidecars are played on the kubelet stand-in only")
        self.attempt = attempt
        super()._new_attempt(attempt)

    def _create_pod(self, pod: Obj) -> None:
        hold_dir = self.run.cluster.workdir / "holds" / self.ns / self.pod
        keys = {i: f"{i}-{step.name}" for i, step in enumerate(self.task.steps) if step.hold is not None}
        if keys:
            hold_dir.mkdir(parents=True, exist_ok=True)
        self.hold_dir, self.hold_keys = hold_dir, keys
        self.api.create(realize(pod, self.task.steps, self.attempt, hold_dir, keys))

    def _write_pod(self, phase: str) -> None:
        """The kubelet writes the pod's status here."""

    def _release_holds(self) -> None:
        for i, key in self.hold_keys.items():
            hold = self.task.steps[i].hold
            marker = self.hold_dir / key
            if hold is not None and hold.is_set() and not marker.exists():
                marker.touch()

    def _observe(self) -> Obj:
        try:
            pod = self.run.cluster.api("GET", self.api.path("Pod", self.pod))
        except ApiError as err:
            if err.status == 404:
                return {}
            raise
        status = pod.get("status") or {}
        by_name = {s["name"]: s for s in status.get("containerStatuses") or []}
        by_name.update({s["name"]: s for s in status.get("initContainerStatuses") or []})
        for c in self.init + self.steps:
            self._update(c, by_name.get(c.name))
        return status

    def _update(self, c: o.Container, seen: Obj | None) -> None:
        if not seen:
            return
        state = seen.get("state") or {}
        if "waiting" in state:
            c.state = "waiting"
            c.waiting_reason = state["waiting"].get("reason", "")
            c.waiting_message = state["waiting"].get("message", "")
        elif "running" in state:
            c.state, c.cid = "running", seen.get("containerID", c.cid)
            c.started_at = _parse_time(state["running"].get("startedAt"))
        elif "terminated" in state:
            term = state["terminated"]
            c.state, c.cid = "terminated", term.get("containerID", c.cid)
            c.started_at = _parse_time(term.get("startedAt"))
            c.finished_at = _parse_time(term.get("finishedAt"))
            c.exit_code = int(term.get("exitCode", 0))
            c.reason = term.get("reason", "")
            c.message = term.get("message", "")
        c.restart_count = int(seen.get("restartCount", 0))

    def _step_outcome(self, i: int) -> None:
        """Tekton's reading of a terminated step: the entrypoint's words in the termination message."""
        c = self.steps[i]
        entries = _termination_entries(c.message)
        if "StartedAt" in entries:
            c.step_started_at = _parse_time(entries["StartedAt"])
        if entries.get("Reason") == "Skipped":
            self.term_reasons[i] = "Skipped"
        elif "ExitCode" in entries:
            self.term_reasons[i], self.step_exits[i] = "Continued", int(entries["ExitCode"])

    def _record_ran_steps(self) -> None:
        """What each step that ran printed: its lines, and a restarted instance's lines."""
        for i, c in enumerate(self.steps):
            step = self.task.steps[i]
            if c.state != "terminated" or self.term_reasons[i] == "Skipped":
                continue
            lines = list(step.iter_lines())
            if c.restart_count:
                lines += list(step.iter_restart_lines())
            self.run._record_lines(self.task.name, step.name, lines)

    def _run_pod(self, attempt: int) -> str | None:
        last: str = ""
        waited_unstartable = 0
        while True:
            self._tick()
            self._release_holds()
            status = self._observe()
            if not status and last:
                raise RuntimeError(f"pod {self.pod} disappeared while its TaskRun was running")
            for i, c in enumerate(self.steps):
                if c.state == "terminated":
                    self._step_outcome(i)
            unstartable = [c for c in self.steps if c.state == "waiting" and c.waiting_reason in NEVER_STARTS]
            phase = status.get("phase", "Pending")
            snapshot = json.dumps([c.k8s_state() for c in self.init + self.steps], sort_keys=True) + phase
            if unstartable:
                waited_unstartable += 1
                first = unstartable[0]
                message = f'build step "{first.name}" is pending with reason "{first.waiting_message}"'
                if snapshot != last:
                    self._write_tr(self._running(message, "PullImageFailed"))
                if waited_unstartable >= 3:
                    step = self.task.steps[self.steps.index(first)]
                    self._fail(
                        "TaskRunImagePullFailed",
                        f'the step "{step.name}" in TaskRun "{self.name}" failed to pull the image "". '
                        f'The pod errored with the message: "{first.waiting_message}."',
                    )
                    raise _Done
            elif snapshot != last:
                if any(c.state != "terminated" for c in self.init):
                    pending = " ".join(c.name for c in self.init if c.state != "terminated")
                    msg = f'pod status "Initialized":"False"; message: "containers with incomplete status: [{pending}]"'
                    self._write_tr(self._running(msg, "Pending"))
                elif phase not in ("Succeeded", "Failed"):
                    self._write_tr(self._running())
            last = snapshot
            if phase in ("Succeeded", "Failed"):
                break
        self._record_ran_steps()
        failure = None
        for i, c in enumerate(self.steps):
            if c.exit_code and self.term_reasons[i] not in ("Skipped", "Continued"):
                failure = f'"{c.name}" exited with code {c.exit_code}: Error'
                break
        return self._complete(failure)

    def _fail(self, reason: str, message: str) -> None:
        for i, c in enumerate(self.steps):
            if c.state == "terminated":
                self._step_outcome(i)
        self._record_ran_steps()
        super()._fail(reason, message)

    def _delete_pod(self, name: str) -> None:
        """Tekton deletes a pod with the default grace period; the kubelet then stops its
        containers (SIGTERM) and removes the pod."""
        self.run.cluster.api("DELETE", self.api.path("Pod", name), ok=(200, 202, 404))
