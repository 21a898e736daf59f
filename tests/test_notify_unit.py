"""Pure parts of shared.notify: parsing, ranks, target selection, request shapes, retries, state."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from shared.kube.errors import KubeError, NotFound
from shared.notify.config import ConfigError, RetryPolicy, Settings
from shared.notify.delivery import Deliverer, retry_after_seconds
from shared.notify.events import EventError, parse_event
from shared.notify.hooks import REPLAY_WINDOW, slack_body, verify_signature
from shared.notify.notifier import Notifier
from shared.notify.protocol import Sender
from shared.notify.record import RECORD_ANNOTATION, DeliveryRecord
from shared.notify.runs_api import ApiRuns
from shared.notify.selection import parse_states, select_targets
from shared.notify.senders import (
    KINDS,
    SENDERS,
    HttpRequest,
    HttpResponse,
    already_terminal,
    build_request,
    classify,
    sign,
)
from shared.notify.state import RunStates

EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
T = "dev.tekton.event.pipelinerun.{}.v1"
P = "tekton-pipeline-listener.dev/"
SHA = "4f2a9c1e8b7d6a5f3e2d1c0b9a8f7e6d5c4b3a21"


def data(name: str, annotations: dict[str, str] | None = None, uid: str | None = None) -> dict[str, Any]:
    d = json.loads((EVENTS / f"{name}.json").read_text())
    d["pipelineRun"]["metadata"]["annotations"] = annotations or {}
    if uid:
        d["pipelineRun"]["metadata"]["uid"] = uid
    return d


@pytest.mark.parametrize(
    ("name", "state", "reason", "rank"),
    [
        ("01-queued", "queued", "", 0),
        ("01-started", "started", "Started", 1),
        ("01-running", "running", "Running", 2),
        ("02-unknown-stopping", "unknown", "PipelineRunStopping", 3),
        ("01-successful", "successful", "Completed", 4),
        ("02-failed", "failed", "Failed", 4),
        ("04-failed-cancelled", "failed", "Cancelled", 4),
    ],
)
def test_parse_fixture_events(name: str, state: str, reason: str, rank: int) -> None:
    event = parse_event(T.format(state), "id-1", json.dumps(data(name)).encode())
    assert event is not None
    assert (event.state, event.reason, event.rank) == (state, reason, rank)
    assert event.namespace == "demo" and event.uid and event.name


def test_parse_edge_cases() -> None:
    assert parse_event("dev.tekton.event.taskrun.running.v1", "x", {}) is None
    with pytest.raises(EventError):
        parse_event(T.format("running"), "x", {"taskRun": {}})
    with pytest.raises(EventError):
        parse_event(T.format("running"), "x", b"not json")
    with pytest.raises(EventError):  # deeper than json's recursion limit: was a RecursionError, a 500
        parse_event(T.format("running"), "x", b"[" * 100_000)
    # the payload's condition wins over a contradicting type
    event = parse_event(T.format("running"), "x", data("02-failed"))
    assert event is not None and event.state == "failed"
    pending = data("01-queued")
    pending["pipelineRun"]["status"] = {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "PipelineRunPending"}]
    }
    event = parse_event(T.format("unknown"), "x", pending)
    assert event is not None and event.rank == 0
    assert event.pipeline == "build-and-test"  # from spec.pipelineRef, stable from the first event on


# Any JSON value, for any place in a payload: no API server checked what a CloudEvent carries.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
PAYLOAD_PLACES = [
    ("metadata",),
    ("metadata", "uid"),
    ("metadata", "annotations"),
    ("metadata", "labels"),
    ("spec",),
    ("spec", "params"),
    ("spec", "params", 0),
    ("spec", "params", 0, "name"),
    ("spec", "params", 0, "value"),
    ("spec", "pipelineRef"),
    ("spec", "pipelineRef", "name"),
    ("status",),
    ("status", "conditions"),
    ("status", "conditions", 0),
    ("status", "conditions", 0, "type"),
    ("status", "conditions", 0, "status"),
    ("status", "conditions", 0, "reason"),
    ("status", "startTime"),
]


@hypothesis_settings(max_examples=1000, deadline=None)
@given(st.sampled_from(PAYLOAD_PLACES), JSON_VALUES, st.sampled_from(["running", "failed", "queued"]))
def test_any_json_anywhere_in_a_payload_is_an_event_or_an_event_error(
    place: tuple[str | int, ...], value: Any, state: str
) -> None:
    """Found by the fuzz (`spec.params` a number: a TypeError, a 500 Eventing would redeliver)."""
    payload = data("02-failed")
    run = payload["pipelineRun"]
    run["spec"] |= {"params": [{"name": "revision", "value": SHA}], "pipelineRef": {"name": "build"}}
    parent: Any = run
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] = value
    try:
        event = parse_event(T.format(state), "x", json.dumps(payload).encode())
    except EventError:
        return
    assert event is not None
    assert all(isinstance(v, str) for v in (*event.params.values(), event.pipeline, event.reason, event.start_time))
    assert event.rank >= 0 and event.outcome is not None


ALLOW_ALL = "allow: [{gitlab: ['*'], github: ['*'], slack: ['*'], webhook: ['*']}]\n"


@pytest.fixture(autouse=True)
def allow_all(tmp_path: Path) -> None:
    """Unless a test writes its own config: annotations may choose any target (the allow-list has its own tests)."""
    path = tmp_path / "allow-all.yaml"
    path.write_text(ALLOW_ALL)
    DEFAULT_CONFIG["NOTIFY_CONFIG"] = str(path)


DEFAULT_CONFIG: dict[str, str] = {}


def settings(env: dict[str, str] | None = None) -> Settings:
    base = {"GITLAB_TOKEN": "gl-secret", "GITHUB_TOKEN": "gh-secret", "LISTENER_URL": "https://l.test/"}
    base |= DEFAULT_CONFIG
    return Settings.from_env(base | (env or {}))


def test_target_selection_annotations_over_namespace_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "notify.yaml"
    cfg.write_text(
        "namespaces:\n  demo: {gitlab-project: group/app, slack: team-a, gitlab-url: https://gl.example}\n"
        "slack: {webhooks: {team-a: {url_file: " + str(tmp_path / "slack") + "}}}\n" + ALLOW_ALL
    )
    (tmp_path / "slack").write_text("https://hooks.slack.test/T/B/X\n")
    s = settings({"NOTIFY_CONFIG": str(cfg)})
    run = parse_event(T.format("running"), "x", data("01-running", {P + "sha": SHA, P + "notify-on": "failure"}))
    assert run is not None
    targets = select_targets(run, s, s.config.get())
    assert [(t.kind, t.url or "-", sorted(t.states)) for t in targets] == [
        ("gitlab", "https://gl.example", ["failed"]),
        ("slack", "-", ["failed"]),
    ]
    assert targets[1].secret == "https://hooks.slack.test/T/B/X" and "hooks.slack" not in repr(targets[1])
    # an annotation switches a default off and cannot choose the URL that receives the token
    run = parse_event(
        T.format("running"),
        "x",
        data("01-running", {P + "sha": SHA, P + "slack": "false", P + "gitlab-url": "https://evil.test"}),
    )
    assert run is not None
    assert [(t.kind, t.url) for t in select_targets(run, s, s.config.get())] == [("gitlab", "https://gl.example")]
    # no SHA: commit statuses are left out; a SHA from a param is used
    run = parse_event(T.format("running"), "x", data("01-running", {P + "github-repo": "o/r"}))
    assert run is not None and [t.kind for t in select_targets(run, s, s.config.get())] == ["slack"]
    d = data("01-running", {P + "github-repo": "o/r"})
    d["pipelineRun"]["spec"]["params"].append({"name": "revision", "value": SHA.upper()})
    run = parse_event(T.format("running"), "x", d)
    assert run is not None and select_targets(run, s, s.config.get())[1].sha == SHA


def test_each_target_kind_has_one_sender_that_serves_its_targets(tmp_path: Path) -> None:
    assert sorted(KINDS) == ["github", "gitlab", "slack", "webhook"] and len(set(KINDS)) == len(SENDERS)
    assert all(isinstance(sender, Sender) for sender in SENDERS)
    cfg = tmp_path / "notify.yaml"
    cfg.write_text("webhooks: {audit: {url: https://audit.test/hook}}\n" + ALLOW_ALL)
    s = settings(
        {"NOTIFY_CONFIG": str(cfg), "SLACK_WEBHOOK_URL": "https://hooks.slack.test/x", "WEBHOOK_SECRET_AUDIT": "k"}
    )
    notes = {
        P + "sha": SHA,
        P + "gitlab-project": "g/a",
        P + "github-repo": "o/r",
        P + "slack": "true",
        P + "webhook": "audit",
    }
    run = parse_event(T.format("failed"), "x", data("02-failed", notes))
    assert run is not None
    targets = select_targets(run, s, s.config.get())
    assert [t.kind for t in targets] == ["gitlab", "github", "slack", "webhook"]
    assert all(t.sender.kind == t.kind and not t.error for t in targets)
    requests = [build_request(run, t, "https://l.test/logs/x") for t in targets]
    assert [r.url.split("/")[2] for r in requests] == ["gitlab.com", "api.github.com", "hooks.slack.test", "audit.test"]


def test_parse_states() -> None:
    every = frozenset({"queued"})
    assert parse_states("terminal", every) == {"successful", "failed"}
    assert parse_states("running, failure", every) == {"running", "failed"}
    assert parse_states("bogus", every) == every
    assert parse_states(None, every) == every


def test_request_shapes() -> None:
    s = settings({"GITLAB_URL": "https://gl.test", "WEBHOOK_URL": "https://hook.test/x", "WEBHOOK_SECRET": "k"})
    notes = {P + "gitlab-project": "group/sub/app", P + "github-repo": "o/r", P + "sha": SHA, P + "webhook": "true"}
    long = data("02-failed", notes)
    long["pipelineRun"]["status"]["conditions"][0]["message"] = "x" * 500
    event = parse_event(T.format("failed"), "x", long)
    assert event is not None
    gitlab, github, hook = select_targets(event, s, s.config.get())
    url = "https://l.test/logs/demo/release-run-9fz4q"
    r = build_request(event, gitlab, url)
    assert r.url == f"https://gl.test/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}"
    assert r.headers["PRIVATE-TOKEN"] == "gl-secret" and "gl-secret" not in repr(r)
    assert json.loads(r.body or b"")["state"] == "failed"
    r = build_request(event, github, url)
    body = json.loads(r.body or b"")
    assert r.url == f"https://api.github.com/repos/o/r/statuses/{SHA}"
    assert body["state"] == "failure" and len(body["description"]) == 140 and body["target_url"] == url
    r = build_request(event, hook, url)
    stamp = r.headers["X-Notify-Timestamp"]
    assert r.headers["X-Signature-256"] == sign("k", r.body or b"", stamp)
    assert verify_signature("k", r.body or b"", stamp, r.headers["X-Signature-256"])
    ok = HttpResponse(400, {}, b'{"message":"Cannot transition status via :run from :running"}')
    assert classify(gitlab, ok) == "done" and classify(github, ok) == "fail"
    assert classify(github, HttpResponse(429, {}, b"")) == "retry"
    listing = json.dumps([{"context": github.context, "state": "success", "target_url": url}]).encode()
    assert already_terminal(github, url, HttpResponse(200, {}, listing))
    assert not already_terminal(github, url + "-other", HttpResponse(200, {}, listing))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(answers: list[Any]) -> Any:
    calls: list[float] = []

    def transport(request: HttpRequest, timeout: float) -> HttpResponse:
        calls.append(timeout)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    transport.calls = calls  # type: ignore[attr-defined]
    return transport


def test_backoff_retry_after_and_budget() -> None:
    t = FakeTime()
    policy = RetryPolicy(timeout=5, max_attempts=6, backoff_base=0.5, backoff_max=2, budget=30)
    answers = [ConnectionRefusedError(), HttpResponse(500, {}, b""), HttpResponse(503, {}, b"")]
    answers += [HttpResponse(429, {"Retry-After": "7"}, b""), HttpResponse(201, {}, b"")]
    d = Deliverer(policy, scripted(answers), t.sleep, t.clock)
    result = d.send(HttpRequest("POST", "http://x", {}), lambda r: "ok" if r.status < 300 else "retry")
    assert result.verdict == "ok" and result.attempts == 5
    assert t.sleeps == [0.5, 1.0, 2.0, 7.0]
    # a Retry-After past the budget: give up at once, for Eventing to redeliver later
    t = FakeTime()
    d = Deliverer(policy, scripted([HttpResponse(429, {"Retry-After": "60"}, b"")]), t.sleep, t.clock)
    result = d.send(HttpRequest("POST", "http://x", {}), lambda r: "retry")
    assert (result.verdict, result.attempts, t.sleeps) == ("retry", 1, [])
    # permanent answers are not retried
    d = Deliverer(policy, scripted([HttpResponse(404, {}, b"")]), t.sleep, t.clock)
    assert d.send(HttpRequest("POST", "http://x", {}), lambda r: "fail").attempts == 1
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_lru_forgets_the_least_recently_used_run() -> None:
    states = RunStates(2)
    states.get("a")
    states.get("b")
    states.get("a")
    states.get("c")
    assert "a" in states and "c" in states and "b" not in states


class OneRun:
    """A RunStore holding one run, as the API would return it; records what is saved."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.saved: list[str] = []

    def pipelinerun(self, namespace: str, name: str) -> dict[str, Any] | None:
        meta = self.run["metadata"]
        return self.run if (meta["namespace"], meta["name"]) == (namespace, name) else None

    def taskruns(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    def save(self, run: dict[str, Any], record: Any) -> bool:
        self.saved.append(record.to_json())
        return True


def test_concurrent_duplicates_are_sent_once_and_secrets_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    entered, gate, second = threading.Event(), threading.Event(), threading.Event()
    posts: list[str] = []

    def transport(request: HttpRequest, timeout: float) -> HttpResponse:
        if request.method == "GET":
            return HttpResponse(200, {}, b"[]")
        posts.append(request.url)
        if len(posts) == 1:
            entered.set()
            gate.wait(10)
        else:
            second.set()
        return HttpResponse(201, {}, b"{}")

    s = settings()
    d = data("01-successful", {P + "github-repo": "o/r", P + "sha": SHA}, uid="u-1")
    notifier = Notifier(s, Deliverer(s.retry, transport), runs=OneRun(d["pipelineRun"]))
    caplog.set_level(logging.DEBUG)
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(notifier.handle(T.format("successful"), "1", d).status))
    first.start()
    assert entered.wait(10)
    dup = threading.Thread(target=lambda: results.append(notifier.handle(T.format("successful"), "2", d).status))
    dup.start()
    assert not second.wait(0.5)  # the duplicate waits on the run's lock instead of posting
    gate.set()
    first.join(10)
    dup.join(10)
    assert results == [200, 200] and len(posts) == 1
    assert "gh-secret" not in caplog.text


