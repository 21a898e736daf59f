"""Line latency: a live line from the kubelet to a /logs client, against a raw pods/log follow."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from bench.clients import LineReader, apiserver_connection, pod_log_path
from bench.harness import NS, Bench, Figure, percentile
from bench.workloads import run_name, wait_running
from tests.sandbox.kubelet import parse_rfc3339
from tests.sandbox.real_pods import hold_marker
from tests.sandbox.scenarios import Scenario, Step, Task
from tests.support import basic


def latency(b: Bench, fig: Figure) -> None:
    n, interval = b.sizes.latency_lines, b.sizes.latency_interval
    for _ in range(b.sizes.repeats):
        _latency_once(b, fig, n, interval)
    fig.notes.append(
        f"{n} lines {interval * 1000:.0f} ms apart per repeat, both readers on the same live container; latency = "
        "arrival at the client - the kubelet's timestamp of the write (same clock, same machine)."
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

    step = Step("lat", generate, interval=interval)
    if b.cluster.node is not None:
        # A real container cannot see the gate: it writes warm-up lines until a marker file
        # appears (the step's `hold`), then the measured ones.
        marker = hold_marker(0, step)
        step.hold, step.real_script = (
            gate,
            (
                f"i=0; while [ ! -e {marker} ] && [ $i -lt 5000 ]; do\n"
                f"  echo warmup $i; i=$((i+1)); sleep {interval}\ndone\n"
                f"k=0; while [ $k -lt {n} ]; do echo measure $k; k=$((k+1)); sleep {interval}; done"
            ),
        )
    scenario = Scenario("bench-latency", tasks=[Task("lat", [step])], max_duration=300)
    run = b.sim.play(scenario, NS, run_name("latency"))
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
    pod = wait_running(b, run, "lat", "step-lat", timeout=120)
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
    fig.add("p99 overhead (listener - apiserver)", "ms", p99["listener"] - p99["raw"], "< 10", lambda v: v < 10)
    # The run's last line: how much later than a direct follow the /logs client has it.
    fig.add(
        "last line, listener - apiserver",
        "ms",
        samples["listener"][-1] - samples["raw"][-1],
        "< 100",
        lambda v: v < 100,
    )
