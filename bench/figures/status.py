"""/status: requests per second and latency on keep-alive connections, against kubectl get."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.clients import apiserver_connection, keepalive_load, timed_run
from bench.harness import NS, Bench, Figure, percentile
from bench.workloads import status_run
from tests.support import basic


def status(b: Bench, fig: Figure) -> None:
    s = b.sizes
    run = status_run(b)
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
