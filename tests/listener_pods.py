"""The image's functions as pods on the sandbox's real node, deployed from service.yaml and run as
Knative runs them, with in-cluster configuration only (issue 17, items 3 and 4).

`ListenerPods(cluster)`, on a cluster started with `real_node=True, in_cluster=True`:
- `deploy()`: imports the built image into the node's containerd (`tests/image.py`), applies
  service.yaml's ServiceAccounts, (Cluster)Roles, (Cluster)RoleBindings and NetworkPolicy, and creates
  the credentials Secret its Services reference (the one object service.yaml leaves to the user);
- `create(function)`: that function's Pod from service.yaml's own pod spec (`tests/knative_pod.py`:
  image, env, security context, serviceAccountName, volumes), bound to the real node. The pod gets
  no kubeconfig: the kubelet mounts its ServiceAccount's token and the cluster CA, and sets
  `KUBERNETES_SERVICE_HOST`/`PORT` to the `kubernetes` Service, which the node forwards to the
  apiserver. Nothing is granted beyond service.yaml's Role;
- `wait_ready(name)`, `log(name)`, `restarts(name)`, `container_started(name)`: what the kubelet says;
  `first_address(name, known)`: the pod's IP as the node's IPAM hands it out.

The pod has its own network namespace (the node's bridge CNI) and listens on service.yaml's port;
the host reaches it at its pod IP.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.image import ctr_import_command, image_archive, image_ref
from tests.knative_pod import knative_pod
from tests.sandbox.cluster import LISTENER_NAMESPACE, ApiError, Cluster
from tests.sandbox.kubelet import parse_rfc3339
from tests.support import PASSWORD, USER
from tests.test_manifests import service_documents

CRI_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) ")
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
# Applied as they are, though the node's bridge CNI enforces no NetworkPolicy.
DEPLOYED_KINDS = (*RBAC_KINDS, "NetworkPolicy")
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding")
# Waiting reasons after which the container will not start without someone changing the pod.
STUCK = {"ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def rbac_documents() -> list[dict[str, Any]]:
    return [doc for doc in service_documents() if doc["kind"] in RBAC_KINDS]


def deployed_documents(namespace: str) -> list[dict[str, Any]]:
    """Everything of service.yaml but what needs Knative or a Gateway: identities, their rights,
    the NetworkPolicy; namespaced ones into `namespace`."""
    docs = [doc for doc in service_documents() if doc["kind"] in DEPLOYED_KINDS]
    return [
        doc if doc["kind"] in CLUSTER_SCOPED else {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
        for doc in docs
    ]


def credential_secrets(pod: dict[str, Any]) -> dict[str, set[str]]:
    """The Secrets (and their keys) a pod's env references: what the user creates beside service.yaml."""
    wanted: dict[str, set[str]] = {}
    for box in pod["spec"]["containers"]:
        for item in box.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                wanted.setdefault(ref["name"], set()).add(ref["key"])
    return wanted


