"""/logs and /status on the real node: real pods, real CRI log files, the kubelet's own status.

Every behaviour here is produced by kubelet v1.20.2 + containerd + runc (tests/sandbox/node.py),
not by the stand-in: live follow, a failed step, a task that never starts, cancel, timeout,
a pod deleted mid-stream, kubelet / containerd / apiserver restarts mid-stream. Faults a real
node cannot make on demand (mid-line cuts, slow chunks) stay in test_reliability.py.
"""

from __future__ import annotations

import gzip
import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS, Scenario, Step, Task, numbered
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import Listener, curl, strip_heartbeats, task_lines, wait_for

NS = "tekton-pipelines"
pytestmark = pytest.mark.timeout(240)


class Follower:
    """A /logs follower started before the run exists; lines are kept as they arrive."""

    def __init__(self, listener: Listener, run_name: str, query: str = "") -> None:
        self.lines: list[bytes] = []
        self.arrived = threading.Condition()
        self._pool = ThreadPoolExecutor(1)
        self.future: Future[bytes] = self._pool.submit(self._read, listener, f"/logs/{run_name}?wait=60{query}")

    def _read(self, listener: Listener, path: str) -> bytes:
        for line in listener.stream(path, timeout=180):
            with self.arrived:
                self.lines.append(line)
                self.arrived.notify_all()
        return b"".join(self.lines)

    def wait_for(self, predicate: Callable[[list[bytes]], bool], timeout: float = 60.0) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: predicate(self.lines) or self.future.done(), timeout):
                raise TimeoutError(f"condition not met; got {self.lines[-5:]!r}")
        if not predicate(self.lines):
            raise AssertionError(f"stream ended first: {b''.join(self.lines)[-2000:]!r}")

    def body(self, timeout: float = 180.0) -> bytes:
        try:
            return self.future.result(timeout)
        finally:
            self._pool.shutdown()


class SlowCurlFollower(Follower):
    """`curl -N --limit-rate`: a CI runner that takes the log in slower than the step writes it."""

    RATE = "50k"

    def _read(self, listener: Listener, path: str) -> bytes:
        body = curl(listener, path, timeout=180, options=("--limit-rate", self.RATE))
        self.lines = body.splitlines(keepends=True)
        return body


class StallingFollower(Follower):
    """Reads as fast as it can, except while `hold` (set once the run exists) keeps it waiting:
    a runner that stalls in the middle of a job."""

    hold: Callable[[], None] = staticmethod(lambda: None)

    def _read(self, listener: Listener, path: str) -> bytes:
        with listener.opened(path, timeout=180) as resp:
            while line := resp.readline():
                self.hold()
                with self.arrived:
                    self.lines.append(line)
        return b"".join(self.lines)


def count_prefix(prefix: bytes) -> Callable[[list[bytes]], int]:
    return lambda lines: sum(1 for line in lines if line.lstrip(b"\r").startswith(prefix))


def final_line(body: bytes) -> bytes:
    return strip_heartbeats(body).rstrip(b"\n").split(b"\n")[-1]


def assert_every_line_once(run: PlayedRun, body: bytes) -> None:
    got = task_lines(body)
    expected = run.expected()
    assert expected, "the scenario wrote nothing"
    for key, lines in expected.items():
        assert got.get(key, []) == lines, (key, got.get(key, [])[:5], lines[:5])
    assert set(got) <= set(expected), set(got) - set(expected)


