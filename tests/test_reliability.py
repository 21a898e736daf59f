"""Streams that survive faults: kube-apiserver restarts, a kubelet dropping its log connection
mid-line, listener processes killed under a CI client, and clients that come and go by the
hundred without leaving threads, sockets or memory behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.scenarios import SCENARIOS, Scenario, Step, Task, numbered
from tests.sandbox.simulator import Simulator
from tests.support import PASSWORD, ROOT, USER, Listener, basic, grant_listener
from tests.test_resume import Received, _response_lines, _text_line, assert_exactly_once

NS = LISTENER_NAMESPACE
CLIENT = ROOT / "ci" / "tekton-logs.sh"


@pytest.fixture(scope="module")
def own_listener(cluster: Cluster) -> Iterator[Listener]:
    """A listener of this module's own, so faults here leave the session's listener alone."""
    grant_listener(cluster, NS)
    with Listener(cluster, HEARTBEAT_SECONDS="1") as running:
        yield running


def _follow_plain(listener: Listener, run: str, seen: threading.Event | None = None, lines: int = 0) -> Received:
    """One plain text stream, no resume: the listener itself must ride out the fault. Sets
    `seen` once `lines` log lines arrived."""
    got = Received()
    got.streams = 1
    count = 0
    for raw in _response_lines(listener, f"/logs/{run}?wait=30", 120):
        line = raw.lstrip(b"\r").rstrip(b"\n")
        if line.startswith(b"[stream interrupted]"):
            got.interrupted.append(line.decode())
            continue
        _text_line(got, line)
        count += 1
        if seen is not None and count >= lines:
            seen.set()
    return got


def test_apiserver_killed_and_restarted_mid_run(cluster: Cluster, own_listener: Listener, sim: Simulator) -> None:
    """SIGKILL kube-apiserver while a step writes, keep it down ~2 s while the step keeps writing,
    start it again (same etcd): one stream, every line once, no error, no cut."""
    hold = threading.Event()
    scenario = Scenario(
        "restart",
        tasks=[
            Task(
                "build",
                [
                    Step("compile", numbered("compile", 60), interval=0.05, hold=hold),
                    Step("package", numbered("package", 20), interval=0.02),
                ],
            ),
            Task("test", [Step("unit", numbered("unit", 30), interval=0.02)], run_after=["build"]),
        ],
    )
    run = sim.play(scenario, NS)
    seen = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_follow_plain, own_listener, run.name, seen, 10)
        assert seen.wait(60), "no lines before the restart"
        started = time.monotonic()
        cluster.stop_apiserver()  # lines keep being written to the kubelet meanwhile
        time.sleep(2.0)  # the outage itself: nothing to wait on but time
        cluster.start_apiserver()
        outage = time.monotonic() - started
        hold.set()
        got = future.result(timeout=120)
    run.wait(60)
    print(f"\napiserver outage {outage:.1f}s; stream continued: {sum(map(len, got.lines.values()))} lines")
    assert not got.interrupted, got.interrupted
    assert not [n for n in got.notices if "error" in n or "not allowed" in n or "deleted" in n], got.notices
    assert got.end is not None and "Succeeded" in got.end
    assert_exactly_once(run, got)


def test_kubelet_drops_log_connections_mid_line(cluster: Cluster, own_listener: Listener, sim: Simulator) -> None:
    """The kubelet cuts the follow in the middle of a line, 4 times: each cut is reopened with
    sinceTime and de-duplicated; the cut line arrives once, whole."""
    scenario = Scenario(
        "drops",
        tasks=[Task("build", [Step("compile", numbered("a line that will be cut in half", 100), interval=0.04)])],
    )
    plan = cluster.kubelet.drop_follows(times=4, after_lines=7, container="step-compile")
    try:
        run = sim.play(scenario, NS)
        got = _follow_plain(own_listener, run.name)
        run.wait(60)
    finally:
        cluster.kubelet.clear_faults()
    print(f"\nkubelet cut {plan.fired} follows mid-line")
    assert plan.fired == 4
    assert not got.interrupted and got.end is not None
    assert_exactly_once(run, got)


# -- the CI client ------------------------------------------------------------------------------
def _shells() -> list[str]:
    found = []
    if shutil.which("dash"):
        found.append("dash")
    if shutil.which("busybox"):
        found.append("busybox sh")
    return found or ["sh"]


@pytest.fixture(scope="module")
def cut_port(cluster: Cluster) -> Iterator[tuple[int, list[Listener]]]:
    """A port served by short-deadline listeners; tests may kill one and start the next."""
    grant_listener(cluster, NS)
    first = Listener(cluster, STREAM_DEADLINE_SECONDS="2", HEARTBEAT_SECONDS="1").start()
    started = [first]
    yield first.port, started
    for listener in started:
        listener.stop()


def _client(shell: str, listener_url: str, run: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*shell.split(), str(CLIENT), run],
        env={
            "PATH": os.environ["PATH"],
            "LISTENER_URL": listener_url,
            "LISTENER_CREDS": f"{USER}:{PASSWORD}",
            "TEKTON_LOGS_WAIT": "30",
            "TEKTON_LOGS_MAX_BACKOFF": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _parse_client_output(stdout: bytes) -> Received:
    got = Received()
    for line in stdout.split(b"\n"):
        if line:
            _text_line(got, line)
    return got


@pytest.mark.parametrize("shell", _shells())
def test_sh_client_follows_across_deadline_cuts_and_a_killed_listener(
    cluster: Cluster, cut_port: tuple[int, list[Listener]], sim: Simulator, shell: str
) -> None:
    port, listeners = cut_port
    hold = threading.Event()
    scenario = SCENARIOS["success"](lines=25, interval=0.08)
    scenario.tasks[1].steps[0].hold = hold
    run = sim.play(scenario, NS)
    client = _client(shell, f"http://127.0.0.1:{port}", run.name)
    try:
        # Once unit/install's lines are all written (the step then holds), kill -9 the listener
        # under the client (no last line, maybe half a line) and start another on the port.
        deadline = time.monotonic() + 60
        while len(run.expected_lines("unit", "install")) < 25:
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.05)  # the simulator offers no event for "lines written"
        current = listeners[-1]
        assert current.proc is not None
        current.proc.kill()
        current.proc.wait(10)
        listeners.append(Listener(cluster, port=port, STREAM_DEADLINE_SECONDS="2", HEARTBEAT_SECONDS="1").start())
        hold.set()
        stdout, stderr = client.communicate(timeout=120)
    finally:
        hold.set()
        if client.poll() is None:
            client.kill()
    run.wait(60)
    assert client.returncode == 0, stderr.decode(errors="replace")[-2000:]
    got = _parse_client_output(stdout)
    print(f"\n{shell}: {stderr.decode().count('resuming')} clean cuts, exit {client.returncode}")
    assert got.end is not None and "Succeeded" in got.end
    assert_exactly_once(run, got)
    assert b"resuming" in stderr  # deadline cuts happened and were followed


def test_sh_client_exit_codes_and_credentials_stay_off_the_command_line(
    cluster: Cluster, own_listener: Listener, sim: Simulator
) -> None:
    failed = sim.play(SCENARIOS["failure"](), NS).wait(60)
    client = _client(_shells()[0], own_listener.url, failed.name)
    # While it runs, its command lines (sh and curl) never show the password.
    seen: list[str] = []
    while client.poll() is None:
        seen += _command_lines_of_children(client.pid)
        time.sleep(0.01)  # sampling the process table; nothing to wait on
    stdout, _ = client.communicate(timeout=60)
    assert client.returncode == 1
    # The digest is printed as text, and the run's status line is still the last one.
    lines = stdout.rstrip(b"\n").split(b"\n")
    assert lines[-1].startswith(f"PipelineRun {failed.name} Failed".encode()), lines[-3:]
    assert lines[-2] == b"  SKIPPED task publish: PipelineRun was stopping", lines[-3:]
    assert f"Failure digest: PipelineRun {failed.name} failed".encode() in stdout
    assert b"\n    step build: exit code 2 (Error)" in stdout and b"\n      | build line 4/4\n" in stdout
    assert seen and not [c for c in seen if PASSWORD in c], seen
    missing = _client(_shells()[0], own_listener.url, "no-such-run-x", TEKTON_LOGS_WAIT="1")
    assert missing.wait(60) == 2
    bad = _client(_shells()[0], own_listener.url, "whatever", LISTENER_CREDS="ci-user:wrong")
    assert bad.wait(60) == 2


def _command_lines_of_children(pid: int) -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid or int(entry.name) == pid:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return out


# -- leaks ------------------------------------------------------------------------------------------
def _worker_pid(listener: Listener) -> int:
    """The gunicorn worker (the process that serves streams) under the listener's arbiter."""
    assert listener.proc is not None
    children = Path(f"/proc/{listener.proc.pid}/task/{listener.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _usage(pid: int) -> tuple[int, int, int]:
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, fds, rss


def _hit_and_run(port: int, run: str) -> None:
    """A client that opens the stream, reads until a first log line, then hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = f"GET /logs/{run}?heartbeat=1 HTTP/1.1\r\nHost: x\r\nAuthorization: {basic()}\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while b"] " not in data:
            chunk = sock.recv(65536)
            assert chunk, data.decode(errors="replace").split("\r\n\r\n")[-1]
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_500_clients_leave_no_threads_sockets_or_memory_behind(cluster: Cluster, sim: Simulator) -> None:
    grant_listener(cluster, NS)
    hold = threading.Event()
    scenario = SCENARIOS["success"](lines=3, interval=0.0)
    scenario.tasks[0].steps[0].hold = hold  # lines written, then a silent pipeline
    run = sim.play(scenario, NS)
    wave = 50
    reserved = 2  # RESERVED_THREADS: gunicorn's threads for short requests, beside THREADS
    pool_threads = wave + reserved
    # One user opens every stream here: lift the per-user cap (it has its own test).
    with Listener(
        cluster,
        THREADS=str(wave),
        RESERVED_THREADS=str(reserved),
        HEARTBEAT_SECONDS="15",
        LOGS_MAX_STREAMS_PER_PRINCIPAL=str(wave * 2),
    ) as listener:
        pid = _worker_pid(listener)
        idle = _usage(pid)
        # One request first: a cold credentials cache counts a burst of first logins from one
        # address against the failed-login limit (see docs/security.md).
        _hit_and_run(listener.port, run.name)
        _settle(pid, (idle[0] + pool_threads, idle[1] + 1, 0))  # its stream slot freed
        try:
            with ThreadPoolExecutor(wave) as pool:
                # Warm-up: gunicorn's request pool grows to THREADS and stays; that is not a leak.
                list(pool.map(lambda _: _hit_and_run(listener.port, run.name), range(wave)))
                baseline = _settle(pid, (idle[0] + pool_threads, idle[1] + 1, 0))
                started = time.monotonic()
                for _ in range(500 // wave):
                    list(pool.map(lambda _: _hit_and_run(listener.port, run.name), range(wave)))
                    # The listener frees a wave's stream slots as it notices the hang-ups; a wave
                    # sent before that meets the cap of THREADS streams and waits (429, by design).
                    _settle(pid, (idle[0] + pool_threads, baseline[1], 0))
                storm = time.monotonic() - started
                peak = _usage(pid)
                gone_at = time.monotonic()
                after = _settle(pid, (idle[0] + pool_threads, baseline[1], 0))
                released = time.monotonic() - gone_at
        finally:
            hold.set()
        run.wait(60)
    mib = 1024
    print(
        f"\n500 clients (waves of {wave}) in {storm:.1f}s. gunicorn worker threads/fds/RSS: "
        f"idle {idle[0]}/{idle[1]}/{idle[2] // mib} MiB, after a warm-up wave {baseline[0]}/{baseline[1]}/"
        f"{baseline[2] // mib} MiB, at the last hang-up {peak[0]}/{peak[1]}/{peak[2] // mib} MiB, "
        f"{released:.1f}s later {after[0]}/{after[1]}/{after[2] // mib} MiB"
    )
    # Threads: gunicorn's pool (THREADS + RESERVED_THREADS) plus the worker's own; every follower
    # thread is gone.
    assert after[0] <= idle[0] + pool_threads, (idle, baseline, after)
    assert after[1] <= baseline[1], (baseline, after)  # no socket left: watches, log streams, clients
    assert after[2] <= baseline[2] + 30 * mib, (baseline, after)  # KiB
    assert released < 10


def _settle(pid: int, target: tuple[int, int, int], timeout: float = 15.0) -> tuple[int, int, int]:
    """Usage once threads and fds are down to `target` (RSS not compared), bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    now = _usage(pid)
    while time.monotonic() < deadline and (now[0] > target[0] or now[1] > target[1]):
        time.sleep(0.1)  # sampling /proc: there is no event for "a thread ended"
        now = _usage(pid)
    return now
