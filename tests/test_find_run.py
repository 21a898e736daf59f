"""Runs found by what a CI job knows: `?eventid=` (Tekton Triggers' event ID label) and `?sha=`
(a label, or an annotation by configuration), on /logs and /status, over HTTP on the sandbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.runs.find import EVENT_ID_LABEL
from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS, Scenario
from tests.sandbox.simulator import Simulator
from tests.support import Listener, grant_listener, task_lines

NS = "tekton-pipelines"
SHA_LABEL = "pipelinesascode.tekton.dev/sha"


def labelled(kind: str, labels: dict[str, str], **knobs: object) -> Scenario:
    scenario = SCENARIOS[kind](**knobs)
    scenario.labels = {**scenario.labels, **labels}
    return scenario


def test_logs_by_eventid_waits_for_the_run(listener: Listener, sim: Simulator) -> None:
    eventid = uuid.uuid4().hex
    with ThreadPoolExecutor(1) as pool:
        body = pool.submit(listener.get, f"/logs?eventid={eventid}&wait=30", "default", 120)
        run = sim.play(labelled("late", {EVENT_ID_LABEL: eventid}, appear_after=1.0), NS).wait(60)
        status, _, text = body.result(timeout=120)
    assert status == 200
    got = task_lines(text)
    assert got and all(got.get(key, []) == lines for key, lines in run.expected().items())
    assert text.rstrip(b"\n").split(b"\n")[-1].startswith(f"PipelineRun {run.name} Succeeded".encode())


def test_status_by_sha_and_by_namespace_path(listener: Listener, sim: Simulator) -> None:
    sha = uuid.uuid4().hex + "abcdef01"
    run = sim.play(labelled("success", {SHA_LABEL: sha}, lines=2), NS).wait(60)
    status, body = listener.get_json(f"/status/{NS}?sha={sha.upper()}&wait=10")
    assert status == 200 and body["name"] == run.name
    status, body = listener.get_json(f"/status?sha={sha}&eventid=other-event")
    assert status == 404 and "eventid=other-event and sha=" in body["error"]


def test_several_matches_are_409_with_the_candidates(listener: Listener, sim: Simulator) -> None:
    eventid = uuid.uuid4().hex
    runs = [sim.play(labelled("success", {EVENT_ID_LABEL: eventid}, lines=1), NS).wait(60) for _ in range(2)]
    for path in (f"/logs?eventid={eventid}", f"/status?eventid={eventid}"):
        status, headers, raw = listener.get(path)
        body = json.loads(raw)
        assert status == 409 and headers["content-type"] == "application/json", path
        assert body["status"] == 409 and "2 PipelineRuns" in body["error"]
        assert sorted(c["name"] for c in body["candidates"]) == sorted(r.name for r in runs)
        assert all(c["outcome"] == "succeeded" and c["namespace"] == NS for c in body["candidates"])


def test_no_match_is_404_after_the_wait(listener: Listener) -> None:
    status, body = listener.get_json(f"/logs?eventid={uuid.uuid4().hex}&wait=1")
    assert status == 404 and "after 1s" in body["error"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/logs?eventid=bad%20id", 400),
        ("/logs?eventid=" + "a" * 64, 400),
        ("/status?sha=xyz1234", 400),
        ("/status?sha=abc", 400),
        ("/status?sha=" + "a" * 65, 400),
        # A SHA-256 commit does not fit in a label value (63): refused before the API server is asked.
        ("/logs?sha=" + "a" * 64, 400),
        (f"/logs/{NS}/some-run?eventid=e1", 404),  # a name and a selector: which one?
        ("/logs/Bad_NS?eventid=e1", 400),
    ],
)
def test_bad_selectors_are_refused_as_json(listener: Listener, path: str, code: int) -> None:
    status, headers, body = listener.get(path)
    assert status == code and headers["content-type"] == "application/json"
    assert json.loads(body)["status"] == code


def test_a_sha256_commit_with_a_label_says_what_to_configure(listener: Listener) -> None:
    status, body = listener.get_json("/status?sha=" + "0a" * 32)
    assert status == 400 and SHA_LABEL in body["error"] and "RUN_SHA_ANNOTATION" in body["error"]


@pytest.fixture(scope="module")
def by_annotation(cluster: Cluster) -> Iterator[Listener]:
    grant_listener(cluster, NS)
    with Listener(cluster, RUN_SHA_ANNOTATION="ci.example.com/commit") as running:
        yield running


@pytest.mark.parametrize("digits", [12, 64])
def test_sha_from_an_annotation_set_after_creation(
    by_annotation: Listener, cluster: Cluster, sim: Simulator, digits: int
) -> None:
    sha = (uuid.uuid4().hex * 2)[:digits]
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(by_annotation.get_json, f"/status?sha={sha}&wait=30")
        run = sim.play(SCENARIOS["success"](lines=1), NS).wait(60)
        cluster.api(
            "PATCH",
            f"/apis/tekton.dev/v1/namespaces/{NS}/pipelineruns/{run.name}",
            {"metadata": {"annotations": {"ci.example.com/commit": sha}}},
            content_type="application/merge-patch+json",
        )
        status, body = answer.result(timeout=60)
    assert status == 200 and body["name"] == run.name
