"""Plays a `Scenario` through the real apiserver the way Tekton's controller and a kubelet would.

`Simulator(cluster).play(scenario)` returns a `PlayedRun` at once; a daemon thread creates the
PipelineRun, one TaskRun per pipeline task and one pod per attempt, moves containers through
waiting -> running -> terminated, writes step logs into the kubelet stand-in line by line
(a step logs only after the previous one terminated, as Tekton's entrypoint orders them), and
writes every status through the `/status` subresource, in the fixtures' order and shapes.
The PipelineRun's final condition is always the last write.
"""

from __future__ import annotations

import copy
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import objects as o
from .cluster import NODE_NAME, ApiError, Cluster
from .scenarios import Scenario, Step, Task

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
POLL = 0.01  # granularity of waits on events the simulator does not own (a test's `hold`)
CANCEL_POLL = 0.1  # how often the controller re-reads the PipelineRun for `spec.status`
WRITE_CHUNK = 256 * 1024  # unpaced output goes to the kubelet in chunks of whole lines


class _Killed(Exception):
    """A running TaskRun was cancelled (by a cancel or the pipeline timeout)."""


class _Aborted(Exception):
    """The simulator is shutting down or the run exceeded its time bound."""


@dataclass
class PlayedRun:
    """A handle on one played PipelineRun."""

    name: str
    namespace: str
    scenario: Scenario
    cluster: Cluster
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _expected: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    _pods: dict[str, list[str]] = field(default_factory=dict)
    _objects: dict[str, Obj] = field(default_factory=dict)
    _abort: threading.Event = field(default_factory=threading.Event)
    _expire: threading.Event = field(default_factory=threading.Event)
    real_pods: bool = False

    def wait(self, timeout: float = 60.0) -> PlayedRun:
        """Blocks until the final PipelineRun status is written; re-raises the simulator's error."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"run {self.namespace}/{self.name} not finished after {timeout}s")
        if self.error is not None:
            raise self.error
        return self

    def cancel(self) -> None:
        """Requests cancellation as a user does (`spec.status: Cancelled`); the simulator reacts."""
        self.cluster.api(
            "PATCH",
            f"/apis/tekton.dev/v1/namespaces/{self.namespace}/pipelineruns/{self.name}",
            {"spec": {"status": "Cancelled"}},
            content_type=MERGE,
        )

    def expire(self) -> None:
        """`timeouts.pipeline` elapses now, as the controller's clock says, whatever the scenario's
        limit: a test times a run out after what it waits for, however slowly a loaded node starts."""
        self._expire.set()

    def expected(self) -> dict[tuple[str, str], list[bytes]]:
        """(pipelineTask, step) -> every line written to that step, attempts in order, no newlines."""
        with self._lock:
            return {key: list(lines) for key, lines in self._expected.items()}

    def expected_lines(self, task: str, step: str) -> list[bytes]:
        with self._lock:
            return list(self._expected.get((task, step), []))

    def pods(self, task: str) -> list[str]:
        """Pod names of `task`, one per attempt."""
        with self._lock:
            return list(self._pods.get(task, []))

    def objects(self) -> dict[str, Obj]:
        """`Kind/name` -> the Tekton object as the simulator last wrote it (for round-trip checks)."""
        with self._lock:
            return copy.deepcopy(self._objects)

    # -- used by the players ---------------------------------------------------------------------
    def _record_line(self, task: str, step: str, line: bytes) -> None:
        with self._lock:
            self._expected.setdefault((task, step), []).append(line)

    def _record_lines(self, task: str, step: str, lines: list[bytes]) -> None:
        with self._lock:
            self._expected.setdefault((task, step), []).extend(lines)


class Simulator:
    """Plays scenarios against `cluster` as admin; `stop()` aborts whatever still plays."""

    def __init__(self, cluster: Cluster, real_pods: bool = False) -> None:
        """`real_pods`: TaskRuns' pods run on the cluster's real node (`real_pods.py`) instead of
        the kubelet stand-in."""
        if real_pods and cluster.node is None:
            raise ValueError("real_pods needs a cluster started with real_node=True")
        self.cluster = cluster
        self.real_pods = real_pods
        self._runs: list[PlayedRun] = []
        self._threads: list[threading.Thread] = []

    def play(self, scenario: Scenario, namespace: str = "tekton-pipelines", name: str | None = None) -> PlayedRun:
        run = PlayedRun(name or f"{scenario.kind}-{o.random_suffix()}", namespace, scenario, self.cluster)
        run.real_pods = self.real_pods
        thread = threading.Thread(target=_Controller(run).main, name=f"sim-{run.name}", daemon=True)
        self._runs.append(run)
        self._threads.append(thread)
        thread.start()
        return run

    def stop(self, timeout: float = 10.0) -> None:
        for run in self._runs:
            run._abort.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# -- apiserver access ------------------------------------------------------------------------------
class _Api:
    """The controller's and kubelet's writes, recording each Tekton object as last written."""

    def __init__(self, run: PlayedRun) -> None:
        self.run = run
        self.cluster = run.cluster
        self.ns = run.namespace

    def path(self, kind: str, name: str = "") -> str:
        if kind == "Pod":
            base = f"/api/v1/namespaces/{self.ns}/pods"
        else:
            base = f"/apis/tekton.dev/v1/namespaces/{self.ns}/{kind.lower()}s"
        return f"{base}/{name}" if name else base

    def create(self, obj: Obj) -> Obj:
        created = self.cluster.api("POST", self.path(obj["kind"]), obj)
        if obj["kind"] != "Pod":
            self._remember(obj["kind"], obj["metadata"]["name"], lambda _: copy.deepcopy(obj))
        return created

    def patch(self, kind: str, name: str, patch: Obj, subresource: str = "") -> Obj:
        path = self.path(kind, name) + (f"/{subresource}" if subresource else "")
        return self.cluster.api("PATCH", path, patch, content_type=MERGE)

    def set_status(self, kind: str, name: str, old: Obj, new: Obj) -> None:
        """Writes `new` over `old` through `/status` (a merge patch: no conflict with spec patches)."""
        patch = o.merge_patch(old, new)
        if patch:
            self.patch(kind, name, {"status": patch}, "status")
        if kind != "Pod":
            self._remember(kind, name, lambda obj: {**obj, "status": copy.deepcopy(new)})

    def patch_spec(self, kind: str, name: str, spec: Obj) -> None:
        self.patch(kind, name, {"spec": spec})
        self._remember(kind, name, lambda obj: {**obj, "spec": {**obj["spec"], **spec}})

    def remember_spec(self, kind: str, name: str, spec: Obj) -> None:
        """Records a spec change made by someone else (a user's cancel) that the controller read."""
        self._remember(kind, name, lambda obj: {**obj, "spec": {**obj["spec"], **spec}})

    def patch_labels(self, kind: str, name: str, labels: dict[str, str]) -> None:
        self.patch(kind, name, {"metadata": {"labels": labels}})

        def update(obj: Obj) -> Obj:
            meta = {**obj["metadata"], "labels": {**obj["metadata"].get("labels", {}), **labels}}
            return {**obj, "metadata": meta}

        self._remember(kind, name, update)

    def delete_pod(self, name: str) -> None:
        # Grace period 0: no kubelet here would confirm a graceful deletion.
        self.cluster.api(
            "DELETE",
            self.path("Pod", name),
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
            ok=(200, 202, 404),
        )
        self.cluster.store.remove_pod(self.ns, name)

    def get_pipelinerun(self) -> Obj | None:
        try:
            return self.cluster.api("GET", self.path("PipelineRun", self.run.name))
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _remember(self, kind: str, name: str, update: Callable[[Obj], Obj]) -> None:
        key = f"{kind}/{name}"
        with self.run._lock:
            self.run._objects[key] = update(self.run._objects.get(key, {}))


# -- the PipelineRun controller --------------------------------------------------------------------
@dataclass
class _TaskState:
    task: Task
    member_of: str
    phase: str = "pending"  # pending | running | succeeded | failed | cancelled | skipped
    taskrun: str = ""
    player: _TaskPlayer | None = None


class _Controller:
    def __init__(self, run: PlayedRun) -> None:
        self.run = run
        self.sc = run.scenario
        self.api = _Api(run)
        self.events: queue.Queue[tuple[str, str, BaseException | None]] = queue.Queue()
        self.states = {t.name: _TaskState(t, "tasks") for t in self.sc.tasks}
        self.states.update({t.name: _TaskState(t, "finally") for t in self.sc.finally_tasks})
        self.skipped: list[o.Obj] = []
        self.pr_uid = ""
        self.pr_status: Obj = {}
        self.start = 0.0
        self.finally_start: float | None = None
        self.stop_reason = ""  # "" | "cancelled" | "timeout"
        self.deadline = time.monotonic() + self.sc.max_duration + self.sc.appear_after
        self.labels = {**self.sc.labels, "tekton.dev/pipeline": run.name}
        self.pipeline_spec = self._pipeline_spec()

    def main(self) -> None:
        try:
            if not self.sc.never:
                self._play()
        except BaseException as err:  # handed to the test through `wait()`
            self.run.error = err
            self.run._abort.set()
        finally:
            self.run.done.set()

    # -- pipeline spec ---------------------------------------------------------------------------
    def _pipeline_spec(self) -> Obj:
        def entry(task: Task) -> Obj:
            out: Obj = {"name": task.name}
            if task.retries:
                out["retries"] = task.retries
            if task.run_after:
                out["runAfter"] = list(task.run_after)
            out["taskSpec"] = o.embedded_task_spec(
                [s.spec() for s in task.steps], [(c.name, c.image) for c in task.sidecars]
            )
            if task.when_false:
                out["when"] = task.when()
            return out

        spec: Obj = {"tasks": [entry(t) for t in self.sc.tasks]}
        if self.sc.finally_tasks:
            spec["finally"] = [entry(t) for t in self.sc.finally_tasks]
        return spec

    # -- main loop -------------------------------------------------------------------------------
    def _play(self) -> None:
        if self.sc.appear_after and self.run._abort.wait(self.sc.appear_after):
            return
        self.run.cluster.ensure_namespace(self.run.namespace)
        pr = o.pipelinerun(
            self.run.name, self.run.namespace, self.pipeline_spec, o.duration(self.sc.pipeline_timeout), self.sc.labels
        )
        self.pr_uid = self.api.create(pr)["metadata"]["uid"]
        self.start = time.time()
        timeout_at = time.monotonic() + self.sc.pipeline_timeout
        cancel_at = None if self.sc.cancel_after is None else time.monotonic() + self.sc.cancel_after
        # First reconcile: the pipeline label, the first TaskRuns, then the status.
        self.api.patch_labels("PipelineRun", self.run.name, {"tekton.dev/pipeline": self.run.name})
        self._schedule()
        self._write_pr_status()
        next_poll = 0.0
        while self._active():
            self._check_bounds()
            now = time.monotonic()
            if cancel_at is not None and now >= cancel_at:
                cancel_at = None
                self.run.cancel()
            if not self.stop_reason and (now >= timeout_at or self.run._expire.is_set()):
                self._stop_all("timeout", o.CANCELLED_BY_PR_TIMEOUT_MSG)
            if not self.stop_reason and now >= next_poll:
                next_poll = now + CANCEL_POLL
                current = self.api.get_pipelinerun()
                requested = (current or {}).get("spec", {}).get("status")
                if requested in ("Cancelled", "CancelledRunFinally"):
                    self.api.remember_spec("PipelineRun", self.run.name, {"status": requested})
                    self._stop_all("cancelled", o.CANCELLED_BY_PR_MSG)
            try:
                kind, task, err = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if kind == "error":
                raise err or RuntimeError(f"task {task} failed")
            self._task_finished(task)
        self._finish()

    def _check_bounds(self) -> None:
        if self.run._abort.is_set():
            raise _Aborted("simulator stopped")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"scenario {self.sc.kind} still playing after {self.sc.max_duration}s")

    def _active(self) -> bool:
        phases = [s.phase for s in self.states.values()]
        # Once cancelled / timed out, only running TaskRuns are awaited; nothing new starts.
        return "running" in phases or (not self.stop_reason and "pending" in phases)

    def _task_finished(self, name: str) -> None:
        state = self.states[name]
        assert state.player is not None
        state.phase = state.player.outcome
        if self.stop_reason:
            return  # no new work once cancelled / timed out; the final status follows
        self._schedule()
        self._write_pr_status()

    def _schedule(self) -> None:
        dag = [s for s in self.states.values() if s.member_of == "tasks"]
        changed = True
        while changed:  # a skip can decide a child's fate: repeat until stable
            changed = False
            failed = any(s.phase == "failed" for s in dag)
            for state in dag:
                if state.phase != "pending":
                    continue
                parents = [self.states[p].phase for p in state.task.run_after]
                if failed:
                    self._skip(state, o.SKIP_STOPPING)
                elif all(p == "succeeded" for p in parents):
                    if state.task.when_false:
                        self._skip(state, o.SKIP_WHEN, state.task.when())
                    else:
                        self._start_task(state)
                elif "skipped" in parents and all(p in ("succeeded", "skipped") for p in parents):
                    self._skip(state, "Parent Tasks were skipped")
                else:
                    continue
                changed = True
        if all(s.phase not in ("pending", "running") for s in dag):
            finals = [s for s in self.states.values() if s.member_of == "finally" and s.phase == "pending"]
            if finals and self.finally_start is None:
                self.finally_start = time.time()
            for state in finals:
                self._start_task(state)

    def _skip(self, state: _TaskState, reason: str, when: list[Obj] | None = None) -> None:
        state.phase = "skipped"
        entry: Obj = {"name": state.task.name, "reason": reason}
        if when:
            entry["whenExpressions"] = when
        self.skipped.append(entry)

    def _start_task(self, state: _TaskState) -> None:
        state.phase = "running"
        state.taskrun = o.child_name(self.run.name, f"-{state.task.name}")
        player_class = _TaskPlayer
        if self.run.real_pods:
            from .real_pods import RealTaskPlayer

            player_class = RealTaskPlayer
        player = player_class(self, state)
        state.player = player
        player.create_taskrun()
        threading.Thread(target=player.main, name=f"sim-{state.taskrun}", daemon=True).start()

    def _stop_all(self, reason: str, message: str) -> None:
        """The PipelineRun reconciler on cancel / timeout: cancel every running TaskRun."""
        self.stop_reason = reason
        for state in self.states.values():
            if state.phase == "running" and state.player is not None:
                self.api.patch_spec("TaskRun", state.taskrun, {"status": "TaskRunCancelled", "statusMessage": message})
                state.player.kill(message)

    # -- status ----------------------------------------------------------------------------------
    def _counts(self) -> tuple[int, int, int, int, int]:
        phases = [s.phase for s in self.states.values()]
        failed = phases.count("failed")
        cancelled = phases.count("cancelled")
        completed = phases.count("succeeded") + failed + cancelled
        skipped = phases.count("skipped")
        return completed, failed, cancelled, len(phases) - completed - skipped, skipped

    def _child_refs(self) -> list[Obj]:
        # Pipeline order (tasks, then finally), as `PipelineRunState.GetChildReferences` walks it.
        return [
            o.child_reference(s.taskrun, s.task.name, s.task.when() or None) for s in self.states.values() if s.taskrun
        ]

    def _write_pr_status(self, cond: Obj | None = None, completion: float | None = None) -> None:
        if cond is None:
            completed, failed, cancelled, incomplete, skipped = self._counts()
            message = o.tasks_message(completed, failed, cancelled, incomplete, skipped)
            cond = o.condition("Unknown", "Running", message, time.time())
        status = o.pipelinerun_status(
            pipeline_spec=self.pipeline_spec,
            start_time=self.start,
            cond=cond,
            child_refs=self._child_refs(),
            skipped=list(self.skipped),
            finally_start=self.finally_start,
            completion=completion,
        )
        self.api.set_status("PipelineRun", self.run.name, self.pr_status, status)
        self.pr_status = status

    def _finish(self) -> None:
        now = time.time()
        completed, failed, cancelled, _, skipped = self._counts()
        if self.stop_reason == "cancelled":
            cond = o.condition("False", "Cancelled", f'PipelineRun "{self.run.name}" was cancelled', now)
        elif self.stop_reason == "timeout":
            limit = o.duration(self.sc.pipeline_timeout)
            cond = o.condition(
                "False", "PipelineRunTimeout", f'PipelineRun "{self.run.name}" failed to finish within "{limit}"', now
            )
        else:
            message = o.tasks_message(completed, failed, cancelled, None, skipped)
            if failed:
                cond = o.condition("False", "Failed", message, now)
            else:
                cond = o.condition("True", "Completed" if skipped else "Succeeded", message, now)
        self._write_pr_status(cond, completion=now)


