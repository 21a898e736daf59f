"""A real node: containerd + runc + kubelet v1.20.2, running real pods in a network namespace.

Pods bound to it (`nodeName: real-node`) run as real containers (busybox), their output goes to
real CRI log files that the kubelet serves to the apiserver's `pods/log`, and their status is the
kubelet's own. hostNetwork pods share the node's namespace; others get their own on the node's
bridge (`POD_CIDR`, reachable from the host). One real node per machine at a time (a lock
file): kubelet 1.20 uses a few fixed host paths (`/var/lib/kubelet/device-plugins`,
`/var/log/pods`, `/run/containerd/s`).

Tear-down leaves nothing behind: processes (by PID and by network namespace), mounts under the
node's directory, the namespace and its veth, the sysctls the kubelet changes (restored), and
host paths that did not exist before. A record in /run lets the next start clean up after a
sandbox that was killed before it could tear down.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import binaries, images
from .netns import MTU, POD_CIDR, POD_GATEWAY, NodeNetwork, stale_networks

NODE_NAME = "real-node"
LOCK_FILE = Path("/run/tpl-sandbox-node.lock")
RECORD_DIR = Path("/run/tpl-sandbox-node")
# What kubelet 1.20 writes whatever its flags say (setupKernelTunables), restored at tear-down.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Fixed host paths: removed at tear-down only if they did not exist before.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd", "/var/lib/cni")
# The pod network's name; libcni caches each attachment's result under /var/lib/cni/results as
# `<network>-<sandbox id>-<interface>`, whatever the config says, and a killed node never deletes them.
CNI_NETWORK = "tpl-pods"
CNI_RESULTS = Path("/var/lib/cni/results")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_LOG_MAX_SIZE = "500Mi"


def unavailable_reason() -> str | None:
    """Why this machine cannot run a kubelet, or None if it can."""
    if os.geteuid() != 0:
        return "not root: a kubelet, containerd and network namespaces need root"
    if not (CGROUP_ROOT / "memory").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        return "no cgroups mounted under /sys/fs/cgroup"
    if not shutil.which("ip") and not shutil.which("apt-get"):
        return "no iproute2 and no apt-get to install it"
    return None


def _read_sysctls() -> dict[str, str]:
    out = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            out[key] = (Path("/proc/sys") / key).read_text().strip()
    return out


def _restore_sysctls(saved: dict[str, str]) -> None:
    for key, value in saved.items():
        with contextlib.suppress(OSError):
            path = Path("/proc/sys") / key
            if path.read_text().strip() != value:
                path.write_text(value)


def _existing_cgroups() -> list[str]:
    return [str(p) for p in CGROUP_ROOT.glob("*/k8s.io")]


def _mounts_under(prefix: str) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _unmount_under(prefix: str) -> None:
    for point in _mounts_under(prefix):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def _kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    """SIGKILL, then wait until each has exited, so that what comes next (a cgroup's rmdir, an
    unmount, the namespace's removal) finds them gone. Through pidfds: a pid reused meanwhile is
    neither signalled nor waited for."""
    fds = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already
            continue
        fds.append(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    try:
        pending, deadline = fds, time.monotonic() + timeout
        while pending and (left := deadline - time.monotonic()) > 0:
            exited, _, _ = select.select(pending, [], [], left)  # a pidfd is readable once its process exits
            pending = [fd for fd in pending if fd not in exited]
    finally:
        for fd in fds:
            os.close(fd)


def _remove_cgroups(keep: list[str]) -> None:
    for top in CGROUP_ROOT.glob("*/k8s.io"):
        if str(top) in keep:
            continue
        # Containers in pod network namespaces of their own are not among the node namespace's
        # pids: after a crash their cgroups are what still finds them.
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                _kill_pids([int(pid) for pid in procs.read_text().split()])
        # Deepest first; a cgroup directory is removed with rmdir once its processes are gone.
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


@dataclass
class _Record:
    """What tear-down needs, also after a crash: kept in /run (a tmpfs) as JSON."""

    pid: int
    workdir: str
    sysctls: dict[str, str]
    absent_paths: list[str]
    cgroups_before: list[str]

    @property
    def path(self) -> Path:
        return RECORD_DIR / f"{self.pid}.json"

    def save(self) -> None:
        RECORD_DIR.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, pid: int) -> _Record | None:
        try:
            return cls(**json.loads((RECORD_DIR / f"{pid}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _clean(record: _Record | None, net: NodeNetwork | None) -> None:
    """Everything a node leaves; idempotent, safe on a half-started node."""
    if net is not None:
        # containerd, its shims, the kubelet and every hostNetwork container live in the namespace.
        for _ in range(3):
            pids = [p for p in net.pids() if p != os.getpid()]
            if not pids:
                break
            _kill_pids(pids)  # waits for them to exit; another round for any started meanwhile
    if record is not None:
        _unmount_under(record.workdir)
        # Host paths that were there before belong to someone else: only ours are searched.
        for path in record.absent_paths:
            _unmount_under(path)
    if net is not None:
        net.delete()
    for cached in CNI_RESULTS.glob(f"{CNI_NETWORK}-*"):
        cached.unlink(missing_ok=True)
    if record is not None:
        _restore_sysctls(record.sysctls)
        _remove_cgroups(record.cgroups_before)
        for path in record.absent_paths:
            if not _mounts_under(path):
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(record.workdir, ignore_errors=True)
        record.path.unlink(missing_ok=True)


def clean_stale() -> None:
    for pid, net in stale_networks():
        _clean(_Record.load(pid), net)
    if RECORD_DIR.is_dir():
        for leftover in RECORD_DIR.glob("*.json"):
            pid = int(leftover.stem) if leftover.stem.isdigit() else -1
            if pid > 0 and not Path(f"/proc/{pid}").exists():
                _clean(_Record.load(pid), None)


class NodeLock:
    """One real node per machine; waits for another sandbox's node to go away.

    `NodeLock.machine()` holds the lock around more than one node's life (a test that compares
    the machine before and after must not see another sandbox's node come up in between); nodes
    started inside it, in this process or in a child given `HELD_ENV`, take no lock of their own."""

    HELD_ENV = "TPL_SANDBOX_NODE_LOCK_HELD"
    _held_here = False

    def __init__(self) -> None:
        self._fd: int | None = None

    @classmethod
    @contextlib.contextmanager
    def machine(cls, timeout: float = 600.0) -> Iterator[None]:
        outer = cls()
        outer.acquire(timeout)
        cls._held_here = True
        try:
            yield
        finally:
            cls._held_here = False
            outer.release()

    def acquire(self, timeout: float = 600.0) -> None:
        if NodeLock._held_here or os.environ.get(self.HELD_ENV) == "1":
            return
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError("another sandbox holds the real node for too long") from None
                time.sleep(0.5)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class NodeCerts:
    ca: str
    serving_cert: str  # the kubelet's HTTPS server (SAN: node IP)
    serving_key: str
    client_cert: str  # the kubelet's identity towards the apiserver: system:node:<name>
    client_key: str


@dataclass
class RealNode:
    workdir: Path
    net: NodeNetwork
    server: str
    certs: NodeCerts
    log_max_size: str = DEFAULT_LOG_MAX_SIZE
    kubelet_bin: str = ""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _record: _Record | None = None
    _lock: NodeLock | None = None

    name = NODE_NAME

    # -- paths -----------------------------------------------------------------------------------
    @property
    def socket(self) -> str:
        return str(self.workdir / "containerd" / "containerd.sock")

    @property
    def runc_root(self) -> str:
        return str(self.workdir / "containerd" / "runc")

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    # -- bring-up --------------------------------------------------------------------------------
    @classmethod
    def prepare(cls) -> tuple[NodeLock, NodeNetwork]:
        """Before the apiserver starts (it must listen on the node network's host address)."""
        lock = NodeLock()
        lock.acquire()
        try:
            clean_stale()
            binaries.node_parts()
            return lock, NodeNetwork.create()
        except BaseException:
            lock.release()
            raise

    def start(self, lock: NodeLock, ready: Callable[[], bool], timeout: float = 90.0) -> RealNode:
        self._lock = lock
        self.kubelet_bin = binaries.node_parts()["kubelet"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._record = _Record(
            pid=os.getpid(),
            workdir=str(self.workdir),
            sysctls=_read_sysctls(),
            absent_paths=[p for p in HOST_PATHS if not os.path.lexists(p)],
            cgroups_before=_existing_cgroups(),
        )
        self._record.save()
        try:
            node_images = images.node_images()
            self._start_containerd()
            for image in node_images:
                self._ctr("images", "import", "--no-unpack", str(image.archive))
            self.start_kubelet()
            deadline = time.monotonic() + timeout
            while not ready():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {self.name} not Ready after {timeout:.0f}s; see {self.workdir}/*.log")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.log_path(name), "ab")
        try:
            self._procs[name] = subprocess.Popen(
                ["nsenter", f"--net={self.net.path}", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def _stop_proc(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def _ctr(self, *args: str) -> str:
        out = subprocess.run(
            ["ctr", "--address", self.socket, "--namespace", "k8s.io", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    # -- containerd ------------------------------------------------------------------------------
    def _containerd_config(self) -> Path:
        base = self.workdir / "containerd"
        cni_conf = base / "cni"
        cni_conf.mkdir(parents=True, exist_ok=True)
        # Step pods run with hostNetwork. Others (the listener's own pods, as Knative runs them)
        # get a network namespace and an address on a bridge inside the node's namespace;
        # containerd adds their loopback itself. IPAM state stays under the node's directory.
        bridge = {
            "type": "bridge",
            "bridge": "tplbr0",
            "isGateway": True,
            "mtu": MTU,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": str(base / "ipam"),
            },
        }
        (cni_conf / "10-pods.conflist").write_text(
            json.dumps({"cniVersion": "0.4.0", "name": CNI_NETWORK, "plugins": [bridge]}, indent=1)
        )
        config = base / "config.toml"
        config.write_text(
            f"""version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE}"
  # Without it, sandbox creation fails here (oom_score_adj below the caller's is refused).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        Root = "{self.runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"""
        )
        return config

    def _start_containerd(self, timeout: float = 30.0) -> None:
        config = self._containerd_config()
        self._spawn("containerd", ["containerd", "--config", str(config), "--log-level", "warn"])
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if os.path.exists(self.socket):
                probe = subprocess.run(
                    ["ctr", "--address", self.socket, "version"], capture_output=True, text=True, timeout=10
                )
                if probe.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("containerd did not answer on its socket")
            time.sleep(0.1)

    def restart_containerd(self, down_seconds: float = 0.0) -> None:
        """Stops containerd (its shims and containers keep running, as on a real node) and starts it again."""
        self._stop_proc("containerd")
        if down_seconds:
            time.sleep(down_seconds)
        self._start_containerd()

    # -- kubelet ---------------------------------------------------------------------------------
    def _kubelet_files(self) -> tuple[Path, Path]:
        base = self.workdir / "kubelet"
        base.mkdir(parents=True, exist_ok=True)
        kubeconfig = base / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "sandbox", "cluster": {"server": self.server, "certificate-authority": self.certs.ca}}
                    ],
                    "users": [
                        {
                            "name": self.name,
                            "user": {"client-certificate": self.certs.client_cert, "client-key": self.certs.client_key},
                        }
                    ],
                    "contexts": [{"name": "node", "context": {"cluster": "sandbox", "user": self.name}}],
                    "current-context": "node",
                }
            )
        )
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.net.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": self.certs.serving_cert,
            "tlsPrivateKeyFile": self.certs.serving_key,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": self.certs.ca},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "containerLogMaxSize": self.log_max_size,
            "containerLogMaxFiles": 2,
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "resolvConf": "",
            "clusterDNS": [],
            "registerNode": True,
            "rotateCertificates": False,
            "serializeImagePulls": False,
            # The node's images are imported, never pulled: image GC must never remove them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "maxPods": 110,
        }
        config_path = base / "config.json"
        config_path.write_text(json.dumps(config, indent=1))
        return kubeconfig, config_path

    def start_kubelet(self) -> None:
        kubeconfig, config = self._kubelet_files()
        self._spawn(
            "kubelet",
            [
                self.kubelet_bin,
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                "--container-runtime=remote",
                f"--container-runtime-endpoint=unix://{self.socket}",
                f"--root-dir={self.workdir / 'kubelet' / 'root'}",
                f"--cert-dir={self.workdir / 'kubelet' / 'pki'}",
                f"--node-ip={self.net.node_ip}",
                f"--hostname-override={self.name}",
                "--logtostderr=true",
                "--v=1",
            ],
        )

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Until the kubelet's HTTPS port accepts connections (the apiserver's way to `pods/log`)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                with socket.create_connection((self.net.node_ip, 10250), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"kubelet not serving after {timeout:.0f}s") from None
                time.sleep(0.1)

    def stop_kubelet(self, sig: int = signal.SIGTERM) -> None:
        """Stops the kubelet only: containers keep running, `pods/log` cannot be served meanwhile."""
        self._stop_proc("kubelet", sig)

    def restart_kubelet(self, down_seconds: float = 0.0, log_max_size: str | None = None) -> None:
        self.stop_kubelet()
        if log_max_size is not None:
            self.log_max_size = log_max_size
        if down_seconds:
            time.sleep(down_seconds)
        self.start_kubelet()
        self.wait_serving()

    def running(self) -> bool:
        return all(p.poll() is None for p in self._procs.values()) and bool(self._procs)

    # -- tear-down -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_proc("kubelet", timeout=5)
        # Containers first (they are children of shims, which containerd does not stop).
        if os.path.isdir(self.runc_root):
            for ns_root in Path(self.runc_root).iterdir():
                listed = subprocess.run(
                    ["runc", "--root", str(ns_root), "list", "-q"], capture_output=True, text=True
                ).stdout.split()
                for cid in listed:
                    subprocess.run(["runc", "--root", str(ns_root), "delete", "--force", cid], capture_output=True)
        self._stop_proc("containerd", timeout=5)
        _clean(self._record, self.net)
        self._record = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