def test_delivery_record_keys_by_state_and_rank_and_belongs_to_one_run() -> None:
    record = DeliveryRecord("u-1")
    record.add("github|x", "running", 2)
    assert record.delivered("github|x", "running", 2) and record.delivered("github|x", "started", 1)
    assert not record.delivered("github|x", "failed", 4) and not record.delivered("gitlab|x", "running", 2)
    run = {"metadata": {"uid": "u-1", "annotations": {RECORD_ANNOTATION: record.to_json()}}}
    again = DeliveryRecord.of(run)
    assert again.delivered("github|x", "running", 2) and "github|x" not in record.to_json()
    copied = {"metadata": {"uid": "u-2", "annotations": {RECORD_ANNOTATION: record.to_json()}}}
    assert not DeliveryRecord.of(copied).delivered("github|x", "running", 2)
    garbage = {"metadata": {"uid": "u-1", "annotations": {RECORD_ANNOTATION: "{not json"}}}
    assert DeliveryRecord.of(garbage).sent == {}
    other = DeliveryRecord("u-1")
    other.add("slack|team", "failed", 4)
    other.seen(4)
    again.merge(other)
    assert again.rank == 4 and again.delivered("slack|team", "failed", 4) and again.delivered("github|x", "running", 2)


def test_webhook_signatures_carry_a_timestamp_and_expire() -> None:
    body, stamp = b'{"id":"u/failed"}', "1700000000"
    good = sign("k", body, stamp)
    assert verify_signature("k", body, stamp, good, now=1700000000 + REPLAY_WINDOW)
    # replayed after the window, or re-dated without the key, or another body: refused
    assert not verify_signature("k", body, stamp, good, now=1700000000 + REPLAY_WINDOW + 1)
    assert not verify_signature("k", body, "1700000100", good, now=1700000100)
    assert not verify_signature("k", body + b" ", stamp, good, now=1700000000)
    assert not verify_signature("other", body, stamp, good, now=1700000000)
    assert not verify_signature("k", body, "-5", good, now=1700000000)