class ListenerPods:
    def __init__(self, cluster: Cluster, namespace: str = LISTENER_NAMESPACE) -> None:
        if cluster.node is None or not cluster.in_cluster:
            raise ValueError("the listener's pods need a cluster started with real_node=True, in_cluster=True")
        self.cluster = cluster
        self.node = cluster.node
        self.namespace = namespace
        self.image = ""
        self.import_seconds = 0.0

    # -- deploying -------------------------------------------------------------------------------
    def deploy(self) -> ListenerPods:
        self.image = image_ref()
        began = time.perf_counter()
        subprocess.run(
            ctr_import_command(image_archive(), address=self.node.socket), check=True, capture_output=True, timeout=300
        )
        self.import_seconds = time.perf_counter() - began
        for doc in deployed_documents(self.namespace):
            self.cluster.apply(doc)
        for doc in rbac_documents():
            if doc["kind"] == "ServiceAccount":
                self.cluster.wait_service_account(self.namespace, doc["metadata"]["name"])
        secrets: dict[str, set[str]] = {}
        for function in ("logs", "status"):
            for name, keys in credential_secrets(knative_pod(function, self.image)).items():
                secrets.setdefault(name, set()).update(keys)
        values = {"username": USER, "password": PASSWORD}
        for name, keys in secrets.items():
            self.cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "namespace": self.namespace},
                    "stringData": {key: values[key] for key in keys},
                }
            )
        return self

    def pod(self, function: str, name: str | None = None) -> dict[str, Any]:
        pod = knative_pod(function, self.image, name or f"{function}-{uuid.uuid4().hex[:8]}")
        pod["metadata"]["namespace"] = self.namespace
        pod["spec"]["nodeName"] = self.node.name  # no scheduler here
        return pod

    def create(self, function: str, name: str | None = None) -> str:
        created = self.cluster.api("POST", f"/api/v1/namespaces/{self.namespace}/pods", self.pod(function, name))
        return created["metadata"]["name"]

    # -- what the kubelet says -------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        return self.cluster.api("GET", f"/api/v1/namespaces/{self.namespace}/pods/{name}")

    def wait_ready(self, name: str, timeout: float = 120.0) -> str:
        """Until the kubelet's readiness probe passes; the pod's IP. Fails at once on a container
        that cannot start or has restarted."""
        deadline = time.monotonic() + timeout
        while True:
            pod = self.get(name)
            status = pod.get("status", {})
            for box in status.get("containerStatuses") or []:
                waiting = (box.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in STUCK or box.get("restartCount", 0) > 0 or status.get("phase") == "Failed":
                    raise AssertionError(f"pod {name} cannot run: {json.dumps(status)[:1500]}")
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Ready") == "True" and status.get("podIP"):
                return status["podIP"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {name} not Ready after {timeout:.0f}s: {json.dumps(status)[:1500]}")
            time.sleep(0.2)

    def restarts(self, name: str) -> int:
        return sum(box.get("restartCount", 0) for box in self.get(name)["status"].get("containerStatuses") or [])

    def log(self, name: str, follow: bool = False) -> str:
        """The container's own log, as `kubectl logs` reads it through the kubelet; with `follow`,
        everything until the container exits (what it logs at stop included). Read with the CRI
        file's timestamps, which are then cut: a line without one is the kubelet's own (kubelet
        1.20 appends `rpc error: code = NotFound ...` to a followed log whose pod is deleted)."""
        path = f"/api/v1/namespaces/{self.namespace}/pods/{name}/log?timestamps=true"
        status, text = self.cluster.raw(
            "GET", path + ("&follow=true" if follow else ""), self.cluster.admin, timeout=120
        )
        if status != 200:
            raise ApiError(status, text, "GET", path)
        return "".join(CRI_STAMP.sub("", line) for line in text.splitlines(keepends=True) if CRI_STAMP.match(line))

    def container_started(self, name: str) -> float:
        """When runc created the pod's container (epoch seconds, nanosecond precision): the API's
        startedAt has whole seconds only."""
        [box] = self.get(name)["status"]["containerStatuses"]
        container_id = box["containerID"].split("://", 1)[1]
        state = subprocess.run(
            ["runc", "--root", str(Path(self.node.runc_root) / "k8s.io"), "state", container_id],
            check=True,
            capture_output=True,
            text=True,
        )
        return parse_rfc3339(json.loads(state.stdout)["created"]) / 1e9

    def first_address(self, name: str, known: set[str], timeout: float = 60.0) -> str:
        """The pod's IP as soon as the node's IPAM hands it out (before its container starts; the
        API shows it only after the kubelet's next status update): the new address in host-local's
        data directory, of addresses not in `known`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = self.allocated() - known
            if fresh:
                [address] = fresh
                return address
            time.sleep(0.002)
        raise TimeoutError(f"pod {name} got no address in {timeout:.0f}s")

    def allocated(self) -> set[str]:
        ipam = Path(self.node.workdir) / "containerd" / "ipam"
        return {path.name for path in ipam.glob("*/*") if path.name.count(".") == 3}

    def delete(self, name: str) -> None:
        try:
            self.cluster.api("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{name}", ok=(200, 202))
        except ApiError as err:
            if err.status != 404:
                raise