def slow_pipeline(lines: int = 40, interval: float = 0.1) -> Scenario:
    """Two tasks in sequence, each one paced step: long enough to disturb mid-stream."""
    return Scenario(
        kind="slow",
        tasks=[
            Task("build", [Step("compile", numbered("compile", lines), interval=interval)]),
            Task("test", [Step("unit", numbered("unit", lines // 2), interval=interval)], run_after=["build"]),
        ],
        max_duration=180,
    )


@pytest.fixture
def played(real_listener: Listener, real_sim: Simulator) -> Iterator[Callable[..., tuple[PlayedRun, Follower]]]:
    runs: list[PlayedRun] = []

    def play(scenario: Scenario, query: str = "", reader: type[Follower] = Follower) -> tuple[PlayedRun, Follower]:
        name = f"{scenario.kind}-{len(runs)}-{int(time.time() * 1000) % 100000}"
        follower = reader(real_listener, name, query)
        run = real_sim.play(scenario, NS, name)
        runs.append(run)
        return run, follower

    yield play
    for run in runs:
        run._abort.set()


# -- the node itself ---------------------------------------------------------------------------------
def test_pods_run_on_the_real_node_with_kubelet_status(node_cluster: Cluster, real_sim: Simulator) -> None:
    run = real_sim.play(SCENARIOS["success"](lines=3, interval=0.0), NS).wait(120)
    pods = [p for task, _ in run.expected() for p in run.pods(task)]
    assert pods
    pod = node_cluster.api("GET", f"/api/v1/namespaces/{NS}/pods/{pods[0]}")
    assert pod["spec"]["nodeName"] == "real-node"
    assert pod["status"]["phase"] == "Succeeded"
    statuses = pod["status"]["containerStatuses"]
    # Real container IDs and images from containerd, exit codes from runc.
    assert all(s["containerID"].startswith("containerd://") for s in statuses)
    assert all(s["state"]["terminated"]["exitCode"] == 0 for s in statuses)
    assert [s["name"] for s in statuses] == [c["name"] for c in pod["spec"]["containers"]]
    # Shaped as Tekton's pkg/pod makes it: owned by its TaskRun, labelled with it, its init
    # containers, one `step-<name>` container per step.
    taskrun = pod["metadata"]["labels"]["tekton.dev/taskRun"]
    assert [(o["kind"], o["name"], o.get("controller")) for o in pod["metadata"]["ownerReferences"]] == [
        ("TaskRun", taskrun, True)
    ]
    assert pod["metadata"]["labels"]["tekton.dev/pipelineRun"] == run.name
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["prepare", "place-scripts"]
    assert all(c["name"].startswith("step-") for c in pod["spec"]["containers"])


def test_kubectl_reads_the_cri_log_with_its_own_timestamps(node_cluster: Cluster, real_sim: Simulator) -> None:
    run = real_sim.play(SCENARIOS["success"](lines=3, interval=0.0), NS).wait(120)
    task = next(iter(run.expected()))[0]
    pod = run.pods(task)[0]
    out = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(node_cluster.kubeconfig),
            "-n",
            NS,
            "logs",
            "--timestamps",
            pod,
            "-c",
            f"step-{next(iter(run.expected()))[1]}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    first = out.split(b"\n")[0]
    stamp, _, line = first.partition(b" ")
    # CRI files carry RFC 3339 stamps with nanoseconds, written by containerd.
    assert len(stamp.split(b".")[-1]) >= 9 + 1, stamp
    assert line == run.expected()[next(iter(run.expected()))][0]


# -- log behaviour on real pods ------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["success", "failure", "retries", "when-skipped", "finally"])
def test_live_follow_on_real_pods(played: Callable[..., tuple[PlayedRun, Follower]], scenario: str) -> None:
    run, follower = played(SCENARIOS[scenario]())
    run.wait(180)
    body = follower.body()
    assert_every_line_once(run, body)
    status = run.objects()[f"PipelineRun/{run.name}"]["status"]["conditions"][0]
    assert final_line(body).startswith(f"PipelineRun {run.name} {status['reason']}".encode())


def test_lines_arrive_live_not_at_the_end(played: Callable[..., tuple[PlayedRun, Follower]]) -> None:
    run, follower = played(slow_pipeline(lines=30, interval=0.1))
    follower.wait_for(lambda lines: count_prefix(b"[build : compile]")(lines) >= 3, timeout=90)
    # The step is still writing: the pod has not finished while its first lines are read.
    assert not run.done.is_set()
    run.wait(180)
    assert_every_line_once(run, follower.body())


def test_failed_step_and_the_steps_it_skips(played: Callable[..., tuple[PlayedRun, Follower]]) -> None:
    scenario = Scenario(
        kind="stepfail",
        tasks=[
            Task(
                "build",
                [
                    Step("compile", numbered("compile", 3)),
                    Step("lint", numbered("lint", 2), exit_code=3),
                    Step("package", numbered("package", 2)),
                    Step("publish", numbered("publish", 2)),
                ],
            )
        ],
    )
    run, follower = played(scenario)
    run.wait(120)
    body = follower.body()
    got = task_lines(body)
    assert got[("build", "compile")] == numbered("compile", 3)
    assert got[("build", "lint")] == numbered("lint", 2)
    # Steps after the failure never ran: Tekton's entrypoint skipped them.
    assert ("build", "package") not in got and ("build", "publish") not in got
    taskrun = next(v for k, v in run.objects().items() if k.startswith("TaskRun/"))
    steps = {s["name"]: s for s in taskrun["status"]["steps"]}
    assert steps["lint"]["terminated"]["exitCode"] == 3
    assert steps["package"]["terminationReason"] == "Skipped"
    assert b"Failed" in final_line(body)
    # The failure digest just before it: the failed step, its exit code and last lines, as the real
    # kubelet's log gave them; the skipped steps are no failures of their own.
    lines = strip_heartbeats(body).rstrip(b"\n").split(b"\n")
    digest = lines[next(i for i, line in enumerate(lines) if line.startswith(b"Failure digest: ")) : -1]
    assert b"    step lint: exit code 3" in b"\n".join(digest) and b"step package" not in b"\n".join(digest)
    assert digest[-3:] == [b"      last 2 lines:", b"      | lint line 1/2", b"      | lint line 2/2"], digest


def test_task_that_never_starts_says_why(played: Callable[..., tuple[PlayedRun, Follower]]) -> None:
    scenario = Scenario(
        kind="neverstarts",
        tasks=[Task("build", [Step("compile", numbered("compile", 2), image_pull_error=True)])],
    )
    run, follower = played(scenario)
    run.wait(120)
    body = strip_heartbeats(follower.body())
    # One line under the step's own prefix says why it never ran, in the kubelet's words.
    said = task_lines(body)[("build", "compile")]
    assert len(said) == 1 and said[0].startswith(b"container cannot start: ErrImageNeverPull: "), said
    assert b"Failed" in final_line(body)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancel_and_timeout_while_streaming(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]], how: str
) -> None:
    scenario = Scenario(
        kind=f"stop{how}",
        tasks=[Task("build", [Step("compile", numbered("compile", 400), interval=0.05)])],
        max_duration=120,
    )
    run, follower = played(scenario)
    follower.wait_for(lambda lines: count_prefix(b"[build : compile]")(lines) >= 5, timeout=90)
    if how == "cancel":
        run.cancel()
    else:
        run.expire()
    run.wait(120)
    body = follower.body()
    got = task_lines(body).get(("build", "compile"), [])
    # Everything streamed is a prefix of what the step printed, once, in order.
    assert got and got == numbered("compile", 400)[: len(got)]
    reason = b"Cancelled" if how == "cancel" else b"PipelineRunTimeout"
    assert reason in final_line(body)
    # As Tekton does, the stopped TaskRun's pod is deleted (gone, or going with its grace period).
    (pod,) = run.pods("build")
    status, found = node_cluster.raw("GET", f"/api/v1/namespaces/{NS}/pods/{pod}", node_cluster.admin)[:2]
    assert status == 404 or (status == 200 and json.loads(found)["metadata"].get("deletionTimestamp")), status


def test_pod_deleted_mid_stream_ends_with_the_run_and_kubelet_words_are_not_output(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]]
) -> None:
    scenario = Scenario(
        kind="podgone",
        tasks=[Task("build", [Step("compile", numbered("compile", 5), forever=True)])],
        max_duration=120,
    )
    run, follower = played(scenario)
    follower.wait_for(lambda lines: count_prefix(b"[build : compile]")(lines) >= 5, timeout=90)
    pod = run.pods("build")[0]
    node_cluster.api("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}", ok=(200, 202))
    # The controller notices the lost pod as Tekton does: the run ends; the stream with it.
    run.cancel()
    run.wait(120)
    body = follower.body()
    got = task_lines(body).get(("build", "compile"), [])
    assert got == numbered("compile", 5)
    # Its container ended on the deletion's SIGTERM after all its lines were read: the stream
    # goes on to the run's end and says it.
    assert b"Cancelled" in final_line(body)
    # A kubelet may append its own error (`rpc error: code = NotFound ...`, `unable to retrieve
    # container logs ...`) to a deleted container's log: not the step's output, never shown as such.
    shown = strip_heartbeats(body).split(b"\n")
    assert not any(b"rpc error" in line or b"unable to retrieve container logs" in line for line in shown)


