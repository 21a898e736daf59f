"""Fan-out: many followers of one run on one listener instance: complete output, memory, CPU."""

from __future__ import annotations

import threading
import time

from bench.clients import cpu_seconds, proc_kb, proc_threads, read_body, worker_pid
from bench.harness import NS, Bench, Figure, Stopwatch
from bench.workloads import run_name
from tests.sandbox.scenarios import success
from tests.support import Listener, strip_heartbeats, task_lines


def fanout(b: Bench, fig: Figure) -> None:
    followers = b.sizes.fanout_followers
    threads = max(256, followers + 16)
    for _ in range(b.sizes.repeats):
        _fanout_once(b, fig, followers, threads)
    fig.notes.append(
        f"{followers} followers (Python threads in the bench process) start before the run exists (?wait=60), one "
        f"listener instance with THREADS={threads} and LOGS_MAX_STREAMS_PER_PRINCIPAL={followers + 10} (all followers "
        "are one user), `success` scenario (4 tasks, 5 steps, "
        f"{b.sizes.fanout_lines} lines per step, {b.sizes.fanout_interval * 1000:.0f} ms apart). Per-step line "
        "lists and the final status line are compared; parallel tasks may interleave differently per follower. "
        "Before the followers, the same number of concurrent /status requests hit the fresh instance (cold "
        "credential cache): the followers then find the credentials verified, as in steady state."
    )


def _fanout_once(b: Bench, fig: Figure, followers: int, threads: int) -> None:
    # The figure needs every follower admitted: it sets the per-user stream cap itself (the
    # deployed default, 10, would answer most of them 429).
    listener = b.new_listener(THREADS=str(threads), LOGS_MAX_STREAMS_PER_PRINCIPAL=str(followers + 10))
    worker, arbiter = worker_pid(listener), listener.proc.pid if listener.proc else 0
    # A cold instance meeting the whole burst at once: every request verifies the same credentials
    # with bcrypt concurrently (nothing cached yet), and the limiter counts each as a pending failure.
    burst = cold_burst(listener, followers)
    fig.add("cold-cache burst: first requests refused (429)", f"of {followers}", burst.get(429, 0))
    fig.extra.setdefault("cold_burst_statuses", []).append(burst)
    idle_rss = proc_kb(worker, "VmRSS") / 1024
    name = run_name("fanout")
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