# -- one TaskRun: its attempts' pods and the kubelet's part ----------------------------------------
class _TaskPlayer:
    def __init__(self, ctl: _Controller, state: _TaskState) -> None:
        self.ctl = ctl
        self.run = ctl.run
        self.api = ctl.api
        self.ns = ctl.run.namespace
        self.store = ctl.run.cluster.store
        self.task = state.task
        self.name = state.taskrun
        self.member_of = state.member_of
        self.spec_task = o.task_spec(
            [s.spec() for s in self.task.steps], [(c.name, c.image) for c in self.task.sidecars]
        )
        self.outcome = "running"
        self.uid = ""
        self.status: Obj = {}
        self.retries_status: list[Obj] = []
        self._kill = threading.Event()
        self._kill_message = ""
        # Current attempt.
        self.pod = ""
        self.start = 0.0
        self.init: list[o.Container] = []
        self.steps: list[o.Container] = []
        self.sidecars: list[o.Container] = []
        self.term_reasons: list[str | None] = []
        self.step_exits: list[int | None] = []
        self.pod_ip = f"10.244.{random.randint(0, 255)}.{random.randint(2, 254)}"
        self.pod_start = 0.0
        self.pod_status: Obj = {}

    def kill(self, message: str) -> None:
        self._kill_message = message
        self._kill.set()

    # -- TaskRun ---------------------------------------------------------------------------------
    def create_taskrun(self) -> None:
        labels = o.run_labels(self.run.name, self.ctl.pr_uid, self.task.name, self.member_of, self.ctl.labels)
        labels.update(self.task.labels)
        owner = o.owner_reference("PipelineRun", self.run.name, self.ctl.pr_uid)
        tr = o.taskrun(self.name, self.ns, labels, owner, self.spec_task, "1h0m0s", self.task.retries)
        self.labels = labels
        self.uid = self.api.create(tr)["metadata"]["uid"]

    def main(self) -> None:
        try:
            self._play()
            self.ctl.events.put(("done", self.task.name, None))
        except BaseException as err:  # reported to the controller
            self.ctl.events.put(("error", self.task.name, err))

    def _write_tr(
        self, cond: Obj, *, completion: float | None = None, sidecars_stopped: bool = False, **kw: Any
    ) -> None:
        steps = kw.get("steps")
        if steps is None:
            steps = [self._step_entry(i) for i in range(len(self.steps))]
        sidecars = [
            o.sidecar_status(spec.name, c, sidecars_stopped)
            for spec, c in zip(self.task.sidecars, self.sidecars, strict=True)
        ]
        status = o.taskrun_status(
            cond=cond,
            pod_name=kw.get("pod_name", self.pod),
            start_time=kw.get("start_time", self.start),
            steps=steps,
            spec_task=self.spec_task,
            sidecars=sidecars if self.sidecars and self.sidecars[0].state != "waiting" else None,
            completion=completion,
            retries_status=self.retries_status,
            artifacts=kw.get("artifacts", completion is not None or bool(self.retries_status)),
        )
        self.api.set_status("TaskRun", self.name, self.status, status)
        self.status = status

    def _step_entry(self, i: int) -> Obj:
        return o.step_status(self.task.steps[i].name, self.steps[i], self.term_reasons[i], self.step_exits[i])

    def _running(self, message: str = o.TR_RUNNING_MSG, reason: str = "Running") -> Obj:
        return o.condition("Unknown", reason, message, time.time())

    # -- the whole TaskRun -----------------------------------------------------------------------
    def _play(self) -> None:
        attempts = self.task.retries + 1
        for attempt in range(attempts):
            self._new_attempt(attempt)
            if attempt == 0:
                # Tekton writes the pod name and the bare step list with the pod's creation.
                steps = [{"name": s.name, "provenance": {}} for s in self.task.steps]
                self._write_tr(self._running(), steps=steps)
            try:
                failure = self._run_pod(attempt)
            except _Killed:
                self._killed()
                self.outcome = "cancelled"
                break
            except _Done:
                self.outcome = "failed"
                break
            if failure is None:
                self.outcome = "succeeded"
                break
            if attempt + 1 < attempts:
                self._to_be_retried(failure)
                continue
            self.outcome = "failed"
        if self.ctl.sc.delete_pods and self.outcome in ("succeeded", "failed"):
            for pod in self.run.pods(self.task.name):
                self._delete_pod(pod)

    def _new_attempt(self, attempt: int) -> None:
        self.pod = o.child_name(self.name, "-pod") + (f"-retry{attempt}" if attempt else "")
        self.start = self.pod_start = time.time()
        specs = [s.spec() for s in self.task.steps]
        sidecars = [(c.name, c.image) for c in self.task.sidecars]
        pod = o.pod(
            name=self.pod,
            namespace=self.ns,
            labels={**self.labels, "tekton.dev/taskRun": self.name, "tekton.dev/taskRunUID": self.uid},
            owner=o.owner_reference("TaskRun", self.name, self.uid),
            steps=specs,
            sidecars=sidecars,
            timeout_seconds=3600,
            node_name=NODE_NAME,
        )
        self.init = [o.Container(c["name"], c["image"]) for c in pod["spec"]["initContainers"]]
        self.steps = [o.Container(f"step-{s.name}", s.image) for s in self.task.steps]
        self.sidecars = [o.Container(f"sidecar-{c.name}", c.image) for c in self.task.sidecars]
        self.term_reasons = [None] * len(self.steps)
        self.step_exits = [None] * len(self.steps)
        self.pod_status = {}
        self._create_pod(pod)
        with self.run._lock:
            self.run._pods.setdefault(self.task.name, []).append(self.pod)
            for step in self.task.steps:
                self.run._expected.setdefault((self.task.name, step.name), [])

    def _create_pod(self, pod: Obj) -> None:
        containers = [c.name for c in self.init + self.steps + self.sidecars]
        self.store.add_pod(self.ns, self.pod, containers)
        self.api.create(pod)

    def _delete_pod(self, name: str) -> None:
        self.api.delete_pod(name)

    def _write_pod(self, phase: str) -> None:
        status = o.pod_status(
            init=self.init,
            containers=self.steps + self.sidecars,
            phase=phase,
            start=self.pod_start,
            now=time.time(),
            pod_ip=self.pod_ip,
        )
        self.api.set_status("Pod", self.pod, self.pod_status, status)
        self.pod_status = status

    def _tick(self) -> None:
        """A kubelet sync's worth of time; also where a cancel is noticed."""
        if self._kill.wait(self.ctl.sc.tick):
            raise _Killed
        self._bounds()

    def _bounds(self) -> None:
        if self.run._abort.is_set():
            raise _Aborted("simulator stopped")
        if time.monotonic() > self.ctl.deadline:
            raise TimeoutError(f"{self.name} still running after the scenario's max_duration")

    def _run_pod(self, attempt: int) -> str | None:
        self._tick()
        # Initializing: `prepare` runs, the rest wait.
        self.init[0].run(time.time())
        self.store.start(self.ns, self.pod, self.init[0].name)
        self._write_pod("Pending")
        pending = " ".join(c.name for c in self.init)
        message = f'pod status "Initialized":"False"; message: "containers with incomplete status: [{pending}]"'
        self._write_tr(self._running(message, "Pending"))
        self._tick()
        now = time.time()
        for c in self.init:
            c.terminate(now, 0, started=now)
            self.store.terminate(self.ns, self.pod, c.name)
        if any(s.image_pull_error for s in self.task.steps):
            return self._image_pull_failure()
        # Sidecars ready (or none): Tekton marks the pod ready; every container starts together.
        self.api.patch("Pod", self.pod, {"metadata": {"annotations": {"tekton.dev/ready": "READY"}}})
        now = time.time()
        for c in self.steps + self.sidecars:
            c.run(now)
            self.store.start(self.ns, self.pod, c.name)
        for spec, c in zip(self.task.sidecars, self.sidecars, strict=True):
            if spec.lines:
                self.store.write(self.ns, self.pod, c.name, b"".join(line + b"\n" for line in spec.lines))
        self._write_pod("Running")
        self._write_tr(self._running())
        failure: str | None = None
        skipping = False
        for i, step in enumerate(self.task.steps):
            c = self.steps[i]
            step_start = time.time()
            c.step_started_at = step_start
            if skipping:
                # The entrypoint of a step after a failure exits 1 at once, logging nothing.
                c.terminate(time.time(), 1, o.termination_message(step_start, [("Reason", "Skipped")]))
                self.term_reasons[i] = "Skipped"
            else:
                self._write_lines(step, c)
                code = step.exit_for(attempt)
                extra = [("ExitCode", str(code))] if code and step.on_error == "continue" else []
                if extra:
                    # onError: continue: the container exits 0, the step reports its real code.
                    c.terminate(time.time(), 0, o.termination_message(step_start, extra))
                    self.term_reasons[i], self.step_exits[i] = "Continued", code
                else:
                    c.terminate(time.time(), code, o.termination_message(step_start))
                    if code:
                        failure = f'"{c.name}" exited with code {code}: Error'
                        skipping = True
            self.store.terminate(self.ns, self.pod, c.name)
            if i + 1 < len(self.task.steps):
                self._write_pod("Running")
                self._write_tr(self._running())
                self._tick()
        return self._complete(failure)

    def _write_lines(self, step: Step, c: o.Container) -> None:
        """The step's output, line by line (batched when unpaced), then its hold / forever wait."""
        task, size = self.task.name, 0
        pending: list[bytes] = []
        lines = step.iter_lines()
        line = next(lines, None)
        while line is not None:
            following = next(lines, None)
            last = following is None
            data = line if (last and not step.final_newline) else line + b"\n"
            if step.interval > 0:
                self._write(c, data)
                self.run._record_line(task, step.name, line)
                if not last and self._kill.wait(step.interval):
                    raise _Killed
            else:
                pending.append(line)
                size += len(data)
                if size >= WRITE_CHUNK or last:
                    body = b"\n".join(pending) + (b"\n" if data.endswith(b"\n") else b"")
                    self._write(c, body)
                    self.run._record_lines(task, step.name, pending)
                    pending, size = [], 0
                    if self._kill.is_set():
                        raise _Killed
                    self._bounds()
            line = following
        if step.hold is not None:
            while not step.hold.is_set():
                if self._kill.wait(POLL):
                    raise _Killed
                self._bounds()
        if step.forever:
            while not self._kill.wait(0.05):
                self._bounds()
            raise _Killed

    def _write(self, c: o.Container, data: bytes) -> None:
        self.store.write(self.ns, self.pod, c.name, data)

    def _complete(self, failure: str | None) -> str | None:
        now = time.time()
        phase = "Failed" if failure else "Succeeded"
        cond = (
            o.condition("False", "StepFailed", failure, now)
            if failure
            else o.condition("True", "Succeeded", o.TR_SUCCEEDED_MSG, now)
        )
        if not self.sidecars:
            self._write_pod(phase)
            self._write_tr(cond, completion=now)
            return failure
        # Steps done, sidecars still up: the TaskRun is done first (fixture 01, files 24-28).
        self._write_pod("Running")
        self._write_tr(cond, completion=now)
        self._tick_unkillable()
        # Tekton stops sidecars by swapping their image for the nop image; the kubelet restarts them.
        ops = [
            {"op": "replace", "path": f"/spec/containers/{len(self.steps) + j}/image", "value": o.NOP_IMAGE}
            for j in range(len(self.sidecars))
        ]
        self.run.cluster.api("PATCH", self.api.path("Pod", self.pod), ops, content_type=JSON_PATCH)
        stop = time.time()
        for c in self.sidecars:
            killed = o.Container(c.name, c.image, cid=c.cid, started_at=c.started_at)
            killed.terminate(stop, 137)
            c.last_state = {"terminated": killed.k8s_state()["terminated"]}
            c.restart_count, c.image = 1, o.NOP_IMAGE
            c.run(stop)
            c.terminate(stop, 0)
            self.store.restart(self.ns, self.pod, c.name)
            self.store.terminate(self.ns, self.pod, c.name)
        self._write_pod(phase)
        self._write_tr(cond, completion=now, sidecars_stopped=True)
        return failure

    def _tick_unkillable(self) -> None:
        time.sleep(self.ctl.sc.tick)  # the TaskRun is done: a cancel no longer applies
        self._bounds()

    def _to_be_retried(self, message: str) -> None:
        """Tekton moves the failed attempt to `retriesStatus` and clears podName and startTime."""
        failed = copy.deepcopy(self.status)
        failed.pop("retriesStatus", None)
        self.retries_status.append(failed)
        cond = o.condition("Unknown", "ToBeRetried", message, time.time())
        steps = copy.deepcopy(self.status["steps"])
        # Tekton writes `podName: ""`; this apiserver build cannot store "" in a custom resource
        # (see crds.py), so the field is left out: a reader sees no pod either way.
        self._write_tr(cond, pod_name=None, start_time=None, steps=steps)

    def _image_pull_failure(self) -> str:
        """Steps whose image cannot be pulled wait (ErrImagePull, ImagePullBackOff); Tekton fails the run."""
        now = time.time()
        bad = [i for i, s in enumerate(self.task.steps) if s.image_pull_error]
        for i, c in enumerate(self.steps):
            if i in bad:
                c.waiting_reason = "ErrImagePull"
                c.waiting_message = f'failed to pull and unpack image "{o.qualified_image(c.image)}": not found'
            else:
                c.run(now)
                self.store.start(self.ns, self.pod, c.name)
        for c in self.sidecars:
            c.run(now)
            self.store.start(self.ns, self.pod, c.name)
        for i in bad:
            self.store.set_waiting(self.ns, self.pod, self.steps[i].name, "ErrImagePull")
        self._write_pod("Pending")
        first = self.steps[bad[0]]
        waiting = f'build step "{first.name}" is pending with reason "{first.waiting_message}"'
        self._write_tr(self._running(waiting, "PullImageFailed"))
        self._tick()
        for i in bad:
            c = self.steps[i]
            c.waiting_reason = "ImagePullBackOff"
            c.waiting_message = f'Back-off pulling image "{c.image}"'
            self.store.set_waiting(self.ns, self.pod, c.name, "ImagePullBackOff")
        self._write_pod("Pending")
        self._write_tr(
            self._running(
                f'build step "{first.name}" is pending with reason "{first.waiting_message}"', "PullImageFailed"
            )
        )
        self._tick()
        step = self.task.steps[bad[0]]
        # `checkPodFailed` quotes the step's imageID, empty while the image was never pulled.
        message = (
            f'the step "{step.name}" in TaskRun "{self.name}" failed to pull the image "". '
            f'The pod errored with the message: "{first.waiting_message}."'
        )
        self._fail("TaskRunImagePullFailed", message)
        raise _Done

    def _killed(self) -> None:
        """`failTaskRun` for a cancelled TaskRun: pod deleted, running steps marked terminated."""
        message = f'TaskRun "{self.name}" was cancelled. {self._kill_message}'
        self._fail("TaskRunCancelled", message)

    def _fail(self, reason: str, message: str) -> None:
        now = time.time()
        steps = []
        for i, c in enumerate(self.steps):
            name = self.task.steps[i].name
            if c.state == "terminated":
                steps.append(self._step_entry(i))
            else:
                steps.append(o.killed_step_status(name, c, self.pod, reason, now))
        self._delete_pod(self.pod)
        # failTaskRun writes no `artifacts` (fixture 03), unlike a TaskRun that ran to its end.
        cond = o.condition("False", reason, message, now)
        self._write_tr(cond, completion=now, steps=steps, artifacts=bool(self.retries_status))


class _Done(Exception):
    """The attempt ended in a failure already written (no retry applies)."""