@pytest.mark.parametrize("component", ["kubelet", "containerd", "apiserver"])
def test_restart_mid_stream_loses_and_repeats_nothing(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]], component: str
) -> None:
    assert node_cluster.node is not None
    run, follower = played(slow_pipeline(lines=120, interval=0.05))
    follower.wait_for(lambda lines: count_prefix(b"[build : compile]")(lines) >= 10, timeout=90)
    if component == "kubelet":
        node_cluster.node.restart_kubelet(down_seconds=1.0)
    elif component == "containerd":
        node_cluster.node.restart_containerd(down_seconds=1.0)
    else:
        node_cluster.restart_apiserver(down_seconds=1.0)
    # The stream went on across the restart: it was not over when the component came back.
    assert not follower.future.done()
    run.wait(180)
    body = follower.body()
    assert_every_line_once(run, body)
    assert b"Succeeded" in final_line(body)


def _kubectl_follow(cluster: Cluster, pod: str, container: str, out: list[bytes], timeout: float = 120.0) -> None:
    """`kubectl logs -f` on the same container, retried until the container has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "-n", NS, "logs", "-f", pod, "-c", container],
            capture_output=True,
            timeout=timeout,
        )
        if proc.returncode == 0:
            out.extend(proc.stdout.splitlines())
            return
        # "not available": the container has no ID in the pod's status yet (seen just after the
        # kubelet restarts, as the rotation tests make it do).
        if not any(s in proc.stderr for s in (b"waiting to start", b"not found", b"is not available")):
            raise AssertionError(proc.stderr)
        time.sleep(0.1)


def _follow_with_kubectl(
    cluster: Cluster, run: PlayedRun, task: str, container: str
) -> tuple[threading.Thread, list[bytes], list[BaseException]]:
    got: list[bytes] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            while not run.pods(task):
                time.sleep(0.05)
            _kubectl_follow(cluster, run.pods(task)[0], container, got)
        except BaseException as e:  # handed to the test: a thread's exception would only be a warning
            failed.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, got, failed


def _played_beside_kubectl(
    cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]], scenario: Scenario, container: str
) -> tuple[PlayedRun, bytes, list[bytes]]:
    """Plays a one-task scenario followed by /logs and by `kubectl logs -f` on the same container."""
    run, follower = played(scenario)
    kubectl, kubectl_lines, failed = _follow_with_kubectl(cluster, run, scenario.tasks[0].name, container)
    run.wait(180)
    body = follower.body()
    kubectl.join(60)
    # The peer must have read: with its follow failed, "at least what kubectl got" would hold of nothing.
    assert not kubectl.is_alive() and not failed and kubectl_lines, (kubectl.is_alive(), failed)
    return run, body, kubectl_lines


def test_container_restart_delivers_both_instances(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]]
) -> None:
    """The kubelet restarts a crashed container (restartPolicy OnFailure): `kubectl logs -f`
    ends with the first instance; /logs goes on with the new one, every line once."""
    first, second = numbered("first", 5), numbered("second", 5)
    scenario = Scenario(
        kind="restart",
        tasks=[Task("build", [Step("flaky", first, interval=0.05, restart_lines=second)])],
        max_duration=120,
    )
    _, body, kubectl_lines = _played_beside_kubectl(node_cluster, played, scenario, "step-flaky")
    assert task_lines(body)[("build", "flaky")] == first + second
    assert b"Succeeded" in final_line(body)
    # kubectl's follow is of one container instance only.
    assert kubectl_lines and set(kubectl_lines) <= set(first + second)


ROTATED = b"the kubelet rotated this step's log file"


def _rotating_step(count: int, pad_bytes: int = 80) -> tuple[list[bytes], Scenario]:
    """A step writing `count` numbered lines of `pad_bytes` + 20 bytes, about 1,000 lines/s."""
    pad = "x" * pad_bytes
    expected = [b"rotate line %06d %s" % (i, pad.encode()) for i in range(1, count + 1)]
    script = (
        f"i=1; while [ $i -le {count} ]; do printf 'rotate line %06d {pad}\\n' $i; "
        "if [ $((i % 250)) -eq 0 ]; then sleep 0.25; fi; i=$((i+1)); done"
    )
    step = Step("spam", expected, real_script=script)
    return expected, Scenario(kind="rotate", tasks=[Task("build", [step])], max_duration=180)


def _rotated_files(pod: str) -> set[str]:
    """The step's rotated log files (compressed or not) on the node now."""
    found = Path("/var/log/pods").glob(f"{NS}_{pod}_*/step-spam/*.log.*")
    return {f.name.removesuffix(".gz") for f in found}


