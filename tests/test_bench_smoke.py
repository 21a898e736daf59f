"""The benchmark harness in its quick mode, so `python -m bench` cannot rot unnoticed.

Every figure must produce numbers and the JSON must be written; the goals themselves are not
asserted here (a shared 2-core machine makes timings too noisy for a test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.figures import FIGURES
from bench.report import goals
from tests.needs import need_real_node
from tests.support import ROOT


@pytest.mark.timeout(600)
@pytest.mark.parametrize("upstream", ["standin", "node"])
def test_bench_quick_runs_every_figure(tmp_path: Path, upstream: str) -> None:
    if upstream == "node":
        need_real_node("the bench's real-node upstream needs a machine that can run a kubelet")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--upstream", upstream, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = tmp_path.glob("*.json")
    body = json.loads(result.read_text())
    figures = body["figures"]
    assert (
        set(figures)
        == set(FIGURES)
        == {
            "throughput",
            "latency",
            "fanout",
            "status",
            "coldstart",
            "api",
            "masking",
            "memory",
        }
    )
    assert body["upstream"]["key"] == upstream and body["upstream"]["description"]
    for key, figure in figures.items():
        assert figure["error"] is None, (key, figure["error"])
        if upstream == "node" and key == "api":
            assert "not measured on a real node" in " ".join(figure["notes"])
            continue
        assert figure["metrics"], key
        for metric in figure["metrics"]:
            assert metric["samples"], (key, metric["name"])
    assert "figure" in proc.stdout and "median" in proc.stdout  # the table was printed
    # The docs' goal summary (`bench.report --goals`) has a row for every metric with a goal.
    summary = goals([body])
    assert all(f"| {m['name']} |" in summary for fig in figures.values() for m in fig["metrics"] if m["goal"])
    # What the quick mode can check for sure: complete fan-out output and the API cost shape.
    # Every reader of the throughput figure read the whole log (the figure checks the sizes).
    throughput = {m["name"].split(": ", 1)[1] for m in figures["throughput"]["metrics"]}
    for reader in (
        "kubectl logs",
        "kubectl logs --timestamps",
        "kubectl logs -f",
        "kubectl logs -f --timestamps",
        "/logs text",
        "/logs ndjson",
        "/logs text timestamps=true",
        "/logs text cursors=true",
        "/logs text task= and step= filters",
    ):
        assert reader in throughput and f"CPU per 100 MB, {reader}" in " ".join(throughput), reader
    assert any(name.startswith("/logs masked") for name in throughput)
    latency = {m["name"] for m in figures["latency"]["metrics"]}
    assert {"p99 overhead (listener - apiserver)", "last line, listener - apiserver"} <= latency
    masking = {m["name"] for m in figures["masking"]["metrics"]}
    assert {"masking 20 secrets: one pass per chunk", "bundle: one pass / former design"} <= masking
    # Peak RSS per log size, their difference against its goal, CPU per 100 MB for text and NDJSON.
    memory = {m["name"]: m for m in figures["memory"]["metrics"]}
    assert {"1 MB: peak RSS, listener worker", "3 MB: peak RSS, listener worker"} <= set(memory)
    assert memory["peak RSS, 3 MB log - 1 MB log"]["goal"] == "< 10"
    assert {
        "3 MB: CPU per 100 MB, /logs text (listener worker)",
        "3 MB: CPU per 100 MB, /logs ndjson (listener worker)",
    } <= set(memory)
    fanout = {m["name"]: m for m in figures["fanout"]["metrics"]}
    assert fanout["followers with identical, complete output"]["ok"] is True
    if upstream == "standin":
        api = {m["name"]: m for m in figures["api"]["metrics"]}
        assert api["pods/log requests per container"]["median"] == 1
        assert api["requests per /status"]["median"] == 1
    else:
        # The image's cold start in a real pod, beside the bare process's, on the node only.
        cold = {m["name"] for m in figures["coldstart"]["metrics"]}
        assert {"process start -> first /status 200", "container start -> first /status 200 (real pod)"} <= cold
