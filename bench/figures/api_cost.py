"""Kubernetes API requests per follow and per /status, counted by the apiserver itself."""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.clients import Key, RequestCounter, delta, read_body, request_totals, show_key
from bench.harness import NS, Bench, Figure
from bench.workloads import run_name, wait_created
from tests.sandbox.scenarios import success


def _settle(b: Bench) -> None:
    # Watches and log follows are counted when they end; released ones end within a second.
    time.sleep(2.0 if not b.quick else 1.2)


def api_cost(b: Bench, fig: Figure) -> None:
    if b.cluster.node is not None:
        # The apiserver counts requests by verb and resource, not by client: a real kubelet's own
        # pod GETs and status PATCHes would land in the listener's share. The count does not
        # depend on who serves the logs, so the stand-in's figure stands for both.
        fig.notes.append("not measured on a real node: the kubelet's own pod requests share the apiserver's counters")
        return
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

        done = b.sim.play(success(lines=4, interval=0), NS, run_name("api-done")).wait(60)
        _settle(b)
        replay = measured("follow of a finished run", lambda: read_body(listener, f"/logs/{done.name}"))

        def live(interval: float) -> Callable[[], None]:
            def action() -> None:
                run = b.sim.play(success(lines=4, interval=interval), NS, run_name("api-live"))
                wait_created(run)  # not the ?wait path: that adds one LIST + one WATCH
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