def _rotated_while_read(run: PlayedRun) -> None:
    assert _rotated_files(run.pods("build")[0]), "the kubelet did not rotate"


def _files_on_node(pod: str) -> list[list[int]]:
    """The numbers of the step's lines in each of its log files still on the node, oldest file
    first (rotated ones are named after the time they were rotated; some may be compressed)."""
    (folder,) = Path("/var/log/pods").glob(f"{NS}_{pod}_*/step-spam")
    files = sorted(folder.glob("*.log.*"), key=lambda f: f.name.removesuffix(".gz")) + sorted(folder.glob("*.log"))
    numbered_lines = []
    for file in files:
        if file.name.endswith(".tmp"):  # being compressed: its content is in the file beside it
            continue
        raw = gzip.decompress(file.read_bytes()) if file.name.endswith(".gz") else file.read_bytes()
        rows = [line.split(b"rotate line ", 1)[1] for line in raw.splitlines() if b"rotate line " in line]
        numbered_lines.append([int(row.split()[0]) for row in rows])
    return numbered_lines


def _dropped_by_the_kubelet(files: list[list[int]], first: int, after: int) -> bool:
    """Lines `first`..`after - 1` are the end of one log file and `after` begins the next. kubelet
    1.20's follow, at the end of a file when the kubelet renames it away, opens the new file at
    once: what containerd still wrote to the old one before it reopened is never sent, and no API
    serves a rotated file. The listener cannot see those lines go missing."""
    missing = list(range(first, after))
    return any(older[-len(missing) :] == missing and newer[:1] == [after] for older, newer in itertools.pairwise(files))


