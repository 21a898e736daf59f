"""The six figures of issue 7. Each takes the shared `Bench` and fills one `Figure`."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.clients import (
    Key,
    LineReader,
    RequestCounter,
    apiserver_connection,
    cpu_seconds,
    curl_apiserver,
    curl_listener,
    delta,
    keepalive_load,
    pod_log_path,
    proc_kb,
    proc_threads,
    read_body,
    request_totals,
    show_key,
    timed_run,
    worker_pid,
)
from bench.harness import NS, Bench, Figure, Stopwatch, percentile
from tests.sandbox.cluster import free_port
from tests.sandbox.kubelet import parse_rfc3339
from tests.sandbox.objects import random_suffix
from tests.sandbox.scenarios import Scenario, Step, Task, success
from tests.sandbox.simulator import PlayedRun
from tests.support import PASSWORD, ROOT, USER, Listener, basic, strip_heartbeats, task_lines

MB = 1_000_000
_FILLER = b"compiling src/module/component_%d.c -O2 -Wall -Werror -fPIC -I include -DNDEBUG " * 3


def ci_lines(total: int) -> Callable[[], Iterator[bytes]]:
    """~`total` bytes of build-log-like lines, 30 to 190 bytes long (about 110 on average)."""

    def generate() -> Iterator[bytes]:
        written, i = 0, 0
        while written < total:
            line = b"%08d " % i + _FILLER[: 20 + (i * 37) % 160]
            written += len(line) + 1
            i += 1
            yield line

    return generate


def _name(kind: str) -> str:
    return f"bench-{kind}-{random_suffix()}"


def _wait_running(b: Bench, run: PlayedRun, task: str, container: str, timeout: float = 30.0) -> str:
    """The pod of `task`'s first attempt, once `container` runs in the kubelet stand-in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = run.pods(task)
        if pods:
            log = b.cluster.store.lookup(NS, pods[0], container)
            if log is not None and log.state != "waiting":
                return pods[0]
        if run.done.is_set():
            run.wait(0)
        time.sleep(0.005)
    raise TimeoutError(f"{container} of {run.name} not running after {timeout}s")


def _wait_created(run: PlayedRun, timeout: float = 30.0) -> None:
    """Until the simulator has created the PipelineRun (read from its record: no API request)."""
    deadline = time.monotonic() + timeout
    while f"PipelineRun/{run.name}" not in run.objects():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run.name} not created after {timeout}s")
        time.sleep(0.005)


