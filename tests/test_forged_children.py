"""A TaskRun (or pod) that carries a run's labels but that the run does not own injects nothing
(issue 15, item 6): labels select, the ownerReference's uid decides. Tried as an attacker who may
create TaskRuns and pods in the run's namespace would: live and on replay, over real HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.sandbox import objects as o
from tests.sandbox.cluster import LISTENER_NAMESPACE, NODE_NAME, Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import MERGE, PlayedRun, Simulator
from tests.support import Listener, strip_heartbeats, task_lines, wait_for

NS = LISTENER_NAMESPACE
INJECTED = b"INJECTED by a forged TaskRun"
TEKTON = f"/apis/tekton.dev/v1/namespaces/{NS}"


def forge(cluster: Cluster, run: str, tag: str, owners: list[dict[str, Any]]) -> str:
    """A finished TaskRun named like the run's, labelled as the run's `unit` task, owned by
    `owners`, with a pod (owned by it, labelled as the run's) whose step printed INJECTED lines.
    Started an hour ago, so it would be the first task replayed."""
    listed = cluster.api("GET", f"{TEKTON}/taskruns?labelSelector=tekton.dev/pipelineRun%3D{run}")["items"]
    real = next(tr for tr in listed if tr["metadata"]["labels"].get("tekton.dev/pipelineTask") == "unit")
    name = f"{run}-unit-{tag}"
    pod_name = f"{name}-pod"
    labels = dict(real["metadata"]["labels"])
    taskrun = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "namespace": NS, "labels": labels, "ownerReferences": owners},
        "spec": real["spec"],
    }
    uid = cluster.api("POST", f"{TEKTON}/taskruns", taskrun)["metadata"]["uid"]
    now = time.time()
    status = {
        "conditions": [o.condition("False", "Failed", "forged failure: deploy to production now", now)],
        "podName": pod_name,
        "startTime": o.ts(now - 3600),
        "completionTime": o.ts(now),
    }
    cluster.api("PATCH", f"{TEKTON}/taskruns/{name}/status", {"status": status}, content_type=MERGE)

    pod = o.pod(
        name=pod_name,
        namespace=NS,
        labels={**labels, "tekton.dev/taskRun": name, "tekton.dev/taskRunUID": uid},
        owner=o.owner_reference("TaskRun", name, uid),
        steps=[o.StepSpec("install", "busybox")],
        sidecars=[],
        timeout_seconds=3600,
        node_name=NODE_NAME,
    )
    init = [o.Container(c["name"], c["image"]) for c in pod["spec"]["initContainers"]]
    steps = [o.Container("step-install", "busybox")]
    cluster.store.add_pod(NS, pod_name, [c.name for c in init + steps])
    cluster.store.start(NS, pod_name, "step-install")
    cluster.store.write(NS, pod_name, "step-install", INJECTED + b" 1\n" + INJECTED + b" 2\n")
    cluster.store.terminate(NS, pod_name, "step-install")
    for container in init + steps:
        container.terminate(now, 0, started=now - 1)
    cluster.api("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    pod_status = o.pod_status(init=init, containers=steps, phase="Succeeded", start=now - 2, now=now, pod_ip="10.9.9.9")
    cluster.api("PATCH", f"/api/v1/namespaces/{NS}/pods/{pod_name}/status", {"status": pod_status}, content_type=MERGE)
    return name


def forge_all(cluster: Cluster, run: str) -> list[str]:
    """No ownerReference, another PipelineRun's uid, and the run's name with a foreign uid."""
    foreign = str(uuid.uuid4())
    return [
        forge(cluster, run, "no-owner", []),
        forge(cluster, run, "other-run", [o.owner_reference("PipelineRun", "someone-elses-run", foreign)]),
        forge(cluster, run, "same-name", [o.owner_reference("PipelineRun", run, str(uuid.uuid4()))]),
    ]


def assert_untouched(run: PlayedRun, body: bytes) -> None:
    assert INJECTED not in body and b"forged failure" not in body, body[-2000:]
    got = task_lines(body)
    for key, lines in run.expected().items():
        assert got.get(key, []) == lines, key
    assert set(got) <= set(run.expected())


def test_forged_taskruns_inject_nothing_into_a_live_stream(
    listener: Listener, sim: Simulator, cluster: Cluster
) -> None:
    name = f"live-forged-{uuid.uuid4().hex[:8]}"
    hold = threading.Event()
    scenario = SCENARIOS["success"](lines=5, interval=0.05)
    scenario.tasks[-1].steps[0].hold = hold  # `package` waits until the forgeries are in place
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: b"".join(listener.stream(f"/logs/{name}?wait=30", timeout=120)))
        run = sim.play(scenario, NS, name)
        try:
            # The simulator has no event for "this task's pod exists".
            wait_for(lambda: run.pods("package"), "the package task's pod", 60)
            forge_all(cluster, name)
        finally:
            hold.set()
        run.wait(120)
        body = future.result(timeout=120)
    assert_untouched(run, body)
    final = strip_heartbeats(body).rstrip(b"\n").split(b"\n")[-1]
    assert final.startswith(f"PipelineRun {name} Succeeded".encode()), final


def test_forged_taskruns_change_neither_replay_nor_status(listener: Listener, sim: Simulator, cluster: Cluster) -> None:
    run = sim.play(SCENARIOS["success"](), NS, f"forged-{uuid.uuid4().hex[:8]}").wait(60)
    before = {path: listener.get(path)[2] for path in (f"/status/{run.name}?tasks=true", f"/status/{run.name}")}
    forge_all(cluster, run.name)

    status, _, body = listener.get(f"/logs/{run.name}")
    assert status == 200
    assert_untouched(run, body)
    status, _, ndjson = listener.get(f"/logs/{run.name}?format=ndjson")
    events = [json.loads(line) for line in ndjson.splitlines() if line.strip()]
    assert status == 200 and INJECTED not in ndjson
    assert {e["task"] for e in events if e["event"] == "log"} == {"checkout", "unit", "lint", "package"}
    assert events[-1]["event"] == "end" and events[-1]["status"]["outcome"] == "succeeded"
    for path, answer in before.items():
        assert listener.get(path)[2] == answer, path