def _gaps_said_where_they_are(
    got: list[bytes], expected: list[bytes], files: list[list[int]] | None = None
) -> list[bytes]:
    """The step's lines (notices left out): in order, none repeated but one the kubelet sent again
    stamped like the line before it, and wherever lines are missing, in the middle or at the end,
    the stream says so right there; but for the end of a file the kubelet's own follow never sent
    (`_dropped_by_the_kubelet`, checked against the node's `files`)."""
    lines = [line for line in got if not line.startswith(ROTATED)]
    assert set(lines) <= set(expected)
    numbers = [int(line.split()[2]) for line in lines]
    # The kubelet sends lines again when it reopens a file: those stamped before the last one
    # delivered are dropped. A line sent again with the very stamp of the line before it passes:
    # a step writing two lines at once stamps them alike, and they are both its output.
    backwards = [(a, b) for a, b in itertools.pairwise(numbers) if b < a]
    assert not backwards, f"lines repeated or out of order: {backwards[:5]}"
    previous, said = 0, False
    for line in [*got, b"rotate line %06d" % (len(expected) + 1)]:
        if line.startswith(ROTATED):
            said = True
            continue
        number = int(line.split()[2])
        if number == previous:
            continue
        unsaid = number != previous + 1 and not said
        if unsaid and files is not None and _dropped_by_the_kubelet(files, previous + 1, number):
            print(f"lines {previous + 1}..{number - 1}: the end of a rotated file, never sent by the kubelet")
        else:
            assert not unsaid, f"lines {previous + 1}..{number - 1} missing and not said"
        previous, said = number, False
    return lines