def test_slack_text_from_the_run_cannot_add_links_mentions_or_break_code_spans() -> None:
    d = data("02-failed", {P + "slack": "true,true,default,TRUE"})
    d["pipelineRun"]["metadata"]["name"] = "run-<https://evil.test|click>"
    d["pipelineRun"]["spec"]["pipelineRef"] = {"name": "x` <!channel> `"}
    d["pipelineRun"]["status"]["conditions"][0]["message"] = "boom <!here> <https://evil.test|details>"
    event = parse_event(T.format("failed"), "x", d)
    assert event is not None
    s = settings({"SLACK_WEBHOOK_URL": "https://hooks.slack.test/x"})
    targets = select_targets(event, s, s.config.get())
    assert [t.kind for t in targets] == ["slack"]  # named four ways, one target
    body = json.dumps(slack_body(event, targets[0], "https://l.test/logs/demo/run|x>y"))
    assert "<!" not in body and "<https://evil" not in body and "|click>" not in body
    assert "&lt;!channel&gt;" in body and "&lt;!here&gt;" in body
    assert "<https://l.test/logs/demo/run%7Cx%3Ey|" in body
    assert "x' &lt;!channel&gt; '" in body  # the pipeline name's backticks cannot end its code span


def test_annotations_choose_only_within_the_allow_list(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "notify.yaml"
    cfg.write_text(
        "namespaces: {demo: {github-repo: example/app, slack: ops}}\n"
        "slack: {webhooks: {ops: {url: x}, team-a: {url: y}}}\n"
        "allow:\n"
        "  - {namespaces: [demo], gitlab: ['group/*'], slack: [team-a]}\n"
        "  - {selector: 'app=release,tier!=test', github: [example/release]}\n"
        "  - {namespaces: [other], github: ['*']}\n"
    )
    (tmp_path / "ops").write_text("https://hooks.slack.test/ops")
    env = {
        "NOTIFY_CONFIG": str(cfg),
        "SLACK_WEBHOOK_URL_OPS": "https://a.test",
        "SLACK_WEBHOOK_URL_TEAM_A": "https://b.test",
    }
    s = settings(env)

    def refused_github() -> float:
        return REGISTRY.get_sample_value("tpl_notify_refused_targets_total", {"kind": "github"}) or 0.0

    before = refused_github()

    def kinds(notes: dict[str, str], labels: dict[str, str] | None = None) -> list[str]:
        d = data("02-failed", {P + "sha": SHA, **notes})
        d["pipelineRun"]["metadata"]["labels"] = labels or {}
        event = parse_event(T.format("failed"), "x", d)
        assert event is not None
        return [
            f"{t.kind}:{t.project or t.repo or t.key.split('|')[1]}" for t in select_targets(event, s, s.config.get())
        ]

    # the namespace's own settings need no rule
    assert kinds({}) == ["github:example/app", "slack:ops"]
    assert kinds({P + "gitlab-project": "group/app", P + "slack": "ops,team-a"}) == [
        "gitlab:group/app",
        "github:example/app",
        "slack:ops",
        "slack:team-a",
    ]
    caplog.set_level(logging.WARNING)
    assert kinds({P + "github-repo": "victim/other", P + "gitlab-project": "evil/app"}) == ["slack:ops"]
    assert "github target 'victim/other' refused" in caplog.text and "gitlab target 'evil/app' refused" in caplog.text
    assert refused_github() == before + 1
    # a rule by label selector
    assert kinds({P + "github-repo": "example/release"}, {"app": "release"}) == ["github:example/release", "slack:ops"]
    assert kinds({P + "github-repo": "example/release"}, {"app": "release", "tier": "test"}) == ["slack:ops"]
    cfg.write_text("allow: [{githubb: [x]}]\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        settings({"NOTIFY_CONFIG": str(cfg)}).config.get()


def test_a_resource_the_api_does_not_serve_is_not_taken_for_a_missing_run() -> None:
    class Kube:
        def __init__(self, detail: str) -> None:
            self.detail = detail

        def get_object(self, *args: Any) -> dict[str, Any]:
            raise NotFound(404, "not found", self.detail)

    assert ApiRuns(Kube('pipelineruns.tekton.dev "x" not found')).pipelinerun("ns", "x") is None  # type: ignore[arg-type]
    with pytest.raises(KubeError) as e:  # a restarting apiserver, before its CRD handler serves the resource
        ApiRuns(Kube("the server could not find the requested resource")).pipelinerun("ns", "x")  # type: ignore[arg-type]
    assert e.value.status == 503


def test_the_failed_step_is_the_one_the_failure_digest_names() -> None:
    from shared.notify.tasks import failed_step

    def taskrun(*steps: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"steps": list(steps)}}

    build = {"name": "build", "terminated": {"exitCode": 2, "reason": "Error"}}
    assert failed_step(taskrun({"name": "fetch", "terminated": {"exitCode": 0}}, build)) == "step build exited 2"
    # a failure `onError: continue` let pass, and steps skipped after the failed one, are not it
    lint = {"name": "lint", "terminated": {"exitCode": 1}, "terminationReason": "Continued"}
    after = {"name": "push", "terminated": {"exitCode": 1}, "terminationReason": "Skipped"}
    assert failed_step(taskrun(lint, build, after)) == "step build exited 2"
    assert failed_step(taskrun(lint, {"name": "pull", "waiting": {"reason": "ImagePullBackOff"}})) == ""


def test_a_configmap_volume_update_is_read_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """The kubelet updates a ConfigMap volume by a new timestamped directory and an atomic swap of
    `..data`; the new file may have the old one's size and mtime. A missing file is an error named
    in the answer, and the file is read again once it is back."""
    volume = tmp_path / "volume"
    volume.mkdir()

    def version(name: str, project: str) -> Path:
        directory = volume / name
        directory.mkdir()
        (directory / "notify.yaml").write_text(f"namespaces:\n  demo: {{gitlab-project: {project}}}\n")
        os.utime(directory / "notify.yaml", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
        return directory

    def swap(directory: Path) -> None:
        (volume / "..data_tmp").symlink_to(directory.name)
        os.replace(volume / "..data_tmp", volume / "..data")

    swap(version("..2026_12_04_01", "group/aaa"))
    (volume / "notify.yaml").symlink_to("..data/notify.yaml")
    source = settings({"NOTIFY_CONFIG": str(volume / "notify.yaml")}).config
    assert source.get().namespace_defaults("demo")["gitlab-project"] == "group/aaa"

    swap(version("..2026_12_04_02", "group/bbb"))
    assert source.get().namespace_defaults("demo")["gitlab-project"] == "group/bbb"

    os.replace(volume / "..data", volume / "..data_gone")
    with pytest.raises(ConfigError, match=r"cannot read NOTIFY_CONFIG .*notify\.yaml: No such file"):
        source.get()
    os.replace(volume / "..data_gone", volume / "..data")
    assert source.get().namespace_defaults("demo")["gitlab-project"] == "group/bbb"
