"""The run simulator on the real sandbox: schema round trips, watches, live logs, RBAC, kubectl."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.cluster import Cluster, Identity
from tests.sandbox.objects import CANCELLED_BY_PR_MSG, CANCELLED_BY_PR_TIMEOUT_MSG, NOP_IMAGE
from tests.sandbox.scenarios import SCENARIOS, Scenario, Step, Task
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import wait_for

TEKTON = "/apis/tekton.dev/v1/namespaces"
SMALL = {"large-output": {"size": 512 * 1024}, "late": {"appear_after": 0.3}, "timeout": {"pipeline_timeout": 1.0}}


@pytest.fixture(scope="module")
def sim(cluster: Cluster) -> Iterator[Simulator]:
    simulator = Simulator(cluster)
    yield simulator
    simulator.stop()


# -- helpers ---------------------------------------------------------------------------------------
def get(cluster: Cluster, path: str) -> dict[str, Any]:
    return cluster.api("GET", path)


def pr(cluster: Cluster, run: PlayedRun) -> dict[str, Any]:
    return get(cluster, f"{TEKTON}/{run.namespace}/pipelineruns/{run.name}")


def tr(cluster: Cluster, run: PlayedRun, task: str) -> dict[str, Any]:
    return get(cluster, f"{TEKTON}/{run.namespace}/taskruns/{run.name}-{task}")


def succeeded(obj: dict[str, Any]) -> dict[str, Any]:
    """The `Succeeded` condition of an object (or of a bare status, as in `retriesStatus`)."""
    status = obj.get("status", obj)
    return next(c for c in status["conditions"] if c["type"] == "Succeeded")


def log_request(cluster: Cluster, path: str, identity: Identity | None = None) -> urllib.request.Request:
    req = urllib.request.Request(cluster.server + path)
    req.add_header("Authorization", f"Bearer {(identity or cluster.admin).token}")
    return req


def open_log(cluster: Cluster, namespace: str, pod: str, container: str, query: str = "") -> Any:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log?container={container}{query}"
    context = ssl.create_default_context(cafile=cluster.ca_file)
    return urllib.request.urlopen(log_request(cluster, path), context=context, timeout=30)


def read_log(cluster: Cluster, namespace: str, pod: str, container: str) -> bytes:
    with open_log(cluster, namespace, pod, container) as resp:
        return resp.read()


def log_status(cluster: Cluster, namespace: str, pod: str, container: str, identity: Identity) -> tuple[int, str]:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log?container={container}"
    return cluster.raw("GET", path, identity)


def as_log(lines: list[bytes], final_newline: bool = True) -> bytes:
    body = b"\n".join(lines)
    return body + b"\n" if lines and final_newline else body


# -- schema round trip, for every scenario ---------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(k for k in SCENARIOS if k != "never"))
def test_crds_keep_everything_the_simulator_writes(cluster: Cluster, sim: Simulator, namespace: str, kind: str) -> None:
    run = sim.play(SCENARIOS[kind](**SMALL.get(kind, {})), namespace=namespace).wait(60)
    sent = run.objects()
    assert f"PipelineRun/{run.name}" in sent
    assert any(key.startswith("TaskRun/") for key in sent)
    for key, obj in sent.items():
        plural = key.split("/")[0].lower() + "s"
        got = get(cluster, f"{TEKTON}/{namespace}/{plural}/{obj['metadata']['name']}")
        assert got["spec"] == obj["spec"], key
        assert got["status"] == obj["status"], key
        for field in ("labels", "annotations", "ownerReferences"):
            assert got["metadata"].get(field) == obj["metadata"].get(field), (key, field)
    if kind == "large-output":
        for pod in run.pods("dump"):
            cluster.store.remove_pod(namespace, pod)  # the session's kubelet keeps logs in memory


# -- final states against the fixtures' key fields -------------------------------------------------
def test_success_parallel_and_sequential(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["success"](), namespace=namespace).wait(30)
    final = pr(cluster, run)
    assert succeeded(final) | {"lastTransitionTime": ""} == {
        "lastTransitionTime": "",
        "type": "Succeeded",
        "status": "True",
        "reason": "Succeeded",
        "message": "Tasks Completed: 4 (Failed: 0, Cancelled 0), Skipped: 0",
    }
    refs = final["status"]["childReferences"]
    # Pipeline order, as GetChildReferences walks the state (fixtures 01 and 02).
    assert [r["pipelineTaskName"] for r in refs] == ["checkout", "unit", "lint", "package"]
    assert all(r["name"] == f"{run.name}-{r['pipelineTaskName']}" and r["kind"] == "TaskRun" for r in refs)
    assert final["metadata"]["labels"]["tekton.dev/pipeline"] == run.name
    assert "completionTime" in final["status"]
    unit = tr(cluster, run, "unit")
    assert unit["metadata"]["labels"]["tekton.dev/pipelineTask"] == "unit"
    assert unit["metadata"]["ownerReferences"][0]["uid"] == final["metadata"]["uid"]
    assert succeeded(unit)["message"] == "All Steps have completed executing"
    assert [s["terminationReason"] for s in unit["status"]["steps"]] == ["Completed", "Completed"]
    pod = get(cluster, f"/api/v1/namespaces/{namespace}/pods/{unit['status']['podName']}")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "sandbox-node"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["step-install", "step-test"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["prepare", "place-scripts"]
    assert pod["metadata"]["labels"]["tekton.dev/taskRunUID"] == unit["metadata"]["uid"]
    # Logs through the apiserver are exactly what the simulator says it wrote.
    for (task, step), lines in run.expected().items():
        assert lines, (task, step)
        assert read_log(cluster, namespace, run.pods(task)[0], f"step-{step}") == as_log(lines)


def test_failure_skips_later_steps_and_tasks(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["failure"](), namespace=namespace).wait(30)
    compile_ = tr(cluster, run, "compile")
    assert succeeded(compile_)["reason"] == "StepFailed"
    assert succeeded(compile_)["message"] == '"step-build" exited with code 2: Error'
    steps = compile_["status"]["steps"]
    assert [(s["terminated"]["exitCode"], s["terminationReason"]) for s in steps] == [(2, "Error"), (1, "Skipped")]
    assert run.expected_lines("compile", "package") == []
    assert read_log(cluster, namespace, run.pods("compile")[0], "step-package") == b""
    final = pr(cluster, run)
    assert succeeded(final)["reason"] == "Failed"
    assert succeeded(final)["message"] == "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1"
    assert final["status"]["skippedTasks"] == [{"name": "publish", "reason": "PipelineRun was stopping"}]
    assert "finallyStartTime" in final["status"]
    assert [r["pipelineTaskName"] for r in final["status"]["childReferences"]] == ["compile", "cleanup"]
    assert tr(cluster, run, "cleanup")["metadata"]["labels"]["tekton.dev/memberOf"] == "finally"


def test_retries_keep_every_attempt(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["retries"](lines=2), namespace=namespace).wait(30)
    taskrun = tr(cluster, run, "compile")
    pods = run.pods("compile")
    assert pods == [f"{run.name}-compile-pod", f"{run.name}-compile-pod-retry1"]
    assert taskrun["status"]["podName"] == pods[1]
    (previous,) = taskrun["status"]["retriesStatus"]
    assert previous["podName"] == pods[0]
    assert succeeded(previous)["reason"] == "StepFailed"
    assert succeeded(taskrun)["reason"] == "StepFailed"
    assert run.expected_lines("compile", "build") == [b"build line 1/2", b"build line 2/2"] * 2
    for pod in pods:
        assert read_log(cluster, namespace, pod, "step-build") == b"build line 1/2\nbuild line 2/2\n"


def test_when_skipped_completes(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["when-skipped"](), namespace=namespace).wait(30)
    final = pr(cluster, run)
    assert succeeded(final)["reason"] == "Completed"
    assert succeeded(final)["message"] == "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 1"
    assert final["status"]["skippedTasks"] == [
        {
            "name": "deploy",
            "reason": "When Expressions evaluated to false",
            "whenExpressions": [{"input": "false", "operator": "in", "values": ["true"]}],
        }
    ]
    assert [r["pipelineTaskName"] for r in final["status"]["childReferences"]] == ["test"]
    assert run.pods("deploy") == []


def test_finally_runs_after_the_dag(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["finally"](), namespace=namespace).wait(30)
    final = pr(cluster, run)
    status = final["status"]
    assert [r["pipelineTaskName"] for r in status["childReferences"]] == ["build", "test", "notify", "report"]
    assert status["finallyStartTime"] >= tr(cluster, run, "test")["status"]["completionTime"]
    for task in ("notify", "report"):
        finally_run = tr(cluster, run, task)
        assert finally_run["metadata"]["labels"]["tekton.dev/memberOf"] == "finally"
        assert finally_run["status"]["startTime"] >= status["finallyStartTime"]


def test_timeout_cancels_and_deletes_pods(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["timeout"](pipeline_timeout=1.0), namespace=namespace).wait(30)
    final = pr(cluster, run)
    assert succeeded(final)["reason"] == "PipelineRunTimeout"
    assert succeeded(final)["message"] == f'PipelineRun "{run.name}" failed to finish within "1s"'
    assert final["spec"]["timeouts"]["pipeline"] == "1s"
    e2e = tr(cluster, run, "e2e")
    assert e2e["spec"]["status"] == "TaskRunCancelled"
    assert e2e["spec"]["statusMessage"] == CANCELLED_BY_PR_TIMEOUT_MSG
    assert succeeded(e2e)["reason"] == "TaskRunCancelled"
    assert (
        succeeded(e2e)["message"] == f'TaskRun "{e2e["metadata"]["name"]}" was cancelled. {CANCELLED_BY_PR_TIMEOUT_MSG}'
    )
    (step,) = e2e["status"]["steps"]
    assert step["terminationReason"] == "TaskRunCancelled"
    assert step["terminated"]["message"] == f"Step run-suite terminated as pod {run.pods('e2e')[0]} is terminated"
    pod = run.pods("e2e")[0]
    assert cluster.raw("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}", cluster.admin)[0] == 404
    assert log_status(cluster, namespace, pod, "step-run-suite", cluster.admin)[0] == 404
    assert run.pods("after") == []


def test_cancel_requested_by_the_test(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["cancelled"](cancel_after=None), namespace=namespace)
    wait_for(lambda: len(run.expected_lines("long", "work")) == 3, what="the step's lines", timeout=15)
    run.cancel()
    run.wait(30)
    final = pr(cluster, run)
    assert final["spec"]["status"] == "Cancelled"
    assert succeeded(final)["reason"] == "Cancelled"
    assert succeeded(final)["message"] == f'PipelineRun "{run.name}" was cancelled'
    long_run = tr(cluster, run, "long")
    assert long_run["spec"]["statusMessage"] == CANCELLED_BY_PR_MSG
    assert succeeded(long_run)["reason"] == "TaskRunCancelled"
    assert cluster.raw("GET", f"/api/v1/namespaces/{namespace}/pods/{run.pods('long')[0]}", cluster.admin)[0] == 404
    assert "skippedTasks" not in final["status"]  # fixture 04: the task never started is not listed


def test_scenario_cancel(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["cancelled"](cancel_after=0.5), namespace=namespace).wait(30)
    assert succeeded(pr(cluster, run))["reason"] == "Cancelled"
    assert succeeded(tr(cluster, run, "long"))["reason"] == "TaskRunCancelled"


def test_pod_deleted_after_completion(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["pod-deleted"](), namespace=namespace).wait(30)
    assert succeeded(pr(cluster, run))["reason"] == "Succeeded"
    for task in ("build", "test"):
        (pod,) = run.pods(task)
        assert tr(cluster, run, task)["status"]["podName"] == pod
        status, text = log_status(
            cluster, namespace, pod, "step-" + ("make" if task == "build" else "pytest"), cluster.admin
        )
        assert status == 404, text


def test_sidecar_stopped_with_nop_image(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["sidecar"](), namespace=namespace).wait(30)
    taskrun = tr(cluster, run, "unit-tests")
    (sidecar,) = taskrun["status"]["sidecars"]
    assert sidecar["container"] == "sidecar-redis"
    assert sidecar["terminated"]["exitCode"] == 137
    assert sidecar["terminated"]["message"] == "Sidecar container successfully stopped by nop image"
    pod = get(cluster, f"/api/v1/namespaces/{namespace}/pods/{run.pods('unit-tests')[0]}")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["step-install", "step-pytest", "sidecar-redis"]
    assert pod["spec"]["containers"][2]["image"] == NOP_IMAGE
    assert pod["metadata"]["annotations"]["tekton.dev/ready"] == "READY"
    statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
    assert statuses["sidecar-redis"]["restartCount"] == 1
    assert statuses["sidecar-redis"]["lastState"]["terminated"]["exitCode"] == 137
    # The redis instance's output moved to `previous` when the nop image replaced it.
    assert read_log(cluster, namespace, run.pods("unit-tests")[0], "sidecar-redis") == b""
    with open_log(cluster, namespace, run.pods("unit-tests")[0], "sidecar-redis", "&previous=true") as resp:
        assert resp.read() == b"Ready to accept connections tcp\n"


def test_image_pull_failure(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["image-pull-failure"](), namespace=namespace).wait(30)
    build = tr(cluster, run, "build")
    assert succeeded(build)["reason"] == "TaskRunImagePullFailed"
    assert succeeded(build)["message"].startswith(f'the step "compile" in TaskRun "{build["metadata"]["name"]}"')
    assert [s["terminationReason"] for s in build["status"]["steps"]] == ["TaskRunImagePullFailed"] * 2
    assert cluster.raw("GET", f"/api/v1/namespaces/{namespace}/pods/{run.pods('build')[0]}", cluster.admin)[0] == 404
    final = pr(cluster, run)
    assert succeeded(final)["reason"] == "Failed"
    assert final["status"]["skippedTasks"] == [{"name": "deploy", "reason": "PipelineRun was stopping"}]


def test_image_pull_failure_pod_waits_with_the_kubelets_reason(
    cluster: Cluster, sim: Simulator, namespace: str
) -> None:
    scenario = SCENARIOS["image-pull-failure"]()
    scenario.tick = 1.0  # a slow kubelet: the waiting pod stays long enough to be read
    run = sim.play(scenario, namespace=namespace)
    pod_path = f"/api/v1/namespaces/{namespace}/pods/{run.name}-build-pod"

    def waiting_reason() -> str | None:
        status, text = cluster.raw("GET", pod_path, cluster.admin)
        if status != 200:
            return None
        states = {c["name"]: c["state"] for c in json.loads(text)["status"].get("containerStatuses", [])}
        return states.get("step-compile", {}).get("waiting", {}).get("reason")

    # wait_for fails the test itself when the state never comes.
    wait_for(lambda: waiting_reason() in ("ErrImagePull", "ImagePullBackOff"), what="ErrImagePull", timeout=15)
    # The TaskRun's condition follows the pod's state in a separate write: wait for it too.
    wait_for(
        lambda: (succeeded(tr(cluster, run, "build")) or {}).get("reason") == "PullImageFailed",
        what="TaskRun reason PullImageFailed",
        timeout=15,
    )
    run.wait(30)


# -- never / late ----------------------------------------------------------------------------------
def test_never_creates_nothing(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["never"](), namespace=namespace).wait(5)
    assert cluster.raw("GET", f"{TEKTON}/{namespace}/pipelineruns/{run.name}", cluster.admin)[0] == 404
    assert get(cluster, f"{TEKTON}/{namespace}/taskruns")["items"] == []


def test_late_run_appears_after_the_delay(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    started = time.monotonic()
    run = sim.play(SCENARIOS["late"](appear_after=1.0), namespace=namespace)
    status, _ = cluster.raw("GET", f"{TEKTON}/{namespace}/pipelineruns/{run.name}", cluster.admin)
    assert status == 404 or time.monotonic() - started >= 1.0
    run.wait(30)
    assert time.monotonic() - started >= 1.0
    assert succeeded(pr(cluster, run))["reason"] == "Succeeded"


# -- watch, logs, RBAC, kubectl --------------------------------------------------------------------
def test_watch_sees_pipelinerun_updates(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    from kubernetes import client, watch

    api = client.CustomObjectsApi(client.ApiClient(cluster.client_configuration()))
    run = sim.play(SCENARIOS["success"](), namespace=namespace)
    reasons: list[str] = []
    events: list[str] = []
    stream = watch.Watch()
    for event in stream.stream(
        api.list_namespaced_custom_object,
        "tekton.dev",
        "v1",
        namespace,
        "pipelineruns",
        field_selector=f"metadata.name={run.name}",
        timeout_seconds=30,
    ):
        events.append(event["type"])
        conditions = (event["object"].get("status") or {}).get("conditions") or []
        reasons += [c["reason"] for c in conditions if c["type"] == "Succeeded"]
        if reasons and reasons[-1] == "Succeeded":
            stream.stop()
    run.wait(30)
    assert events[0] == "ADDED"
    assert events.count("MODIFIED") >= 4
    assert reasons[0] == "Running" and reasons[-1] == "Succeeded"


def held_scenario(hold: threading.Event) -> Scenario:
    return Scenario(
        "held",
        tasks=[Task("t", [Step("first", [b"one", b"two"], hold=hold), Step("second", [b"three"])])],
    )


def test_follow_streams_lines_before_the_step_ends(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    hold = threading.Event()
    run = sim.play(held_scenario(hold), namespace=namespace)
    try:
        wait_for(lambda: run.expected_lines("t", "first") == [b"one", b"two"], what="the first lines", timeout=15)
        pod = run.pods("t")[0]
        with open_log(cluster, namespace, pod, "step-first", "&follow=true") as resp:
            assert resp.readline() == b"one\n"
            assert resp.readline() == b"two\n"
            # Received while the step is still running: it waits on `hold`.
            step = tr(cluster, run, "t")["status"]["steps"][0]
            assert "running" in step and "terminated" not in step
            hold.set()
            assert resp.read() == b""  # the stream ends when the container ends
        run.wait(30)
        assert read_log(cluster, namespace, pod, "step-second") == b"three\n"
    finally:
        hold.set()


def test_container_not_started_answers_pod_initializing(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    scenario = SCENARIOS["success"]()
    scenario.tick = 1.0  # a slow kubelet keeps the pod initializing long enough to ask
    run = sim.play(scenario, namespace=namespace)
    pod = f"{run.name}-checkout-pod"
    wait_for(
        lambda: cluster.raw("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}", cluster.admin)[0] == 200,
        what="the pod",
        timeout=15,
    )
    status, text = log_status(cluster, namespace, pod, "step-clone", cluster.admin)
    assert status == 400
    message = json.loads(text)["message"]
    assert message == f'container "step-clone" in pod "{pod}" is waiting to start: PodInitializing'
    run.wait(30)


def test_nobody_is_forbidden(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["when-skipped"](), namespace=namespace).wait(30)
    assert cluster.raw("GET", f"{TEKTON}/{namespace}/pipelineruns", cluster.nobody)[0] == 403
    assert cluster.raw("GET", f"{TEKTON}/{namespace}/pipelineruns/{run.name}", cluster.nobody)[0] == 403
    status, text = log_status(cluster, namespace, run.pods("test")[0], "step-pytest", cluster.nobody)
    assert status == 403, text
    assert log_status(cluster, namespace, run.pods("test")[0], "step-pytest", cluster.admin)[0] == 200


def kubectl(cluster: Cluster, *args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args]


def test_kubectl_get_and_follow(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    hold = threading.Event()
    run = sim.play(held_scenario(hold), namespace=namespace)
    try:
        wait_for(lambda: run.expected_lines("t", "first") == [b"one", b"two"], what="the first lines", timeout=15)
        pod = run.pods("t")[0]
        follow = subprocess.Popen(
            kubectl(cluster, "-n", namespace, "logs", "-f", pod, "-c", "step-first"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert follow.stdout is not None
            assert follow.stdout.readline() == b"one\n"
            assert follow.stdout.readline() == b"two\n"
            assert follow.poll() is None  # still following: the step has not ended
            hold.set()
            out, err = follow.communicate(timeout=30)
            assert follow.returncode == 0, err
            assert out == b""
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        run.wait(30)
    finally:
        hold.set()
    got = subprocess.run(
        kubectl(cluster, "-n", namespace, "get", "pipelineruns"), capture_output=True, timeout=30, check=True
    )
    header, *rows = got.stdout.decode().splitlines()
    assert header.split() == ["NAME", "SUCCEEDED", "REASON", "STARTTIME", "COMPLETIONTIME"]
    assert rows[0].split()[:3] == [run.name, "True", "Succeeded"]


def test_large_output_defaults(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = sim.play(SCENARIOS["large-output"](), namespace=namespace).wait(120)
    pod = run.pods("dump")[0]
    try:
        lines = run.expected_lines("dump", "dump")
        assert sum(len(line) + 1 for line in lines) >= 20 * 1024 * 1024
        assert max(len(line) for line in lines) > 16 * 1024
        assert lines[-1] == b"last line without a trailing newline"
        assert any(b"\xff" in line for line in lines)
        body = read_log(cluster, namespace, pod, "step-dump")
        assert body == as_log(lines, final_newline=False)
        with pytest.raises(UnicodeDecodeError):
            body.decode()
    finally:
        cluster.store.remove_pod(namespace, pod)


def test_demo_entrypoint_starts_and_stops(tmp_path: Any) -> None:
    """`python -m tests.sandbox` serves a run and stops every process on SIGTERM."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox", "when-skipped", "--pause", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for raw in proc.stdout:
            seen.append(raw.decode())
            if raw.startswith(b"playing"):
                break
        assert any(line.startswith("kubeconfig: ") for line in seen), seen
        proc.terminate()
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
