"""The real node comes up, runs a pod, and goes away leaving the machine as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import need_real_node
from tests.sandbox import node as real_node
from tests.sandbox.cluster import Cluster
from tests.sandbox.netns import NETNS_DIR, PREFIX
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator

pytestmark = pytest.mark.timeout(300)


# Where a node mounts: its own directory (under the sandbox's, tpl-sandbox-*), the kubelet's and
# containerd's fixed paths, network namespaces. Other tools' mounts (podman's) are not compared.
NODE_MOUNT_MARKS = ("tpl-sandbox-", "/var/lib/kubelet", "/run/containerd", "/run/netns", "/var/log/pods")


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as info:
        points = {line.split()[4] for line in info}
    return {p for p in points if any(mark in p for mark in NODE_MOUNT_MARKS)}


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("tpl")}


def _netns() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def _node_processes() -> set[int]:
    """The node's own processes and those its containers run, whoever started them, that have
    not exited (a zombie is gone but for its pid, until its parent reaps it). A busybox outside
    any container (another test's `busybox sh` client, under `pytest -n`) is not one."""
    daemons = {"containerd", "kubelet", "containerd-shim", "containerd-shim-runc-v2"}
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                state, parent = (proc / "stat").read_text().rpartition(")")[2].split()[:2]
                if state == "Z":
                    continue
                names[int(proc.name)] = (proc / "comm").read_text().strip()
                parents[int(proc.name)] = int(parent)
            except (OSError, ValueError, IndexError):
                continue

    def in_a_container(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            pid = parents.get(pid, 0)
            if names.get(pid, "").startswith("containerd-shim"):
                return True
        return False

    workloads = {"pause", "busybox"}
    return {pid for pid, name in names.items() if name in daemons or (name in workloads and in_a_container(pid))}


def _snapshot() -> dict[str, object]:
    return {
        "mounts": _mounts(),
        "links": _links(),
        "netns": _netns(),
        "processes": _node_processes(),
        "sysctls": real_node._read_sysctls(),
        "host_paths": {p for p in real_node.HOST_PATHS if os.path.lexists(p)},
        "cgroups": set(real_node._existing_cgroups()),
    }


@pytest.fixture
def machine() -> Iterator[None]:
    """The machine to this test alone: another sandbox's node coming up between the snapshots
    would be taken for something this one left behind."""
    need_real_node()
    with real_node.NodeLock.machine():
        yield


# A sysctl kubelet 1.20 sets (to 10) whatever its flags say; set to another value before the
# bring-up, so that restoring it is seen, not assumed.
PROBE_SYSCTL, KUBELET_VALUE = "kernel/panic", "10"


@pytest.fixture
def probe_sysctl(machine: None) -> Iterator[str]:
    path = Path("/proc/sys") / PROBE_SYSCTL
    original = path.read_text().strip()
    path.write_text("0" if original == KUBELET_VALUE else original)
    try:
        yield path.read_text().strip()
    finally:
        path.write_text(original)


@pytest.mark.usefixtures("machine")
def test_bring_up_run_a_pod_and_tear_down_leave_nothing(probe_sysctl: str) -> None:
    before = _snapshot()
    with Cluster.start(real_node=True) as cluster:
        assert cluster.node is not None
        during = _snapshot()
        # The node is really there: its own namespace, veth, processes and mounts, and the
        # kubelet's sysctl written.
        assert any(name.startswith(PREFIX) for name in during["netns"] - before["netns"])  # type: ignore[operator]
        assert during["processes"] - before["processes"]  # type: ignore[operator]
        assert during["mounts"] - before["mounts"]  # type: ignore[operator]
        assert probe_sysctl != KUBELET_VALUE and during["sysctls"][PROBE_SYSCTL] == KUBELET_VALUE  # type: ignore[index]
        sim = Simulator(cluster, real_pods=True)
        run = sim.play(SCENARIOS["success"](lines=2, interval=0.0), "tekton-pipelines").wait(120)
        sim.stop()
        assert run.objects()[f"PipelineRun/{run.name}"]["status"]["conditions"][0]["reason"] == "Succeeded"
        assert cluster.node.log_path("kubelet").exists()
    after = _snapshot()
    for key, value in before.items():
        assert after[key] == value, (key, value, after[key])


@pytest.mark.usefixtures("machine")
def test_a_killed_sandbox_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    """A sandbox killed before it could tear down leaves a namespace, processes and mounts; the
    next bring-up removes them and restores the sysctls the kubelet changed."""
    import subprocess
    import sys
    import textwrap

    before = _snapshot()
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import os, pathlib, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from tests.sandbox.cluster import Cluster
        cluster = Cluster.start(real_node=True)
        pathlib.Path({str(ready)!r}).write_text("up")
        time.sleep(600)
        """
    )
    env = {**os.environ, real_node.NodeLock.HELD_ENV: "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=env)
    try:
        deadline = 180
        import time

        start = time.monotonic()
        while not ready.exists():
            assert proc.poll() is None, "the sandbox did not come up"
            assert time.monotonic() - start < deadline
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    left = _snapshot()
    assert left["netns"] != before["netns"], "the killed sandbox left nothing to clean"
    record = real_node._Record.load(proc.pid)
    assert record is not None
    real_node.clean_stale()
    # etcd and kube-apiserver of the killed sandbox are not the node's: this test ends them.
    sandbox_dir = str(Path(record.workdir).parent)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if sandbox_dir.encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), 9)
            except OSError:
                continue
    after = _snapshot()
    for key in ("mounts", "links", "netns", "processes", "sysctls", "host_paths", "cgroups"):
        assert after[key] == before[key], (key, before[key], after[key])
