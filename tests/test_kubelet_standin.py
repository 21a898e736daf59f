"""The kubelet stand-in serves a CRI-like log record: stored timestamps, the kubelet's query
options, and its fault injection (framing, mid-line cuts), all read through the apiserver."""

from __future__ import annotations

import re

from tests.sandbox.cluster import Cluster
from tests.sandbox.kubelet import CriLog, format_rfc3339nano, parse_rfc3339
from tests.sandbox.scenarios import Scenario, Step, Task
from tests.sandbox.simulator import Simulator
from tests.test_sandbox import as_log, open_log

STAMPED = re.compile(rb"^(\S+) (.*)$", re.S)


def test_cri_log_keeps_each_timestamp_once_and_finds_offsets() -> None:
    log = CriLog()
    base = 1_772_359_200 * 10**9
    for i, line in enumerate([b"a\n", b"bb\n", b"last"]):
        log.append(base + i * 500_000_000, line)
    assert bytes(log.data).startswith(format_rfc3339nano(base).encode() + b" a\n")
    assert log.lines() == [b"a\n", b"bb\n", b"last"]
    assert log.data[log.offset_since(base + 1) :].endswith(b" bb\n" + log.data[log.starts[2] :])
    assert log.offset_since(base + 10**10) == len(log.data)
    assert log.offset_tail(1) == log.starts[2] and log.offset_tail(5) == 0 and log.offset_tail(0) == len(log.data)
    assert parse_rfc3339(format_rfc3339nano(base + 123_400)) == base + 123_400


def test_timestamps_since_tail_and_limit_like_a_kubelet(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    lines = [b"line %d" % i for i in range(50)]
    run = sim.play(Scenario("s", tasks=[Task("t", [Step("s", lines)])]), namespace=namespace).wait(30)
    pod = run.pods("t")[0]
    with open_log(cluster, namespace, pod, "step-s", "&timestamps=true") as resp:
        stamped = resp.read().splitlines()
    parsed = [STAMPED.match(line) for line in stamped]
    assert [m.group(2) for m in parsed if m] == lines
    stamps = [parse_rfc3339(m.group(1).decode()) for m in parsed if m]
    assert stamps == sorted(stamps)
    with open_log(cluster, namespace, pod, "step-s", "&tailLines=3") as resp:
        assert resp.read() == as_log(lines[-3:])
    with open_log(cluster, namespace, pod, "step-s", "&limitBytes=10") as resp:
        assert resp.read() == as_log(lines)[:10]
    since = parsed[20].group(1).decode() if parsed[20] else ""
    # sinceTime is taken to whole seconds by the apiserver: every line of that second comes back.
    second = since[:19] + "Z"
    with open_log(cluster, namespace, pod, "step-s", f"&timestamps=true&sinceTime={second}") as resp:
        again = resp.read().splitlines()
    assert again == [line for line, t in zip(stamped, stamps, strict=True) if t >= parse_rfc3339(second)]


def test_follow_framing_and_cuts_keep_the_bytes(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    lines = [b"x" * (i % 37) + b" %d" % i for i in range(200)]
    run = sim.play(Scenario("f", tasks=[Task("t", [Step("s", lines)])]), namespace=namespace).wait(30)
    pod = run.pods("t")[0]
    try:
        cluster.kubelet.frame_follows(lines=1, split=5)
        with open_log(cluster, namespace, pod, "step-s", "&follow=true") as resp:
            assert resp.read() == as_log(lines)
        plan = cluster.kubelet.drop_follows(times=1, after_lines=7)
        with open_log(cluster, namespace, pod, "step-s", "&follow=true") as resp:
            # The apiserver ends its own response cleanly when the kubelet's connection breaks.
            got = resp.read()
        assert plan.all_fired.is_set()
        whole = as_log(lines)
        assert whole.startswith(got) and got.count(b"\n") == 7 and not got.endswith(b"\n")
    finally:
        cluster.kubelet.clear_faults()