# -- 1. log throughput -----------------------------------------------------------------------------
def throughput(b: Bench, fig: Figure) -> None:
    size = b.sizes.throughput_bytes
    scenario = Scenario("bench-throughput", tasks=[Task("dump", [Step("dump", ci_lines(size))])], max_duration=900)
    clock = Stopwatch()
    run = b.sim.play(scenario, NS, _name("throughput")).wait(900)
    written = clock()
    lines = run.expected_lines("dump", "dump")
    log_bytes = sum(len(line) + 1 for line in lines)
    pod, container = run.pods("dump")[0], "step-dump"
    fig.extra.update(log_bytes=log_bytes, lines=len(lines), simulator_write_seconds=round(written, 2))
    fig.notes.append(
        f"{log_bytes / MB:.1f} MB in {len(lines)} lines (mean {log_bytes / len(lines):.0f} B), written by the "
        f"simulator in {written:.1f} s; every client reads the same finished container log (the kubelet stand-in "
        "replays it as fast as it can), in rotating order, one at a time, wall time from spawn to exit. The listener "
        "asks the apiserver for timestamps=true (it resumes broken streams by timestamp), which the sandbox's "
        "Python kubelet stand-in serves far slower than plain logs; `kubectl logs --timestamps` reads the same."
    )
    listener = b.listener
    worker = worker_pid(listener)
    cluster = b.cluster
    kubeconfig = str(b.listener_kubeconfig)
    clients: dict[str, tuple[list[str], Callable[[int], bool]]] = {
        "apiserver pods/log (curl, ceiling)": (
            curl_apiserver(cluster, cluster.listener, pod_log_path(NS, pod, container)),
            lambda got: got == log_bytes,
        ),
        "apiserver pods/log timestamps=true (curl)": (
            curl_apiserver(cluster, cluster.listener, pod_log_path(NS, pod, container, timestamps=True)),
            lambda got: got > log_bytes,
        ),
        "kubectl logs -f": (
            ["kubectl", "--kubeconfig", kubeconfig, "-n", NS, "logs", "-f", pod, "-c", container],
            lambda got: got == log_bytes,
        ),
        "kubectl logs -f --timestamps": (
            ["kubectl", "--kubeconfig", kubeconfig, "-n", NS, "logs", "-f", "--timestamps", pod, "-c", container],
            lambda got: got > log_bytes,
        ),
        "listener /logs (curl -N)": (
            curl_listener(listener, f"/logs/{run.name}"),
            lambda got: got >= log_bytes + len(lines) * len(b"[dump : dump] "),
        ),
    }
    names = list(clients)
    with tempfile.TemporaryDirectory(prefix="bench-tput-") as tmp:
        out = Path(tmp) / "body"
        for repeat in range(b.sizes.repeats):
            rates: dict[str, float] = {}
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                args, size_ok = clients[name]
                served_by_listener = name.startswith("listener")
                worker_cpu = cpu_seconds(worker) if served_by_listener else 0.0
                timed = timed_run(args, out, timeout=600)
                if not size_ok(timed.size):
                    raise RuntimeError(f"{name}: {timed.size} bytes received for a {log_bytes}-byte log")
                rates[name] = log_bytes / timed.seconds / MB
                fig.add(name, "MB/s", rates[name])
                if name.startswith("kubectl"):
                    fig.add(f"CPU of {name} per 50 MB", "s", timed.cpu * 50 * MB / log_bytes)
                if served_by_listener:
                    worker_cpu = cpu_seconds(worker) - worker_cpu
                    fig.add(
                        "CPU of the listener per 50 MB (worker, curl not counted)",
                        "s",
                        worker_cpu * 50 * MB / log_bytes,
                    )
            fig.add(
                "ratio listener / kubectl",
                "x",
                rates["listener /logs (curl -N)"] / rates["kubectl logs -f"],
                goal=">= 0.9",
                check=lambda v: v >= 0.9,
            )
            fig.add(
                "ratio listener / kubectl --timestamps (same upstream request)",
                "x",
                rates["listener /logs (curl -N)"] / rates["kubectl logs -f --timestamps"],
            )


# -- 2. line latency -------------------------------------------------------------------------------
def latency(b: Bench, fig: Figure) -> None:
    n, interval = b.sizes.latency_lines, b.sizes.latency_interval
    for _ in range(b.sizes.repeats):
        _latency_once(b, fig, n, interval)
    fig.notes.append(
        f"{n} lines {interval * 1000:.0f} ms apart per repeat, both readers on the same live container; latency = "
        "arrival at the client - the kubelet stand-in's timestamp of the write (same clock, same process)."
    )


