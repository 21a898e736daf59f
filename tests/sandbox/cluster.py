"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + a kubelet stand-in.

`Cluster.start()` brings it up on free ports with generated TLS, static bearer tokens (an admin,
ServiceAccount identities for RBAC tests, and an identity with no rights), installs Tekton's
CRDs and registers the kubelet stand-in as a Node. `stop()` (or the context manager) ends every
process it started.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import binaries, crds
from .kubelet import KubeletStandIn, LogStore
from .netns import NodeNetwork
from .node import NodeCerts, NodeLock, RealNode

NODE_NAME = "sandbox-node"
LISTENER_NAMESPACE = "tekton-pipelines"
LISTENER_SERVICE_ACCOUNT = "tekton-pipeline-listener"
# The `kubernetes` Service's ClusterIP: the first address of --service-cluster-ip-range.
KUBERNETES_SERVICE_IP = "10.96.0.1"
KUBERNETES_SERVICE_PORT = 443


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Identity:
    """A static bearer token and who the apiserver takes it for."""

    token: str
    user: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        return cls(
            token=secrets.token_hex(24),
            user=f"system:serviceaccount:{namespace}:{name}",
            groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _run(args: list[str], cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class _Certs:
    """A CA and the leaf certificates the control plane needs, made with openssl."""

    def __init__(self, directory: Path, host_ip: str | None = None) -> None:
        self.dir = directory
        _run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=sandbox-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            directory,
        )
        extra = f",IP:{host_ip}" if host_ip else ""
        # The names and ClusterIP pods use in-cluster (KUBERNETES_SERVICE_HOST is the ClusterIP).
        in_cluster = f"IP:{KUBERNETES_SERVICE_IP},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
        self.leaf("apiserver", "/CN=kube-apiserver", f"IP:127.0.0.1{extra},DNS:localhost,{in_cluster}")
        self.leaf("kubelet", f"/CN=system:node:{NODE_NAME}", "IP:127.0.0.1,DNS:localhost", client=False)
        self.leaf("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "", client=True)
        _run(["openssl", "genrsa", "-out", "sa.key", "2048"], directory)
        _run(["openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], directory)

    def leaf(self, name: str, subject: str, san: str, client: bool = False) -> None:
        ext = self.dir / f"{name}.ext"
        usage = "clientAuth" if client else "serverAuth"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment", f"extendedKeyUsage={usage}"]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        _run(
            [
                "openssl",
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                f"{name}.key",
                "-out",
                f"{name}.csr",
            ],
            self.dir,
        )
        _run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                ext.name,
                "-out",
                f"{name}.crt",
            ],
            self.dir,
        )

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def node(self, net: NodeNetwork) -> NodeCerts:
        """The real kubelet's serving certificate (its node IP) and its node identity."""
        name = RealNode.name
        self.leaf("node-serving", f"/CN=system:node:{name}", f"IP:{net.node_ip},DNS:{name}")
        self.leaf("node-client", f"/O=system:nodes/CN=system:node:{name}", "", client=True)
        return NodeCerts(
            ca=self.path("ca.crt"),
            serving_cert=self.path("node-serving.crt"),
            serving_key=self.path("node-serving.key"),
            client_cert=self.path("node-client.crt"),
            client_key=self.path("node-client.key"),
        )


@dataclass
class Cluster:
    """A running sandbox. Use `Cluster.start()`; it is also a context manager."""

    workdir: Path
    server: str
    ca_file: str
    admin: Identity
    listener: Identity
    nobody: Identity
    identities: dict[str, Identity]
    store: LogStore
    kubelet: KubeletStandIn
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _owns_workdir: bool = True
    _commands: dict[str, list[str]] = field(default_factory=dict)
    # Cleared while `stop_apiserver`/`start_apiserver` keep the API down on purpose: `raw` (the
    # simulator's and tests' requests) then waits for it to be back instead of failing.
    _api_up: threading.Event = field(default_factory=_set_event)
    # The real kubelet + containerd node, when started with `real_node=True`.
    node: RealNode | None = None
    bind_address: str = "127.0.0.1"
    # Pods get in-cluster credentials: ServiceAccount admission, kube-controller-manager's token
    # and root CA controllers, the `kubernetes` Service reachable from the node's pods.
    in_cluster: bool = False

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        extra_identities: Iterable[Identity] = (),
        install_extra_crds: bool = False,
        real_node: bool = False,
        in_cluster: bool = False,
    ) -> Cluster:
        """`real_node`: also a real kubelet + containerd node (`node.RealNode`) beside the stand-in;
        the apiserver then listens on the node network's host-side address instead of loopback,
        since the kubelet, in its own network namespace, must reach it.

        `in_cluster` (with `real_node`): the node's pods use in-cluster configuration as on a real
        cluster: the kubelet mounts their ServiceAccount's token Secret (made by a real
        kube-controller-manager, with the cluster CA) and `KUBERNETES_SERVICE_HOST:PORT` (the
        `kubernetes` Service) reaches the apiserver. Every pod's ServiceAccount must then exist;
        `default` in the listener's namespace is waited for."""
        if in_cluster and not real_node:
            raise ValueError("in_cluster needs real_node=True: only the real node runs pods")
        apiserver_bin = binaries.kube_apiserver()
        etcd_bin = binaries.etcd()
        owns = workdir is None
        workdir = Path(workdir or tempfile.mkdtemp(prefix="tpl-sandbox-"))
        workdir.mkdir(parents=True, exist_ok=True)
        lock: NodeLock | None = None
        net: NodeNetwork | None = None
        if real_node:
            lock, net = RealNode.prepare()
        try:
            certs = _Certs(workdir, net.host_ip if net else None)
        except BaseException:
            if net is not None and lock is not None:
                net.delete()
                lock.release()
            raise

        admin = Identity(secrets.token_hex(24), "sandbox-admin", ("system:masters",))
        listener = Identity.service_account(LISTENER_NAMESPACE, LISTENER_SERVICE_ACCOUNT)
        nobody = Identity(secrets.token_hex(24), "sandbox-nobody", ())
        identities = {"admin": admin, "listener": listener, "nobody": nobody}
        for extra in extra_identities:
            identities[extra.user] = extra
        with open(workdir / "tokens.csv", "w") as out:
            for ident in identities.values():
                groups = ",".join(ident.groups)
                out.write(f'{ident.token},{ident.user},{ident.user},"{groups}"\n')

        store = LogStore()
        kubelet = KubeletStandIn(
            store, certs.path("kubelet.crt"), certs.path("kubelet.key"), certs.path("ca.crt")
        ).start()
        cluster = cls(
            workdir=workdir,
            server="",
            ca_file=certs.path("ca.crt"),
            admin=admin,
            listener=listener,
            nobody=nobody,
            identities=identities,
            store=store,
            kubelet=kubelet,
            _owns_workdir=owns,
            bind_address=net.host_ip if net else "127.0.0.1",
            in_cluster=in_cluster,
        )
        _live.append(cluster)
        if net is not None and lock is not None:
            cluster.node = RealNode(workdir / "node", net, "", certs.node(net))
            cluster.node._lock = lock
        try:
            etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
            etcd_url = f"http://127.0.0.1:{etcd_port}"
            cluster._spawn(
                "etcd",
                [
                    etcd_bin,
                    "--data-dir",
                    str(workdir / "etcd"),
                    "--name",
                    "sandbox",
                    "--listen-client-urls",
                    etcd_url,
                    "--advertise-client-urls",
                    etcd_url,
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-cluster",
                    f"sandbox=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level",
                    "error",
                ],
            )
            cluster.server = f"https://{cluster.bind_address}:{api_port}"
            cluster._spawn("kube-apiserver", cluster._apiserver_args(apiserver_bin, certs, etcd_url, api_port))
            cluster.wait_ready()
            cluster.write_kubeconfig(workdir / "kubeconfig", admin)
            cluster._bootstrap(install_extra_crds)
            if in_cluster:
                cluster._start_controller_manager(certs)
            if cluster.node is not None:
                cluster.node.server = cluster.server
                cluster.node.start(cluster.node._lock or NodeLock(), cluster.node_ready)
            if in_cluster and cluster.node is not None:
                cluster.node.net.forward_service(
                    KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT, cluster.bind_address, api_port
                )
                cluster.wait_service_account(LISTENER_NAMESPACE, "default")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _apiserver_args(self, binary: str, certs: _Certs, etcd_url: str, port: int) -> list[str]:
        return [
            binary,
            f"--etcd-servers={etcd_url}",
            f"--bind-address={self.bind_address}",
            f"--advertise-address={self.bind_address}",
            f"--secure-port={port}",
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.path('apiserver.crt')}",
            f"--tls-private-key-file={certs.path('apiserver.key')}",
            f"--client-ca-file={certs.path('ca.crt')}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            # Node: the real kubelet may read what its pods need and write its node and pods' status.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-key-file={certs.path('sa.pub')}",
            f"--service-account-signing-key-file={certs.path('sa.key')}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24",
            f"--kubelet-client-certificate={certs.path('kubelet-client.crt')}",
            f"--kubelet-client-key={certs.path('kubelet-client.key')}",
            f"--kubelet-certificate-authority={certs.path('ca.crt')}",
            "--kubelet-preferred-address-types=InternalIP",
            # Without the controller-manager (in_cluster) nothing would create ServiceAccounts'
            # tokens or the `default` ServiceAccount that admission would then require.
            *([] if self.in_cluster else ["--disable-admission-plugins=ServiceAccount"]),
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--logtostderr=true",
            "--v=0",
        ]

    def _start_controller_manager(self, certs: _Certs) -> None:
        """Only the controllers in-cluster credentials need: `default` ServiceAccounts, their token
        Secrets (token, ca.crt, namespace) and the `kube-root-ca.crt` ConfigMap."""
        kubeconfig = self.write_kubeconfig(self.workdir / "controller-manager.kubeconfig", self.admin)
        binary = binaries.node_parts()["kube-controller-manager"]
        self._spawn(
            "kube-controller-manager",
            [
                binary,
                f"--kubeconfig={kubeconfig}",
                "--controllers=serviceaccount-token,serviceaccount,root-ca-cert-publisher",
                f"--service-account-private-key-file={certs.path('sa.key')}",
                f"--root-ca-file={certs.path('ca.crt')}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--logtostderr=true",
                "--v=0",
            ],
        )

    def wait_service_account(self, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Until the controller-manager has given `namespace/name` its token Secret: before that,
        ServiceAccount admission refuses pods that mount it."""
        deadline = time.monotonic() + timeout
        while True:
            status, text = self.raw("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", self.admin)
            if status == 200 and json.loads(text).get("secrets"):
                return json.loads(text)
            if status not in (200, 404):
                raise ApiError(status, text, "GET", f"serviceaccounts/{name}")
            self._check_procs()
            if time.monotonic() > deadline:
                raise TimeoutError(f"ServiceAccount {namespace}/{name} has no token after {timeout:.0f}s")
            time.sleep(0.1)

    def _check_procs(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}); see {self.workdir}")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab" if name in self._commands else "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._procs.append(proc)
        self._commands[name] = args

    def _proc(self, name: str) -> subprocess.Popen[bytes] | None:
        for proc in self._procs:
            if proc.args == self._commands.get(name) and proc.poll() is None:
                return proc
        return None

    def stop_apiserver(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
        """Kills kube-apiserver (SIGKILL by default: every connection breaks at once); etcd, the
        kubelet stand-in and all stored objects stay."""
        proc = self._proc("kube-apiserver")
        if proc is None:
            return
        self._api_up.clear()
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
        self._procs.remove(proc)

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Starts kube-apiserver again with the same port, certificates, tokens and etcd, and
        waits until it is ready."""
        if self._proc("kube-apiserver") is None:
            self._spawn("kube-apiserver", self._commands["kube-apiserver"])
        deadline = time.monotonic() + timeout
        self.wait_ready(timeout, _gated=False)
        # Ready can precede serving the CRDs again: wait until Tekton's kinds can be listed.
        while self.raw("GET", "/apis/tekton.dev/v1/pipelineruns", self.admin, _gated=False)[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("Tekton CRDs not served after the apiserver restart")
            time.sleep(0.05)
        self._api_up.set()

    def restart_apiserver(self, down_seconds: float = 0.0, sig: int = signal.SIGKILL) -> None:
        """`stop_apiserver`, `down_seconds` of outage, `start_apiserver`."""
        self.stop_apiserver(sig)
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start_apiserver()

    def wait_ready(self, timeout: float = 60.0, _gated: bool = True) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_procs()
            try:
                status, body = self.raw("GET", "/readyz", self.admin, _gated=_gated)
                if status == 200:
                    return
                last = body[:300]
            except (OSError, urllib.error.URLError) as err:
                last = str(err)
            time.sleep(0.1)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}")

    def node_ready(self) -> bool:
        """The real node registered itself and reports Ready."""
        assert self.node is not None
        status, body = self.raw("GET", f"/api/v1/nodes/{self.node.name}", self.admin)
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def stop(self) -> None:
        if self.node is not None:
            # The kubelet first: it talks to the apiserver until it is stopped.
            self.node.stop()
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        self.kubelet.stop()
        if self in _live:
            _live.remove(self)
        if self._owns_workdir and not os.environ.get("SANDBOX_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access ----------------------------------------------------------------------------------
    def write_kubeconfig(self, path: Path, identity: Identity, namespace: str = LISTENER_NAMESPACE) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "sandbox", "cluster": {"server": self.server, "certificate-authority": self.ca_file}}
            ],
            "users": [{"name": identity.user, "user": {"token": identity.token}}],
            "contexts": [
                {"name": "sandbox", "context": {"cluster": "sandbox", "user": identity.user, "namespace": namespace}}
            ],
            "current-context": "sandbox",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def raw(
        self,
        method: str,
        path: str,
        identity: Identity | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        _gated: bool = True,
    ) -> tuple[int, str]:
        """One plain HTTPS request to the apiserver; returns (status, body text). During a
        deliberate outage (`stop_apiserver`) it waits for the restart, and a request the outage
        broke is sent again once."""
        if _gated and not self._api_up.is_set():
            self._api_up.wait(120)
        try:
            return self._raw_once(method, path, identity, body, content_type, timeout)
        except (OSError, urllib.error.URLError):
            if not _gated or self._api_up.is_set():
                raise
            self._api_up.wait(120)
            return self._raw_once(method, path, identity, body, content_type, timeout)

    def _raw_once(
        self,
        method: str,
        path: str,
        identity: Identity | None,
        body: Any,
        content_type: str,
        timeout: float,
    ) -> tuple[int, str]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if identity is not None:
            req.add_header("Authorization", f"Bearer {identity.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(req, context=context, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        identity: Identity | None = None,
        content_type: str = "application/json",
        ok: Iterable[int] = (200, 201),
    ) -> dict[str, Any]:
        """A JSON request as `identity` (admin by default); raises on an unexpected status."""
        status, text = self.raw(method, path, identity or self.admin, body, content_type)
        if status not in tuple(ok):
            raise ApiError(status, text, method, path)
        return json.loads(text) if text else {}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Creates `obj` (or replaces it if it exists), by kind, as admin."""
        path = collection_path(obj)
        status, text = self.raw("POST", path, self.admin, obj)
        if status == 409:
            name = obj["metadata"]["name"]
            current = self.api("GET", f"{path}/{name}")
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
            return self.api("PUT", f"{path}/{name}", obj)
        if status not in (200, 201):
            raise ApiError(status, text, "POST", path)
        return json.loads(text)

    def client_configuration(self, identity: Identity | None = None) -> Any:
        """A `kubernetes.client.Configuration` for `identity` (admin by default)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.server
        config.ssl_ca_cert = self.ca_file
        config.api_key = {"authorization": f"Bearer {(identity or self.admin).token}"}
        return config

    def ensure_namespace(self, name: str) -> None:
        status, text = self.raw(
            "POST",
            "/api/v1/namespaces",
            self.admin,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        if status not in (201, 409):
            raise ApiError(status, text, "POST", "/api/v1/namespaces")

    # -- bootstrap -------------------------------------------------------------------------------
    def _bootstrap(self, install_extra_crds: bool) -> None:
        self.ensure_namespace(LISTENER_NAMESPACE)
        self.install_crds(crds.tekton_crds())
        if install_extra_crds:
            self.install_crds(crds.extra_crds())
        self._register_node()

    def install_crds(self, documents: list[dict[str, Any]]) -> None:
        for crd in documents:
            self.apply(crd)
        deadline = time.monotonic() + 30
        pending = {crd["metadata"]["name"] for crd in documents}
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                got = self.api("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
                if conditions.get("Established") == "True":
                    pending.discard(name)
            time.sleep(0.05)
        if pending:
            raise TimeoutError(f"CRDs not established: {sorted(pending)}")
        # Established can precede discovery; wait until each resource can be listed.
        for crd in documents:
            spec = crd["spec"]
            version = spec["versions"][0]["name"]
            path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
            while self.raw("GET", path, self.admin)[0] != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} not served")
                time.sleep(0.05)

    def _register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
        }
        self.apply(node)
        status = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet.port}},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "sandbox kubelet stand-in"}
            ],
        }
        self.api(
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def wait_allowed(self, identity: Identity, path: str, what: str, timeout: float = 15.0) -> None:
        """Until `identity` may GET `path`: a RoleBinding reaches the authorizer through an
        informer, a moment after it is written, and the apiserver offers no event for it."""
        deadline = time.monotonic() + timeout
        while self.raw("GET", path, identity)[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} never took effect in {timeout:.0f}s")
            time.sleep(0.1)

    def grant(self, identity: Identity, namespace: str, rules: list[dict[str, Any]], name: str) -> None:
        """Binds a namespaced Role with `rules` to `identity`'s user."""
        self.ensure_namespace(namespace)
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace},
                "rules": rules,
            }
        )
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": identity.user}],
            }
        )


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:500]}")
        self.status = status
        self.body = body


_CORE_KINDS = {
    "Namespace": "namespaces",
    "Node": "nodes",
    "Pod": "pods",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
}
_CLUSTER_SCOPED = {"Namespace", "Node", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def collection_path(obj: dict[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    if kind in _CORE_KINDS and api_version == "v1":
        base, plural = "/api/v1", _CORE_KINDS[kind]
    else:
        base, plural = f"/apis/{api_version}", kind.lower() + "s"
        if kind.endswith("y"):  # NetworkPolicy -> networkpolicies
            plural = kind.lower()[:-1] + "ies"
        if kind == "CustomResourceDefinition":
            plural = "customresourcedefinitions"
    if kind in _CLUSTER_SCOPED:
        return f"{base}/{plural}"
    namespace = obj["metadata"].get("namespace", "default")
    return f"{base}/namespaces/{namespace}/{plural}"


_live: list[Cluster] = []


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        cluster.stop()
