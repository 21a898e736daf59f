"""Issue 17 item 3: the built image in-cluster on the real node, run the way Knative runs it.

One setup for the module: a sandbox cluster with the real node and in-cluster credentials
(`Cluster.start(real_node=True, in_cluster=True)`: ServiceAccount admission, kube-controller-
manager's token and root-CA controllers, the `kubernetes` Service forwarded inside the node), the
image imported into the node's containerd, service.yaml's identities and their rights and the
credentials Secret, and every function as a Pod from service.yaml's own pod spec
(tests/listener_pods.py). From the host, `curl -N /logs/<run>` follows a real PipelineRun of real
pods and `curl -f /status/<run>` answers; the pods hold service.yaml's rights and nothing else. Any
error in a pod's own log, or any restart, fails the module.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.logs.writers import RESUME_MARK
from tests.image import image_ref, require_engine
from tests.image_container import trouble
from tests.listener_pods import ListenerPods, rbac_documents
from tests.needs import need_real_node
from tests.sandbox.cluster import KUBERNETES_SERVICE_IP, LISTENER_NAMESPACE, Cluster, Identity
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import PASSWORD, USER, strip_heartbeats, task_lines
from tests.test_image_runtime import held_run
from tests.test_manifests import FUNCTIONS, container, knative_services

NS = LISTENER_NAMESPACE
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# Setup includes waiting for the machine-wide real-node lock (up to 600 s) where others hold it.
pytestmark = pytest.mark.timeout(900)


@dataclass
class Deployed:
    cluster: Cluster
    pods: ListenerPods
    names: dict[str, str]  # function -> pod name
    addresses: dict[str, str]  # function -> pod IP
    sim: Simulator

    def url(self, function: str, path: str) -> str:
        port = container(knative_services()[function])["ports"][0]["containerPort"]
        return f"http://{self.addresses[function]}:{port}{path}"


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    need_real_node("the in-cluster test needs a machine that can run a kubelet")
    require_engine()
    image_ref()  # built (or found) before the real node's lock is taken
    with Cluster.start(real_node=True, in_cluster=True) as cluster:
        pods = ListenerPods(cluster).deploy()
        names = {function: pods.create(function) for function in FUNCTIONS}
        addresses = {function: pods.wait_ready(name) for function, name in names.items()}
        sim = Simulator(cluster, real_pods=True)
        try:
            yield Deployed(cluster, pods, names, addresses, sim)
        finally:
            sim.stop()


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


def test_every_function_runs_from_service_yaml_with_only_in_cluster_configuration(deployed: Deployed) -> None:
    for function, name in deployed.names.items():
        pod = deployed.pods.get(name)
        template = knative_services()[function]["spec"]["template"]["spec"]
        [box] = pod["spec"]["containers"]
        assert pod["spec"]["serviceAccountName"] == template["serviceAccountName"]
        assert box["securityContext"] == container(knative_services()[function])["securityContext"]
        assert box["image"] == deployed.pods.image
        assert not pod["spec"].get("hostNetwork")
        # No kubeconfig: the token and CA the kubelet mounted, the Service address it set.
        env = {item["name"] for item in box["env"]}
        assert "KUBECONFIG" not in env
        # Mounted unless service.yaml turns it off (a function that never talks to Kubernetes).
        mounted = TOKEN_MOUNT in {mount["mountPath"] for mount in box["volumeMounts"]}
        assert mounted == token_wanted(template), function
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] and status["containerID"].startswith("containerd://")
    health = curl("-f", deployed.url("health", "/health"))
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "ok"
    # Readiness of a function that reads the API proves it answers through 10.96.0.1 and the
    # ServiceAccount may list runs.
    for function in deployed.names:
        ready = curl("-f", deployed.url(function, "/health/readiness"))
        assert ready.returncode == 0, (function, ready.stdout, ready.stderr)


def test_curl_follows_a_real_pipelinerun_and_status_answers(deployed: Deployed) -> None:
    name = f"in-cluster-{os.getpid()}"
    creds = f"{USER}:{PASSWORD}"
    follow = subprocess.Popen(
        ["curl", "-sS", "-N", "-f", "--user", creds, deployed.url("logs", f"/logs/{name}?wait=60")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        run = deployed.sim.play(SCENARIOS["success"](lines=5, interval=0.05), NS, name)
        body, err = follow.communicate(timeout=180)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    run.wait(60)
    expected = run.expected()
    got = task_lines(body)
    assert expected
    for key, lines in expected.items():  # one step at a time, so a failure says which and how
        assert got.get(key) == lines, (key, got.get(key), lines, strip_heartbeats(body)[-1500:])
    assert set(got) == set(expected), set(got) ^ set(expected)
    assert strip_heartbeats(body).rstrip(b"\n").split(b"\n")[-1].startswith(f"PipelineRun {name} Succeeded".encode())
    # Real pods on the real node made the lines.
    step_pods = [pod for task, _ in expected for pod in run.pods(task)]
    assert step_pods
    for pod in step_pods:
        assert deployed.cluster.api("GET", f"/api/v1/namespaces/{NS}/pods/{pod}")["spec"]["nodeName"] == "real-node"

    status = curl("-f", "--user", creds, deployed.url("status", f"/status/{name}"))
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert answer["name"] == name and answer["reason"] == "Succeeded" and answer["outcome"] == "succeeded"
    # Without credentials: refused, and curl -f says so.
    assert curl("-f", deployed.url("status", f"/status/{name}")).returncode == 22


def token_wanted(template: dict[str, Any]) -> bool:
    """Whether the kubelet mounts the pod's token: the pod's setting, else its ServiceAccount's."""
    if "automountServiceAccountToken" in template:
        return bool(template["automountServiceAccountToken"])
    [account] = [
        doc
        for doc in rbac_documents()
        if doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == template["serviceAccountName"]
    ]
    return account.get("automountServiceAccountToken", True) is not False


