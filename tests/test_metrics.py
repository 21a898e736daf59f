"""Metrics and access log over real HTTP: the listener on the sandbox, /metrics scraped on its own
port and read with prometheus_client's text parser, counters checked to move with the requests."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.runs.find import EVENT_ID_LABEL
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster, free_port
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import PASSWORD, Listener, basic, chunks, grant_listener, task_lines, text_lines, wait_for
from tests.test_find_run import labelled

NS = LISTENER_NAMESPACE
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def __call__(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture(scope="module")
def observed(cluster: Cluster) -> Iterator[tuple[Listener, Scraper]]:
    grant_listener(cluster, NS)
    port = free_port()
    with Listener(cluster, METRICS_PORT=str(port), HEARTBEAT_SECONDS="1") as running:
        yield running, Scraper(port)


def test_requests_and_kubernetes_calls_are_counted(observed: tuple[Listener, Scraper], sim: Simulator) -> None:
    listener, scrape = observed
    run = sim.play(SCENARIOS["success"](), NS).wait(60)
    before = scrape()
    assert listener.get(f"/status/{run.name}")[0] == 200
    assert listener.get(f"/status/{run.name}")[0] == 200
    assert listener.get("/status/no-such-run")[0] == 404
    assert listener.get(f"/status/{run.name}", auth=basic(password="wrong"))[0] == 401
    assert listener.get("/health")[0] == 200
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/status/<run>"
    assert delta("tpl_http_requests_total", function="status", route=route, code="200") == 2
    assert delta("tpl_http_requests_total", function="status", route=route, code="404") == 1
    assert delta("tpl_http_requests_total", function="status", route=route, code="401") == 1
    assert delta("tpl_http_requests_total", function="health", route="/health", code="200") == 1
    assert delta("tpl_http_request_duration_seconds_count", function="status", route=route) == 4
    assert delta("tpl_http_request_duration_seconds_sum", function="status", route=route) > 0
    assert delta("tpl_auth_failures_total", scheme="basic", code="401") == 1
    assert delta("tpl_kube_requests_total", verb="get", resource="pipelineruns", outcome="ok") >= 2
    assert delta("tpl_kube_requests_total", verb="get", resource="pipelineruns", outcome="404") >= 1
    assert delta("tpl_kube_request_duration_seconds_count", verb="get", resource="pipelineruns") >= 3
    # Nothing was open before or is open after.
    assert value(after, "tpl_http_requests_in_handler", function="status") == 0


def test_streams_bytes_lines_and_resumes(observed: tuple[Listener, Scraper], sim: Simulator) -> None:
    listener, scrape = observed
    hold = threading.Event()
    scenario = SCENARIOS["success"]()
    scenario.tasks[0].steps[0].hold = hold
    run = sim.play(scenario, NS)
    before = scrape()
    stream = chunks(listener, f"/logs/{run.name}?wait=30", timeout=60)
    received = [next(stream)]
    assert value(scrape(), "tpl_http_open_streams", function="logs") == 1  # the stream is open
    hold.set()
    body = b"".join(received) + b"".join(stream)
    run.wait(60)
    after = scrape()
    assert value(after, "tpl_http_open_streams", function="logs") == 0
    sent_bytes = value(after, "tpl_http_streamed_bytes_total", function="logs") - value(
        before, "tpl_http_streamed_bytes_total", function="logs"
    )
    sent_lines = value(after, "tpl_logs_streamed_lines_total") - value(before, "tpl_logs_streamed_lines_total")
    step_lines = sum(len(lines) for lines in task_lines(body).values())
    assert step_lines > 10 and (sent_bytes, sent_lines) == (len(body), step_lines)
    assert value(after, "tpl_kube_requests_total", verb="watch", outcome="ok") > value(
        before, "tpl_kube_requests_total", verb="watch", outcome="ok"
    )
    assert value(after, "tpl_kube_requests_total", verb="get", resource="pods/log", outcome="ok") > 0

    status, _, _ = listener.get(f"/logs/{run.name}", headers={"Last-Event-ID": "not-a-token"})
    assert status == 400
    assert (
        value(scrape(), "tpl_logs_resumes_total", code="400") == value(after, "tpl_logs_resumes_total", code="400") + 1
    )


def test_the_digest_reads_a_failed_steps_lines_again_only_when_the_stream_did_not_see_them(
    observed: tuple[Listener, Scraper], sim: Simulator
) -> None:
    """`build` fails after 5 lines, fewer than the digest's 20: a stream that saw them all has
    them; one filtered to another task reads them from the kubelet (the pod's GET first)."""
    listener, scrape = observed
    run = sim.play(SCENARIOS["failure"](lines=5), NS).wait(60)
    tail = [b"      | " + line for line in run.expected_lines("compile", "build")]

    def digest_and_pod_reads(query: str) -> tuple[list[bytes], float]:
        before = value(scrape(), "tpl_kube_requests_total", verb="get", resource="pods")
        status, _, body = listener.get(f"/logs/{run.name}{query}")
        reads = value(scrape(), "tpl_kube_requests_total", verb="get", resource="pods") - before
        lines = text_lines(body)
        assert status == 200 and lines[-1].startswith(f"PipelineRun {run.name} Failed".encode()), body
        start = lines.index(b"      last 5 lines:") + 1
        return lines[start : start + 5], reads

    assert digest_and_pod_reads("") == (tail, 0)
    digest, reads = digest_and_pod_reads("?task=publish")
    assert digest == tail and reads >= 1


def test_a_wait_by_eventid_for_the_end_lists_once(observed: tuple[Listener, Scraper], sim: Simulator) -> None:
    """The run is created after the lookup's LIST: the watch from that LIST's version brings it,
    and the wait for it to finish watches from the run's own version: no second LIST."""
    listener, scrape = observed
    eventid = uuid.uuid4().hex

    def lists() -> float:
        return value(scrape(), "tpl_kube_requests_total", verb="list", resource="pipelineruns")

    before = lists()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(listener.get_json, f"/status?eventid={eventid}&wait=30", timeout=60)
        wait_for(lambda: lists() != before, "the lookup's LIST")
        assert lists() == before + 1
        run = sim.play(labelled("success", {EVENT_ID_LABEL: eventid}, lines=1), NS)
        status, body = answer.result(timeout=60)
    assert status == 200 and body["name"] == run.name, body
    assert lists() == before + 1


def test_stream_cap_refusals_are_backoffs(cluster: Cluster, sim: Simulator) -> None:
    port = free_port()
    with Listener(cluster, METRICS_PORT=str(port), LOGS_MAX_STREAMS_PER_PRINCIPAL="1") as listener:
        scrape = Scraper(port)
        hold = threading.Event()
        scenario = SCENARIOS["success"]()
        scenario.tasks[0].steps[0].hold = hold
        run = sim.play(scenario, NS)
        stream = chunks(listener, f"/logs/{run.name}?wait=30", timeout=60)
        next(stream)
        assert listener.get(f"/logs/{run.name}")[0] == 429
        hold.set()
        b"".join(stream)
        assert value(scrape(), "tpl_backoffs_total", cause="streams") == 1


def test_request_id_and_one_access_log_line_per_request(observed: tuple[Listener, Scraper], sim: Simulator) -> None:
    listener, _ = observed
    run = sim.play(SCENARIOS["failure"](), NS).wait(60)
    status, headers, body = listener.get(f"/status/{run.name}", headers={"X-Request-Id": "ingress-id-0001"})
    assert status == 422 and headers["x-request-id"] == "ingress-id-0001"
    status, headers, _ = listener.get(f"/status/{run.name}", auth=basic(password="wrong"))
    generated = headers["x-request-id"]
    assert status == 401 and len(generated) == 32
    # A made-up id that is not plainly an id is replaced.
    _, headers, _ = listener.get("/health", headers={"X-Request-Id": "x\ty"})
    assert headers["x-request-id"] != "x\ty"

    lines = [json.loads(line) for line in listener.log().splitlines() if line.startswith('{"time"')]
    by_id = {line["request_id"]: line for line in lines}
    ok = by_id["ingress-id-0001"]
    assert ok["principal"] == "ci-user" and ok["auth"] == "user" and ok["run"] == f"{NS}/{run.name}"
    assert (ok["code"], ok["route"], ok["function"]) == (422, "/status/<run>", "status")
    assert ok["bytes"] == len(body) and ok["duration_ms"] >= 0
    refused = by_id[generated]
    assert refused["code"] == 401 and refused["principal"] is None
    assert PASSWORD not in listener.log() and "wrong" not in listener.log()


def test_metrics_are_not_on_the_function_port(observed: tuple[Listener, Scraper]) -> None:
    listener, _ = observed
    status, _, body = listener.get("/metrics")
    assert status == 404 and b"tpl_http" not in body


def test_workers_sum_in_multiprocess_mode(cluster: Cluster, tmp_path: Path) -> None:
    port = free_port()
    workers = {"METRICS_PORT": str(port), "WORKERS": "2", "THREADS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with Listener(cluster, **workers) as listener:
        scrape = Scraper(port)
        try:
            before = value(scrape(), "tpl_http_requests_total", function="health")
            for _ in range(30):
                assert listener.get("/health", auth=None)[0] == 200
            # A worker caught between creating its file and sizing it (or killed there) leaves an
            # empty one: prometheus_client's collector failed the whole scrape on it with a 500.
            (tmp_path / "histogram_4242.db").touch()
            after = value(scrape(), "tpl_http_requests_total", function="health")
        except urllib.error.HTTPError as err:
            pytest.fail(f"scrape answered {err.code}; listener log:\n{listener.log()[-4000:]}")
        served_by = {path.name.split("_")[-1] for path in tmp_path.glob("counter_*.db")}
    assert after - before == 30
    assert len(served_by) >= 1


def test_closing_an_observed_stream_closes_the_body_it_wraps() -> None:
    """The server's close of a counted stream reaches the handler's body (its stream slot, its
    Kubernetes streams) at once, not when the garbage collector finds it."""
    from flask import Flask, Response, request

    from shared.auth import StreamLimiter
    from shared.config import MetricsSettings
    from shared.http.observe import Observation

    limiter = StreamLimiter(per_principal=1)
    lease = limiter.acquire("alice")
    with Flask(__name__).test_request_context("/logs/run"):
        response = Response(lease.guard(iter([b"a\n", b"b\n"])))
        response = Observation(request, "logs").answered(request, response, MetricsSettings(access_log=False))
        assert next(iter(response.response)) == b"a\n"
        response.close()  # what the WSGI server does when the client goes away
    assert lease.released and limiter.active("alice") == 0


def test_dashboard_queries_only_metrics_the_listener_exports() -> None:
    import re

    from prometheus_client import REGISTRY

    import shared.metrics  # noqa: F401 -- registers the metrics

    exported = {sample.name for family in REGISTRY.collect() for sample in family.samples} | {
        family.name + suffix for family in REGISTRY.collect() for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    dashboard = json.loads((Path(__file__).parent.parent / "deploy/grafana/tekton-pipeline-listener.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\btpl_[a-z_]+", expr)}
    assert len(used) >= 12 and used <= exported, used - exported


def test_masked_values_are_counted() -> None:
    from prometheus_client import REGISTRY

    from shared.logs.masking import SecretMasker

    def count() -> float:
        return REGISTRY.get_sample_value("tpl_logs_masked_values_total") or 0.0

    before = count()
    masker = SecretMasker(["hunter22", "s3cr3t-token"])
    stream = masker.stream()
    # Three occurrences, one of them cut across two chunks; overlapping ones would merge into one mask.
    out = stream.feed(b"a hunter22 b s3cr3t-") + stream.feed(b"token c hunter22\n") + stream.flush()
    assert out == b"a *** b *** c ***\n"
    assert count() - before == 3


# -- notify: deliveries and requests, on the notify function's own metrics port ------------------
from tests.test_notify_function import (  # noqa: E402 -- the notify tests' stand-ins and fixtures
    ALL,
    PREFIX,
    Function,
    env,  # noqa: F401
    notify_identity,  # noqa: F401
    post,
    runs,  # noqa: F401
    standins,  # noqa: F401
)
from tests.test_notify_function import Runs as NotifyRuns  # noqa: E402


def test_notify_deliveries_and_requests_are_counted(
    env: dict[str, str],  # noqa: F811
    runs: NotifyRuns,  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()
    function = Function(env | {"METRICS_PORT": str(port)}, tmp_path / "notify.log")
    try:
        scrape = Scraper(port)
        data = runs.create("01-queued", dict(ALL, **{f"{PREFIX}sha": "a" * 40}))
        name = data["pipelineRun"]["metadata"]["name"]
        assert post(function, "queued", data)[0] == 200
        assert post(function, "successful", runs.step(name, "01-successful"))[0] == 200
        samples = scrape()
    finally:
        function.stop()
    for target in ("gitlab", "github", "webhook"):
        assert value(samples, "tpl_notify_deliveries_total", target=target, outcome="ok") >= 1, target
    assert value(samples, "tpl_http_requests_total", function="notify", code="200") == 2
    assert value(samples, "tpl_kube_requests_total", verb="get", resource="pipelineruns", outcome="ok") >= 2
    text = function.log_path.read_text()
    access = [json.loads(line) for line in text.splitlines() if line.startswith('{"time"')]
    assert [line["code"] for line in access if line["function"] == "notify"] == [200, 200]