def _latency_once(b: Bench, fig: Figure, n: int, interval: float) -> None:
    cluster, listener = b.cluster, b.listener
    gate = threading.Event()

    def generate(gate: threading.Event = gate) -> Iterator[bytes]:
        i = 0
        while not gate.is_set() and i < 5000:  # until both readers are attached
            yield b"warmup %d" % i
            i += 1
        for k in range(n):
            yield b"measure %d" % k

    scenario = Scenario(
        "bench-latency", tasks=[Task("lat", [Step("lat", generate, interval=interval)])], max_duration=300
    )
    run = b.sim.play(scenario, NS, _name("latency"))
    samples: dict[str, list[float]] = {"raw": [], "listener": []}
    warm = {"raw": threading.Event(), "listener": threading.Event()}

    def collect(which: str, content: bytes, stamp: bytes, arrival: int) -> None:
        if content.startswith(b"measure "):
            samples[which].append((arrival - parse_rfc3339(stamp.decode())) / 1e6)
        else:
            warm[which].set()

    def on_raw(line: bytes, arrival: int) -> None:
        stamp, _, content = line.rstrip(b"\n").partition(b" ")
        collect("raw", content, stamp, arrival)

    def on_listener(line: bytes, arrival: int) -> None:
        line = line.lstrip(b"\r").rstrip(b"\n")
        if not line.startswith(b"[lat : lat] "):
            return
        stamp, _, content = line[len(b"[lat : lat] ") :].partition(b" ")
        collect("listener", content, stamp, arrival)

    via_listener = LineReader(
        lambda: listener.connect(120), f"/logs/{run.name}?timestamps=true", {"Authorization": basic()}, on_listener
    ).start()
    pod = _wait_running(b, run, "lat", "step-lat")
    raw = LineReader(
        lambda: apiserver_connection(cluster),
        pod_log_path(NS, pod, "step-lat", timestamps=True),
        {"Authorization": f"Bearer {cluster.listener.token}"},
        on_raw,
    ).start()
    for which, event in warm.items():
        if not event.wait(60):
            raise TimeoutError(f"{which} reader got no line")
    gate.set()
    run.wait(300)
    raw.wait(60)
    via_listener.wait(60)
    for which, got in samples.items():
        if len(got) != n:
            raise RuntimeError(f"{which}: {len(got)} of {n} measured lines")
    p99 = {}
    for which, label in (("raw", "apiserver pods/log"), ("listener", "listener /logs")):
        fig.add(f"p50 {label}", "ms", percentile(samples[which], 50))
        p99[which] = percentile(samples[which], 99)
        fig.add(f"p99 {label}", "ms", p99[which])
    fig.add("p99 overhead (listener - apiserver)", "ms", p99["listener"] - p99["raw"], "< 20", lambda v: v < 20)


# -- 3. fan-out ------------------------------------------------------------------------------------
def fanout(b: Bench, fig: Figure) -> None:
    followers = b.sizes.fanout_followers
    threads = max(256, followers + 16)
    for _ in range(b.sizes.repeats):
        _fanout_once(b, fig, followers, threads)
    fig.notes.append(
        f"{followers} followers (Python threads in the bench process) start before the run exists (?wait=60), one "
        f"listener instance with THREADS={threads}, `success` scenario (4 tasks, 5 steps, "
        f"{b.sizes.fanout_lines} lines per step, {b.sizes.fanout_interval * 1000:.0f} ms apart). Per-step line "
        "lists and the final status line are compared; parallel tasks may interleave differently per follower. "
        "Before the followers, the same number of concurrent /status requests hit the fresh instance (cold "
        "credential cache): the followers then find the credentials verified, as in steady state."
    )