def may_list_runs(account: str) -> bool:
    """service.yaml binds `account` to a Role that lists PipelineRuns."""
    docs = rbac_documents()
    bound = {
        doc["roleRef"]["name"]
        for doc in docs
        if doc["kind"] == "RoleBinding"
        and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in doc["subjects"])
    }
    return any(
        "pipelineruns" in rule.get("resources", []) and "list" in rule.get("verbs", [])
        for doc in docs
        if doc["kind"] == "Role" and doc["metadata"]["name"] in bound
        for rule in doc["rules"]
    )


def test_the_pods_identity_holds_the_role_and_nothing_else(deployed: Deployed) -> None:
    cluster = deployed.cluster
    accounts = {knative_services()[f]["spec"]["template"]["spec"]["serviceAccountName"] for f in deployed.names}
    assert any(may_list_runs(account) for account in accounts)
    for account_name in sorted(accounts):
        account = cluster.wait_service_account(NS, account_name)
        [ref] = [s["name"] for s in account["secrets"] if "token" in s["name"]]
        secret = cluster.api("GET", f"/api/v1/namespaces/{NS}/secrets/{ref}")
        token = base64.b64decode(secret["data"]["token"]).decode()
        assert base64.b64decode(secret["data"]["ca.crt"]) == Path(cluster.ca_file).read_bytes()
        who = Identity(token, f"system:serviceaccount:{NS}:{account_name}")
        runs = "/apis/tekton.dev/v1/namespaces/{}/pipelineruns"
        expected = 200 if may_list_runs(account_name) else 403
        assert cluster.raw("GET", runs.format(NS), who)[0] == expected, account_name
        assert cluster.raw("GET", runs.format("default"), who)[0] == 403
        assert cluster.raw("GET", f"/api/v1/namespaces/{NS}/secrets", who)[0] == 403
        assert cluster.raw("POST", f"/api/v1/namespaces/{NS}/pods", who, {"metadata": {"name": "x"}})[0] == 403
    service = cluster.api("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert service["spec"]["clusterIP"] == KUBERNETES_SERVICE_IP


def test_deleting_a_logs_pod_ends_its_open_stream_with_a_resume_cursor(deployed: Deployed) -> None:
    # A pod of its own: the kubelet's SIGTERM, as when Knative scales a revision down.
    pods = deployed.pods
    name = pods.create("logs")
    address = pods.wait_ready(name)
    port = container(knative_services()["logs"])["ports"][0]["containerPort"]
    grace = pods.get(name)["spec"]["terminationGracePeriodSeconds"]
    with ThreadPoolExecutor(1) as pool:
        own_log = pool.submit(pods.log, name, True)
        run, hold = held_run(deployed.sim)
        follow = subprocess.Popen(
            ["curl", "-sS", "-N", "--user", f"{USER}:{PASSWORD}", f"http://{address}:{port}/logs/{run.name}?wait=60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert follow.stdout is not None
            first = follow.stdout.readline()  # the held step's first line, then silence
            assert first.lstrip(b"\r").startswith(b"["), first
            began = time.monotonic()
            pods.delete(name)
            rest, err = follow.communicate(timeout=60)
            stopped = time.monotonic() - began
        finally:
            hold.set()
            follow.kill()
        log = own_log.result(120)
    assert follow.returncode == 0, err  # the chunked body ended cleanly
    lines = (first + rest).split(b"\n")
    assert lines[-1] == b"" and b"shutting down" in lines[-2] and RESUME_MARK.encode() in lines[-2], lines[-3:]
    # From the delete to the stream's end, the kubelet's part included: well inside the shortest
    # grace period service.yaml gives any function (Knative sets it to timeoutSeconds).
    shortest = min(ksvc["spec"]["template"]["spec"]["timeoutSeconds"] for ksvc in knative_services().values())
    assert stopped < shortest / 2 and shortest <= grace, (stopped, shortest, grace)
    assert trouble(log) == [], log[-3000:]
    run.wait(60)


def test_no_pod_logged_an_error_or_restarted(deployed: Deployed) -> None:
    for function, name in deployed.names.items():
        log = deployed.pods.log(name)  # read through the kubelet, as `kubectl logs` does
        assert trouble(log) == [], (function, log[-3000:])
        assert deployed.pods.restarts(name) == 0, function