def test_log_rotation_by_the_kubelet(node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]]) -> None:
    """With containerLogMaxSize 1Mi the kubelet rotates a busy step's log file (it checks every
    10 s) while it is followed. kubelet 1.20's follow stays on the rotated file once it lags
    behind: `kubectl logs -f` then loses what goes to the new file (seen here: the last 750 of
    25,000 lines; on a loaded CI machine a whole file of 10,000). /logs reads the current file
    once more after the follow, delivers at least what kubectl does, in order, never twice, and
    says where lines only a rotated file held are missing."""
    assert node_cluster.node is not None
    expected, scenario = _rotating_step(25000)
    node_cluster.node.restart_kubelet(log_max_size="1Mi")
    try:
        run, body, kubectl_lines = _played_beside_kubectl(node_cluster, played, scenario, "step-spam")
        _rotated_while_read(run)
        files = _files_on_node(run.pods("build")[0])
    finally:
        node_cluster.node.restart_kubelet(log_max_size="500Mi")
    lines = _gaps_said_where_they_are(task_lines(body)[("build", "spam")], expected, files)
    # kubectl may read lines twice across a rotation (seen: 25,500 lines for 25,000): count distinct ones
    assert len(lines) >= len(set(kubectl_lines)), (len(lines), len(kubectl_lines), len(set(kubectl_lines)))


def test_log_rotation_with_a_client_slower_than_the_step(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]]
) -> None:
    """A CI runner taking the log in at 50 kB/s while the step writes ~115 kB/s holds the
    kubelet's follow back by tens of seconds, across several rotations: at an old file's end the
    kubelet goes on with the newest file and never reads the ones between. The gaps are said where
    they are (the listener looks where the current file begins while its follow lags)."""
    assert node_cluster.node is not None
    expected, scenario = _rotating_step(40000)
    node_cluster.node.restart_kubelet(log_max_size="1Mi")
    try:
        run, follower = played(scenario, reader=SlowCurlFollower)
        run.wait(180)
        body = follower.body()
        _rotated_while_read(run)
        files = _files_on_node(run.pods("build")[0])
    finally:
        node_cluster.node.restart_kubelet(log_max_size="500Mi")
    assert b"Succeeded" in final_line(body)
    _gaps_said_where_they_are(task_lines(body)[("build", "spam")], expected, files)


def test_log_rotation_while_the_client_stalls(
    node_cluster: Cluster, played: Callable[..., tuple[PlayedRun, Follower]]
) -> None:
    """A runner that stops reading for as long as the kubelet rotates the step's log three times
    holds the kubelet's follow back in one file; at its end kubelet 1.20 goes on with the newest
    file and never reads the ones between. The listener looks where the current file begins while
    its follow lags, and says the gap where the follow stepped over it."""
    assert node_cluster.node is not None
    # ~2 MB/s for 50 s: the listener's own buffers (64 batches) are full a few seconds into the stall
    expected, scenario = _rotating_step(50000, pad_bytes=2000)
    node_cluster.node.restart_kubelet(log_max_size="1Mi")
    try:
        run, follower = played(scenario, reader=StallingFollower)
        seen: set[str] = set()

        def rotations() -> int:
            seen.update(_rotated_files(run.pods("build")[0]) if run.pods("build") else ())
            return len(seen)

        looked = [0.0]

        def hold() -> None:
            if time.monotonic() - looked[0] < 0.2:  # the node's files, looked at 5 times a second
                return
            looked[0] = time.monotonic()
            if rotations():
                follower.hold = StallingFollower.hold
                stalled_at = len(seen)
                wait_for(lambda: rotations() >= stalled_at + 3, "three rotations while the client stalls", 90, 0.2)

        follower.hold = hold
        run.wait(180)
        body = follower.body()
        files = _files_on_node(run.pods("build")[0])
    finally:
        node_cluster.node.restart_kubelet(log_max_size="500Mi")
    assert len(seen) >= 4, seen
    assert b"Succeeded" in final_line(body)
    _gaps_said_where_they_are(task_lines(body)[("build", "spam")], expected, files)