def _fanout_once(b: Bench, fig: Figure, followers: int, threads: int) -> None:
    listener = b.new_listener(THREADS=str(threads))
    worker, arbiter = worker_pid(listener), listener.proc.pid if listener.proc else 0
    # A cold instance meeting the whole burst at once: every request verifies the same credentials
    # with bcrypt concurrently (nothing cached yet), and the limiter counts each as a pending failure.
    burst = cold_burst(listener, followers)
    fig.add("cold-cache burst: first requests refused (429)", f"of {followers}", burst.get(429, 0))
    fig.extra.setdefault("cold_burst_statuses", []).append(burst)
    idle_rss = proc_kb(worker, "VmRSS") / 1024
    name = _name("fanout")
    bodies: list[bytes | None] = [None] * followers
    errors: list[BaseException] = []

    def follow(i: int) -> None:
        try:
            bodies[i] = read_body(listener, f"/logs/{name}?wait=60", timeout=300)
        except BaseException as err:
            errors.append(err)

    peak_threads = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.1):
            try:
                peak_threads[0] = max(peak_threads[0], proc_threads(worker))
            except OSError:
                return

    clock = Stopwatch()
    cpu0 = cpu_seconds(worker)
    threading.Thread(target=sample, daemon=True).start()
    clients = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(followers)]
    for client in clients:
        client.start()
    time.sleep(min(2.0, 0.01 * followers))  # most are waiting for the run; late ones replay it
    run = b.sim.play(success(lines=b.sizes.fanout_lines, interval=b.sizes.fanout_interval), NS, name)
    run.wait(300)
    for client in clients:
        client.join(300)
    wall = clock()
    cpu = cpu_seconds(worker) - cpu0
    sampling.set()
    peak_worker = proc_kb(worker, "VmHWM") / 1024
    peak_arbiter = proc_kb(arbiter, "VmHWM") / 1024
    listener.stop()
    if errors:
        raise RuntimeError(f"{len(errors)} followers failed, first: {errors[0]!r}")
    expected = run.expected()
    complete = 0
    finals = set()
    for body in bodies:
        assert body is not None
        text = strip_heartbeats(body)
        if task_lines(text) == expected:
            complete += 1
        finals.add(text.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    identical = complete if len(finals) == 1 else 0
    fig.add(
        "followers with identical, complete output",
        f"of {followers}",
        identical,
        goal=f"= {followers}",
        check=lambda v, f=followers: v == f,
    )
    fig.add("peak RSS, worker", "MB", peak_worker, goal="< 300", check=lambda v: v < 300)
    fig.add("peak RSS, worker + gunicorn arbiter", "MB", peak_worker + peak_arbiter)
    fig.add("idle RSS before, worker", "MB", idle_rss)
    fig.add("CPU, worker", "s", cpu)
    fig.add("CPU, worker, mean over the run", "% of a core", 100 * cpu / wall)
    fig.add("peak threads, worker", "", peak_threads[0])
    fig.add("run wall time", "s", wall)
    lines = sum(len(v) for v in expected.values())
    fig.extra.setdefault("lines_per_follower", lines)


def cold_burst(listener: Listener, clients: int) -> dict[int, int]:
    """`clients` concurrent authenticated requests (of a run that does not exist: 404 after auth)
    on an instance that has verified nothing yet; their status codes, counted."""
    codes: list[int] = []
    start = threading.Barrier(clients)

    def one() -> None:
        start.wait(30)
        codes.append(listener.get("/status/bench-no-such-run", timeout=120)[0])

    threads = [threading.Thread(target=one, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return {code: codes.count(code) for code in sorted(set(codes))}


# -- 4. status -------------------------------------------------------------------------------------
def status(b: Bench, fig: Figure) -> None:
    s = b.sizes
    run = b.sim.play(success(lines=2, interval=0), NS, _name("status")).wait(60)
    listener, cluster = b.listener, b.cluster
    warmup = 1.0 if not b.quick else 0.3
    direct_path = f"/apis/tekton.dev/v1/namespaces/{NS}/pipelineruns/{run.name}"
    kubectl = ["kubectl", "--kubeconfig", str(b.listener_kubeconfig), "-n", NS, "get", "pipelinerun", run.name]
    kubectl += ["-o", "json"]
    for _ in range(s.repeats):
        got = keepalive_load(
            lambda: listener.connect(30),
            f"/status/{run.name}",
            {"Authorization": basic()},
            s.status_threads,
            s.status_seconds,
            warmup,
        )
        ms = [v * 1000 for v in got.latencies]
        fig.add("listener /status", "req/s", got.rate, ">= 300", lambda v: v >= 300)
        fig.add("listener /status p50", "ms", percentile(ms, 50))
        fig.add("listener /status p99", "ms", percentile(ms, 99), "< 25", lambda v: v < 25)

        direct = keepalive_load(
            lambda: apiserver_connection(cluster, 30),
            direct_path,
            {"Authorization": f"Bearer {cluster.listener.token}", "Accept": "application/json"},
            s.status_threads,
            s.status_seconds,
            warmup,
        )
        ms = [v * 1000 for v in direct.latencies]
        fig.add("apiserver GET pipelinerun (keep-alive)", "req/s", direct.rate)
        fig.add("apiserver GET pipelinerun p99", "ms", percentile(ms, 99))

        times = []
        with tempfile.TemporaryDirectory(prefix="bench-kubectl-") as tmp:
            for _ in range(s.kubectl_calls):
                times.append(timed_run(kubectl, Path(tmp) / "out", timeout=60).seconds * 1000)
        fig.add("kubectl get pipelinerun -o json", "req/s", 1000 / statistics.mean(times))
        fig.add("kubectl p50", "ms", percentile(times, 50))
        fig.add("kubectl p99", "ms", percentile(times, 99))
    fig.notes.append(
        f"{s.status_threads} client threads, each on one keep-alive connection, {s.status_seconds:g} s measured "
        f"after {warmup:g} s of warm-up: steady state, with the credentials already verified by bcrypt once and "
        "cached (AUTH_CACHE_TTL, 60 s: one re-verification per minute and credential is not in the window). "
        "Client and server share the 2 cores. kubectl: sequential, one process per request."
    )


# -- 5. cold start ---------------------------------------------------------------------------------
def coldstart(b: Bench, fig: Figure) -> None:
    run = b.sim.play(success(lines=1, interval=0), NS, _name("cold")).wait(60)
    python = sys.executable
    framework = str(Path(python).with_name("functions-framework"))
    env = {
        **os.environ,
        "NAMESPACE": NS,
        "KUBECONFIG": str(b.listener_kubeconfig),
        "AUTH_USERNAME": USER,
        "AUTH_PASSWORD": PASSWORD,
    }
    for _ in range(b.sizes.cold_starts):
        clock = Stopwatch()
        subprocess.run([python, "-c", "pass"], check=True)
        fig.add("floor: python -c pass", "ms", clock() * 1000)

        port = free_port()
        listener_env = {**env, "PORT": str(port)}
        clock = Stopwatch()
        proc = subprocess.Popen(
            [framework, "--source", "functions/status/main.py", "--target", "status"],
            env=listener_env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            health = _first_ok(port, "/health/liveness", None, proc)
            t_health = clock()
            code = _get(port, f"/status/{run.name}", basic())
            t_status = clock()
            if code != 200:
                raise RuntimeError(f"first /status answered {code}")
            again = Stopwatch()
            _get(port, f"/status/{run.name}", basic())
            t_again = again()
        finally:
            proc.terminate()
            proc.wait(10)
        fig.add("process start -> first /health/liveness 200", "ms", t_health * 1000)
        fig.add("process start -> first /status 200", "ms", t_status * 1000, "< 1000", lambda v: v < 1000)
        fig.add("first /status request alone", "ms", (t_status - t_health) * 1000)
        fig.add("second /status request", "ms", t_again * 1000)
        fig.extra.setdefault("health_polls", health)
    fig.extra["imports_ms"] = import_costs(python)
    top = ", ".join(f"{k} {v:.0f}" for k, v in list(fig.extra["imports_ms"].items())[:8])
    fig.notes.append(
        "`functions-framework --source functions/status/main.py --target status` as its container starts it; "
        "/health/liveness polled every 5 ms; then one authenticated /status of a finished run. "
        f"Import cost (ms, cumulative and nested, python -X importtime of loading the function): {top}. "
        "The env user's password is checked by digest, so no bcrypt runs on this path."
    )


def _get(port: int, path: str, auth: str | None, timeout: float = 10.0) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _first_ok(port: int, path: str, auth: str | None, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if proc.poll() is not None:
            raise RuntimeError(f"function exited {proc.returncode}")
        try:
            if _get(port, path, auth, timeout=2) == 200:
                return polls
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{path} not answering after {timeout}s")


def import_costs(python: str) -> dict[str, float]:
    """Cumulative import time of each top-level package while functions-framework loads the status
    function (the work a cold start does before it can listen), in ms, largest first. Nested:
    `shared` includes `kubernetes`, which includes `urllib3`..."""
    code = (
        "from functions_framework import create_app\ncreate_app(target='status', source='functions/status/main.py')\n"
    )
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if "." in name or not cumulative.strip().isdigit():
            continue
        # A package's own import line (first import wins: later ones are cache hits).
        totals.setdefault(name, int(cumulative) / 1000)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:15])


# -- 6. API cost -----------------------------------------------------------------------------------
def _settle(b: Bench) -> None:
    # Watches and log follows are counted when they end; released ones end within a second.
    time.sleep(2.0 if not b.quick else 1.2)


def api_cost(b: Bench, fig: Figure) -> None:
    cluster, listener = b.cluster, b.listener
    containers = 5  # `success`: clone, install, test, lint, build
    role = role_resources()
    breakdown: dict[str, dict[str, float]] = {}
    with RequestCounter(cluster) as own:
        get_verb = own.calibrate("pipelineruns", f"/apis/tekton.dev/v1/namespaces/{NS}/pipelineruns/bench-nosuch")
        fig.extra["apiserver_verb_for_named_get"] = get_verb

        def measured(label: str, action: Callable[[], None]) -> dict[Key, float]:
            """The listener's requests during `action`: the apiserver's count for the resources of
            the shipped Role, minus what this process (simulator, kubelet stand-in) sent itself."""
            before = request_totals(cluster)  # the previous window settled already
            own.reset()
            action()
            _settle(b)
            got = delta(before, request_totals(cluster))
            mine = own.snapshot(get_verb)
            listener_part = {}
            for key in set(got) | set(mine):
                if key[1:] in role or key[1] in role:
                    value = got.get(key, 0.0) - mine.get(key, 0.0)
                    if value:
                        listener_part[key] = value
            breakdown[label] = {show_key(k): v for k, v in sorted(listener_part.items())}
            return listener_part

        done = b.sim.play(success(lines=4, interval=0), NS, _name("api-done")).wait(60)
        _settle(b)
        replay = measured("follow of a finished run", lambda: read_body(listener, f"/logs/{done.name}"))

        def live(interval: float) -> Callable[[], None]:
            def action() -> None:
                run = b.sim.play(success(lines=4, interval=interval), NS, _name("api-live"))
                _wait_created(run)  # not the ?wait path: that adds one LIST + one WATCH
                read_body(listener, f"/logs/{run.name}")
                run.wait(120)

            return action

        paces = (0.02, 0.2) if not b.quick else (0.0, 0.05)
        live_runs = [measured(f"live follow, {p * 1000:.0f} ms/line", live(p)) for p in paces]

        calls = b.sizes.api_status_calls

        def statuses() -> None:
            for _ in range(calls):
                listener.get(f"/status/{done.name}")

        per_status = measured(f"{calls} x /status of a finished run", statuses)

    log_requests = sum(v for (_, res, sub), v in replay.items() if (res, sub) == ("pods", "log"))
    watches = [sum(v for k, v in got.items() if k[0] == "WATCH") for got in (replay, *live_runs)]
    fig.add("requests per follow, finished run", "req", sum(replay.values()))
    fig.add("requests per live follow", "req", sum(live_runs[0].values()))
    fast = sum(live_runs[0].values())
    fig.add("requests per live follow, 10x slower run", "req", sum(live_runs[1].values()), "= fast run", fast.__eq__)
    fig.add("watches per follow (finished, live, slow)", "req", max(watches), "= 3 each", lambda v: v == 3)
    fig.add("pods/log requests per container", "req", log_requests / containers, "= 1", lambda v: v == 1)
    fig.add("requests per /status", "req", sum(per_status.values()) / calls, "= 1", lambda v: v == 1)
    if len(set(watches)) != 1:
        fig.notes.append(f"watches differ between follows: {watches}")
    fig.extra["breakdown"] = breakdown
    fig.extra["containers_per_run"] = containers
    fig.notes.append(
        "apiserver_request_total by verb/resource/subresource before and after, for the resources of the shipped "
        "Role, minus the requests the bench process itself sent (simulator and harness, counted by wrapping "
        f"Cluster.raw; the simulator GETs the PipelineRun every 100 ms). This apiserver labels a GET of one named "
        f"custom resource as verb {get_verb}, so `find the run` shows up under {get_verb} pipelineruns."
    )


def role_resources() -> set:
    """`resource` and `(resource, subresource)` names the shipped Role grants."""
    from tests.support import shipped_role

    out: set = set()
    for rule in shipped_role()["rules"]:
        for resource in rule["resources"]:
            res, _, sub = resource.partition("/")
            out.add((res, sub) if sub else res)
    return out


FIGURES: dict[str, tuple[str, Callable[[Bench, Figure], None]]] = {
    "throughput": ("1. Log throughput: /logs vs kubectl logs -f", throughput),
    "latency": ("2. Line latency: /logs vs raw pods/log follow", latency),
    "fanout": ("3. Fan-out: concurrent followers of one run", fanout),
    "status": ("4. /status: rate and latency vs kubectl get", status),
    "coldstart": ("5. Cold start of the status function", coldstart),
    "api": ("6. Kubernetes API requests per follow and per /status", api_cost),
}
