"""The real notify function (functions-framework subprocess) against stand-ins for GitLab, GitHub, Slack, a webhook.

Every request the stand-ins get is checked against the APIs' documented shapes (paths, methods,
headers, JSON bodies); the stand-in GitLab enforces GitLab's commit-status transition rule.
The runs live in the sandbox's real apiserver: the function reads them there as the
ServiceAccount of service.yaml's notify Role (a real token from the TokenRequest API), and each
test moves a run through its states with /status writes before sending the event Tekton would.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.client
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from kubernetes import client

from shared.kube.client import Kube
from shared.notify.lease import Lease
from tests.sandbox import scenarios
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster, Identity, collection_path, free_port
from tests.sandbox.simulator import Simulator
from tests.support import LoopbackServer, grant_listener, reply, wait_for

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "fixtures" / "events"
GITLAB_TOKEN = "glpat-test-token-never-logged"
GITHUB_TOKEN = "ghp_test_token_never_logged"
WEBHOOK_SECRET = "webhook-hmac-key"
SLACK_PATH = "/slack/services/T000/B000/XXXXXXXX"
LISTENER = "https://listener.example.test"
SHA = "4f2a9c1e8b7d6a5f3e2d1c0b9a8f7e6d5c4b3a21"
PREFIX = "tekton-pipeline-listener.dev/"
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled"}
GITHUB_STATES = {"pending", "success", "failure", "error"}


@dataclass
class Seen:
    kind: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0


@dataclass
class StandIns:
    """GitLab, GitHub, Slack and a webhook receiver on one local port, told apart by path prefix."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # kind -> queued scripted answers: (status, headers, body) or "hang"
    script: dict[str, list[Any]] = field(default_factory=dict)
    arrivals: queue.Queue[Seen] = field(default_factory=queue.Queue)
    release: threading.Event = field(default_factory=threading.Event)
    gitlab_statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    github_statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, kind: str, method: str = "POST", sha: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.kind == kind and s.method == method and (sha is None or sha in s.path)]

    # --- the APIs ---------------------------------------------------------------------------
    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(handler.path)
        path = url.path
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        kind = path.split("/")[1] if path.count("/") > 1 else path.strip("/")
        kind = {"hook": "webhook"}.get(kind, kind)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self.errors.append(f"{kind}: body is not JSON")
        seen = Seen(
            kind,
            handler.command,
            path,
            urllib.parse.parse_qs(url.query),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            time.monotonic(),
        )
        with self.lock:
            self.seen.append(seen)
            scripted = self.script.get(kind, [])
            step = scripted.pop(0) if scripted and handler.command == "POST" else None
        self.arrivals.put(seen)
        check = getattr(self, f"check_{kind}", None)
        if check is None:
            self.errors.append(f"unexpected request {handler.command} {path}")
            return 404, {}, b""
        check(seen, raw)
        if step == "hang":
            self.release.wait(10)
            return 200, {}, b""
        if step is not None:
            seen.status = step[0]
            return step
        status, headers, out = getattr(self, f"serve_{kind}")(seen)
        seen.status = status
        return status, headers, out

    def check_gitlab(self, s: Seen, raw: bytes) -> None:
        if s.headers.get("private-token") != GITLAB_TOKEN:
            self.errors.append("gitlab: PRIVATE-TOKEN missing or wrong")
        parts = s.path.split("/")
        if s.method == "POST":
            # /gitlab/api/v4/projects/:id/statuses/:sha
            if parts[2:5] != ["api", "v4", "projects"] or parts[6] != "statuses" or len(parts) != 8:
                self.errors.append(f"gitlab: bad path {s.path}")
            if not s.headers.get("content-type", "").startswith("application/json"):
                self.errors.append("gitlab: not JSON")
            b = s.body or {}
            if b.get("state") not in GITLAB_STATES or not isinstance(b.get("name"), str):
                self.errors.append(f"gitlab: bad body {b}")
            if set(b) - {"state", "name", "target_url", "description", "ref", "pipeline_id", "coverage"}:
                self.errors.append(f"gitlab: unknown fields {set(b)}")
            if len(b.get("description", "")) > 255:
                self.errors.append("gitlab: description too long")
        elif s.method == "GET":
            if (
                parts[2:5] != ["api", "v4", "projects"]
                or parts[6:8] != ["repository", "commits"]
                or parts[9] != "statuses"
            ):
                self.errors.append(f"gitlab: bad GET path {s.path}")
        else:
            self.errors.append(f"gitlab: method {s.method}")

    def serve_gitlab(self, s: Seen) -> tuple[int, dict[str, str], bytes]:
        parts = s.path.split("/")
        project, sha = urllib.parse.unquote(parts[5]), parts[7] if s.method == "POST" else parts[8]
        with self.lock:
            statuses = self.gitlab_statuses.setdefault((project, sha), [])
            if s.method == "GET":
                name = (s.query.get("name") or [None])[0]
                latest: dict[str, dict[str, Any]] = {}
                for st in statuses:
                    latest[st["name"]] = st
                found = [st for st in latest.values() if name is None or st["name"] == name]
                return 200, {"Content-Type": "application/json"}, json.dumps(found).encode()
            b = s.body
            current = next((st for st in reversed(statuses) if st["name"] == b["name"]), None)
            if current is None or current["status"] in ("success", "failed", "canceled"):
                current = {"id": next(self.ids), "name": b["name"], "status": "created", "sha": sha}
                statuses.append(current)
            want, now = b["state"], current["status"]
            event, allowed = {
                "pending": ("enqueue", {"created"}),
                "running": ("run", {"created", "pending"}),
                "success": ("success", {"created", "pending", "running"}),
                "failed": ("drop", {"created", "pending", "running"}),
                "canceled": ("cancel", {"created", "pending", "running"}),
            }[want]
            if now not in allowed:
                msg = f"Cannot transition status via :{event} from :{now}"
                msg += f' (Reason(s): Status cannot transition via "{event}")'
                return 400, {"Content-Type": "application/json"}, json.dumps({"message": msg}).encode()
            current.update(status=want, target_url=b.get("target_url"), description=b.get("description"))
            return 201, {"Content-Type": "application/json"}, json.dumps(current).encode()

    def check_github(self, s: Seen, raw: bytes) -> None:
        h = s.headers
        if h.get("authorization") != f"Bearer {GITHUB_TOKEN}":
            self.errors.append("github: Authorization missing or wrong")
        if h.get("accept") != "application/vnd.github+json" or h.get("x-github-api-version") != "2022-11-28":
            self.errors.append("github: Accept / X-GitHub-Api-Version")
        if not h.get("user-agent"):
            self.errors.append("github: no User-Agent")
        parts = s.path.split("/")
        if s.method == "POST":
            if parts[2] != "repos" or parts[5] != "statuses" or len(parts) != 7:
                self.errors.append(f"github: bad path {s.path}")
            b = s.body or {}
            if b.get("state") not in GITHUB_STATES or not isinstance(b.get("context"), str):
                self.errors.append(f"github: bad body {b}")
            if len(b.get("description", "")) > 140:
                self.errors.append("github: description over 140 characters")
            if set(b) - {"state", "target_url", "description", "context"}:
                self.errors.append(f"github: unknown fields {set(b)}")
        elif s.method == "GET":
            if parts[2] != "repos" or parts[5] != "commits" or parts[7] != "statuses":
                self.errors.append(f"github: bad GET path {s.path}")
        else:
            self.errors.append(f"github: method {s.method}")

    def serve_github(self, s: Seen) -> tuple[int, dict[str, str], bytes]:
        parts = s.path.split("/")
        repo = f"{parts[3]}/{parts[4]}"
        with self.lock:
            if s.method == "GET":
                listing = list(reversed(self.github_statuses.get((repo, parts[6]), [])))
                return 200, {"Content-Type": "application/json"}, json.dumps(listing).encode()
            entry = dict(s.body, id=next(self.ids))
            self.github_statuses.setdefault((repo, parts[6]), []).append(entry)
            return 201, {"Content-Type": "application/json"}, json.dumps(entry).encode()

    def check_slack(self, s: Seen, raw: bytes) -> None:
        if s.method != "POST" or s.path != SLACK_PATH:
            self.errors.append(f"slack: {s.method} {s.path}")
        b = s.body or {}
        if not isinstance(b.get("text"), str) or not isinstance(b.get("blocks"), list):
            self.errors.append("slack: text/blocks missing")
        for block in b.get("blocks", []):
            if block.get("type") not in ("section", "context", "header", "divider", "actions"):
                self.errors.append(f"slack: block type {block.get('type')}")

    def serve_slack(self, s: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/html"}, b"ok"

    def check_webhook(self, s: Seen, raw: bytes) -> None:
        if s.method != "POST" or s.path != "/hook":
            self.errors.append(f"webhook: {s.method} {s.path}")
        stamp = s.headers.get("x-notify-timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            self.errors.append("webhook: X-Notify-Timestamp missing or outside the replay window")
        signed = stamp.encode() + b"." + raw
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(s.headers.get("x-signature-256", ""), expected):
            self.errors.append("webhook: X-Signature-256 does not match timestamp + body")
        b = s.body or {}
        if not {"id", "type", "state", "pipelineRun"} <= set(b):
            self.errors.append(f"webhook: body {b}")

    def serve_webhook(self, s: Seen) -> tuple[int, dict[str, str], bytes]:
        return 204, {}, b""


@pytest.fixture(scope="module")
def standins() -> Iterator[StandIns]:
    state = StandIns()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            status, headers, body = state.answer(self)
            reply(self, status, body, headers)

        do_GET = do_POST = do_PUT = _any  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    with LoopbackServer(Handler) as server:
        state.port = server.port
        yield state
        state.release.set()


class Function:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        full = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.metrics_port = int(env.get("METRICS_PORT") or free_port())
        full.update(env, PORT=str(self.port), PYTHONUNBUFFERED="1", GUNICORN_LOG_LEVEL="info", PYTHONPATH=str(ROOT))
        full["METRICS_PORT"] = str(self.metrics_port)
        exe = Path(sys.executable).parent / "functions-framework"
        cmd = [str(exe), "--source", "functions/notify/main.py", "--target", "notify", "--signature-type", "cloudevent"]
        cmd += ["--port", str(self.port), "--host", "127.0.0.1"]
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:  # bounded poll until the socket answers
            if self.proc.poll() is not None:
                raise RuntimeError(f"function exited: {log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                threading.Event().wait(0.05)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> str:
        """The Prometheus exposition on METRICS_PORT (shared/metrics)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


NOTIFY_SA = "tekton-listener-notify"
MERGE = "application/merge-patch+json"


def notify_rbac() -> dict[str, dict[str, Any]]:
    """notify's ServiceAccount, Role and RoleBinding from service.yaml, by kind."""
    docs = yaml.safe_load_all((ROOT / "service.yaml").read_text())
    return {d["kind"]: d for d in docs if d and d["metadata"]["name"] == NOTIFY_SA}


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}


@pytest.fixture(scope="module")
def notify_identity(cluster: Cluster) -> Identity:
    """A real token of notify's ServiceAccount (TokenRequest), as the pod would have mounted."""
    cluster.apply(in_namespace(notify_rbac()["ServiceAccount"], LISTENER_NAMESPACE))
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}}
    path = f"/api/v1/namespaces/{LISTENER_NAMESPACE}/serviceaccounts/{NOTIFY_SA}/token"
    token = cluster.api("POST", path, request)["status"]["token"]
    return Identity(token, f"system:serviceaccount:{LISTENER_NAMESPACE}:{NOTIFY_SA}")


def bind_notify(cluster: Cluster, identity: Identity, namespace: str) -> None:
    """Binds service.yaml's notify Role in `namespace`, and waits until the authorizer applies it."""
    cluster.ensure_namespace(namespace)
    rbac = notify_rbac()
    cluster.apply(in_namespace(rbac["Role"], namespace))
    binding = in_namespace(rbac["RoleBinding"], namespace)
    binding["subjects"] = [{"kind": "ServiceAccount", "name": NOTIFY_SA, "namespace": LISTENER_NAMESPACE}]
    cluster.apply(binding)
    cluster.wait_allowed(identity, f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns", "the notify RoleBinding")


@dataclass
class Runs:
    """PipelineRuns in the real apiserver, moved through the fixtures' states as Tekton would."""

    cluster: Cluster
    namespace: str

    def path(self, name: str = "", sub: str = "") -> str:
        path = f"/apis/tekton.dev/v1/namespaces/{self.namespace}/pipelineruns"
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def create(self, fixture: str, annotations: dict[str, str], name: str | None = None) -> dict[str, Any]:
        """A run shaped like the fixture's (name + a suffix, pipelineRef, params, labels), in the fixture's state."""
        src = json.loads((EVENTS / f"{fixture}.json").read_text())["pipelineRun"]
        spec = {k: v for k, v in src["spec"].items() if k in ("pipelineRef", "params")}
        meta = {
            "name": name or f"{src['metadata']['name']}-{uuid.uuid4().hex[:6]}",
            "annotations": annotations,
            "labels": src["metadata"].get("labels") or {},
        }
        self.cluster.api(
            "POST", self.path(), {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": meta, "spec": spec}
        )
        return self.step(meta["name"], fixture)

    def step(self, name: str, fixture: str) -> dict[str, Any]:
        """Writes the fixture's status (condition, times) to the run; the event data Tekton would send."""
        status = json.loads((EVENTS / f"{fixture}.json").read_text())["pipelineRun"].get("status") or {}
        status = {k: v for k, v in status.items() if k in ("conditions", "startTime", "completionTime")}
        if status:
            self.cluster.api("PATCH", self.path(name, "status"), {"status": status}, content_type=MERGE)
        return self.data(name)

    def data(self, name: str) -> dict[str, Any]:
        return {"pipelineRun": self.cluster.api("GET", self.path(name))}

    def record(self, name: str) -> dict[str, Any]:
        notes = self.cluster.api("GET", self.path(name))["metadata"].get("annotations") or {}
        return json.loads(notes.get("tekton-pipeline-listener.dev/notified") or "{}")


def function_env(standins: StandIns, tmp: Path, kubeconfig: Path) -> dict[str, str]:
    base = f"http://127.0.0.1:{standins.port}"
    token_file = tmp / "gitlab-token"
    token_file.write_text(GITLAB_TOKEN + "\n")
    return {
        "KUBECONFIG": str(kubeconfig),
        "LISTENER_URL": LISTENER,
        "GITLAB_URL": f"{base}/gitlab",
        "GITLAB_TOKEN_FILE": str(token_file),
        "GITHUB_API_URL": f"{base}/github",
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "SLACK_WEBHOOK_URL": f"{base}{SLACK_PATH}",
        "WEBHOOK_URL": f"{base}/hook",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "NOTIFY_HTTP_TIMEOUT_SECONDS": "1",
        "NOTIFY_MAX_ATTEMPTS": "4",
        "NOTIFY_BACKOFF_BASE_SECONDS": "0.05",
        "NOTIFY_BACKOFF_MAX_SECONDS": "0.2",
        "NOTIFY_RETRY_BUDGET_SECONDS": "6",
    }


@pytest.fixture(scope="module")
def runs(cluster: Cluster, notify_identity: Identity) -> Runs:
    namespace = f"notify-{uuid.uuid4().hex[:8]}"
    bind_notify(cluster, notify_identity, namespace)
    return Runs(cluster, namespace)


# What the module's config lets runs of `runs.namespace` notify.
ALLOW = {"gitlab": ["group/app", "42"], "github": ["example/*"], "slack": ["default"], "webhook": ["default"]}


@pytest.fixture(scope="module")
def env(
    standins: StandIns,
    cluster: Cluster,
    notify_identity: Identity,
    runs: Runs,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("notify")
    kubeconfig = cluster.write_kubeconfig(tmp / "kubeconfig", notify_identity)
    config = tmp / "notify.yaml"
    config.write_text(yaml.safe_dump({"allow": [{"namespaces": [runs.namespace], **ALLOW}]}))
    return function_env(standins, tmp, kubeconfig) | {"NOTIFY_CONFIG": str(config)}


@pytest.fixture(scope="module")
def function(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Function]:
    fn = Function(env, tmp_path_factory.mktemp("notify-log") / "function.log")
    yield fn
    fn.stop()
    assert GITLAB_TOKEN not in fn.log_path.read_text() and GITHUB_TOKEN not in fn.log_path.read_text()


def post(fn: Function, state: str, data: dict[str, Any], mode: str = "binary") -> tuple[int, Any]:
    meta = data["pipelineRun"]["metadata"]
    attributes = {
        "type": f"dev.tekton.event.pipelinerun.{state}.v1",
        "source": f"/apis/tekton.dev/v1/namespaces/{meta.get('namespace')}/PipelineRun/{meta['name']}",
        "subject": meta["name"],
        "id": str(uuid.uuid4()),
        "datacontenttype": "application/json",
    }
    event = CloudEvent(attributes, copy.deepcopy(data))
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    request = urllib.request.Request(fn.url("/"), data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(
                resp.read() or b"null"
            ) if resp.headers.get_content_type() == "application/json" else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


ALL = {
    f"{PREFIX}gitlab-project": "group/app",
    f"{PREFIX}github-repo": "example/app",
    f"{PREFIX}sha": SHA,
    f"{PREFIX}slack": "true",
    f"{PREFIX}webhook": "true",
}


def fresh_sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


@pytest.fixture
def sha(standins: StandIns) -> Iterator[str]:
    """A fresh commit per test; the stand-ins' checks must hold for every request."""
    yield fresh_sha()
    assert standins.errors == []


def states_of(standins: StandIns, kind: str, sha: str, field_name: str = "state") -> list[str]:
    return [s.body[field_name] for s in standins.of(kind, sha=sha)]


def hooks_of(standins: StandIns, uid: str) -> list[Seen]:
    return [s for s in standins.of("webhook") if s.body["pipelineRun"]["uid"] == uid]


def uid_of(data: dict[str, Any]) -> str:
    return data["pipelineRun"]["metadata"]["uid"]


def test_health_probes_answer_get(function: Function) -> None:
    for path in ("/health/liveness", "/health/readiness"):
        with urllib.request.urlopen(function.url(path), timeout=10) as resp:
            assert resp.status == 200
            assert json.loads(resp.read()) == {"status": "ok"}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(function.url("/"), timeout=10)
    assert e.value.code == 405


def test_a_run_from_queued_to_successful_in_binary_mode(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = dict(ALL, **{f"{PREFIX}sha": sha})
    data = runs.create("01-queued", notes)
    name, uid, ns = data["pipelineRun"]["metadata"]["name"], uid_of(data), runs.namespace
    assert post(function, "queued", data)[0] == 200
    for fixture, state in [
        ("01-started", "started"),
        ("01-running", "running"),
        ("01-running-later", "running"),
        ("01-successful", "successful"),
    ]:
        status, _ = post(function, state, runs.step(name, fixture))
        assert status == 200, state
    gitlab = standins.of("gitlab", sha=sha)
    assert [(s.body["state"], s.status) for s in gitlab] == [
        ("pending", 201),
        ("pending", 400),  # GitLab refuses pending->pending: counted as done, not retried
        ("running", 201),
        ("success", 201),
    ]
    first = gitlab[0]
    assert first.path == f"/gitlab/api/v4/projects/group%2Fapp/statuses/{sha}"
    assert first.body["name"] == f"tekton/{ns}/build-and-test"
    assert first.body["target_url"] == f"{LISTENER}/logs/{ns}/{name}"
    assert gitlab[-1].body["description"].startswith("Succeeded (Completed: Tasks Completed: 3")
    assert states_of(standins, "github", sha) == ["pending", "pending", "pending", "success"]
    assert {s.body["context"] for s in standins.of("github", sha=sha)} == {f"tekton/{ns}/build-and-test"}
    hooks = hooks_of(standins, uid)
    assert [h.body["state"] for h in hooks] == ["queued", "started", "running", "successful"]
    assert hooks[-1].body["sha"] == sha and hooks[-1].headers["x-notify-delivery"] == f"{uid}/successful"
    slack = [s for s in standins.of("slack") if name in s.body["text"]]
    assert len(slack) == 1 and "succeeded" in slack[0].body["text"]  # Slack: terminal states by default
    record = runs.record(name)
    assert record["uid"] == uid and record["rank"] == 4 and len(record["sent"]) == 4


def test_structured_mode_failed_run_with_stopping(function: Function, standins: StandIns, runs: Runs, sha: str) -> None:
    notes = dict(ALL, **{f"{PREFIX}sha": sha, f"{PREFIX}slack-notify-on": "failure"})
    data = runs.create("02-running", notes)
    name = data["pipelineRun"]["metadata"]["name"]
    assert post(function, "running", data, mode="structured")[0] == 200
    for fixture, state in [("02-unknown-stopping", "unknown"), ("02-failed", "failed")]:
        assert post(function, state, runs.step(name, fixture), mode="structured")[0] == 200
    # `unknown` (stopping) ranks above running: sent to GitHub as pending; GitLab already shows running
    assert [(s.body["state"], s.status) for s in standins.of("gitlab", sha=sha)] == [
        ("running", 201),
        ("running", 400),
        ("failed", 201),
    ]
    github = standins.of("github", sha=sha)
    assert [s.body["state"] for s in github] == ["pending", "pending", "failure"]
    assert github[1].body["description"] == "In progress (PipelineRunStopping)"
    assert github[0].body["context"] == f"tekton/{runs.namespace}/{name}"
    slack = [s for s in standins.of("slack") if name in s.body["text"]]
    assert len(slack) == 1 and slack[0].body["text"].startswith(":x:")


def test_cancelled_and_timed_out_runs(function: Function, standins: StandIns, runs: Runs, sha: str) -> None:
    notes = {f"{PREFIX}gitlab-project": "42", f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha}
    assert post(function, "failed", runs.create("04-failed-cancelled", notes))[0] == 200
    assert states_of(standins, "gitlab", sha) == ["canceled"]
    assert standins.of("gitlab", sha=sha)[0].path.startswith("/gitlab/api/v4/projects/42/statuses/")
    assert states_of(standins, "github", sha) == ["error"]
    sha2 = fresh_sha()
    notes[f"{PREFIX}sha"] = sha2
    assert post(function, "failed", runs.create("05-failed-timeout", notes))[0] == 200
    assert states_of(standins, "gitlab", sha2) == ["failed"]
    assert states_of(standins, "github", sha2) == ["failure"]


def test_duplicates_and_out_of_order_events_are_dropped(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = {f"{PREFIX}gitlab-project": "group/app", f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha}
    notes[f"{PREFIX}webhook"] = "true"
    running = runs.create("01-running", notes)
    name = running["pipelineRun"]["metadata"]["name"]
    assert post(function, "running", running)[0] == 200
    assert post(function, "successful", runs.step(name, "01-successful"))[0] == 200
    # after a controller restart: the same states again (new ids), and late lower ones
    for data, state in [(runs.data(name), "successful"), (running, "running"), (running, "started")]:
        status, _ = post(function, state, data, mode="structured")
        assert status == 200
    assert states_of(standins, "gitlab", sha) == ["running", "success"]
    assert states_of(standins, "github", sha) == ["pending", "success"]
    assert [h.body["state"] for h in hooks_of(standins, uid_of(running))] == ["running", "successful"]


def test_5xx_retried_and_a_failing_target_does_not_block_others(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = dict(ALL, **{f"{PREFIX}sha": sha})
    err = (500, {"Content-Type": "application/json"}, b'{"message":"500 Internal Server Error"}')
    standins.script["gitlab"] = [err, err]
    standins.script["github"] = [(503, {}, b"")] * 4  # every attempt of this event fails
    slack_before = len(standins.of("slack"))
    data = runs.create("02-failed", notes)
    status, body = post(function, "failed", data)
    assert status == 502  # Eventing retries / dead-letters
    assert list(body["failed"]) == ["github#1"]
    assert [s.status for s in standins.of("gitlab", sha=sha)] == [500, 500, 201]
    assert [s.status for s in standins.of("github", sha=sha)] == [503] * 4
    assert len(standins.of("slack")) == slack_before + 1
    assert len(hooks_of(standins, uid_of(data))) == 1
    # Eventing redelivers (same event, new delivery): only GitHub is sent again
    status, _ = post(function, "failed", data)
    assert status == 200
    assert [s.status for s in standins.of("github", sha=sha)] == [503] * 4 + [201]
    assert len(standins.of("gitlab", sha=sha)) == 3
    assert len(standins.of("slack")) == slack_before + 1
    assert len(hooks_of(standins, uid_of(data))) == 1


def test_429_retry_after_is_honoured(function: Function, standins: StandIns, runs: Runs, sha: str) -> None:
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha}
    standins.script["github"] = [(429, {"Retry-After": "1"}, b'{"message":"rate limited"}')]
    assert post(function, "running", runs.create("01-running", notes))[0] == 200
    first, second = standins.of("github", sha=sha)
    assert (first.status, second.status) == (429, 201)
    assert second.at - first.at >= 0.9  # waited Retry-After (1 s), not the 0.05 s backoff


def test_a_hanging_target_times_out_and_is_retried(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    standins.script["webhook"] = ["hang"]
    data = runs.create("04-running", {f"{PREFIX}webhook": "true"})
    assert post(function, "running", data)[0] == 200
    hooks = hooks_of(standins, uid_of(data))
    assert len(hooks) == 2 and hooks[1].status == 204
    assert hooks[1].at - hooks[0].at >= 0.9  # NOTIFY_HTTP_TIMEOUT_SECONDS=1


def test_permanent_failure_answers_422_without_retrying(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}gitlab-project": "group/app", f"{PREFIX}sha": sha}
    standins.script["github"] = [(401, {}, b'{"message":"Bad credentials"}')]
    status, body = post(function, "successful", runs.create("01-successful", notes))
    assert status == 422
    assert body["failed"] == {"github#1": {"verdict": "fail", "status": 401}}
    assert len(standins.of("github", sha=sha)) == 1
    assert states_of(standins, "gitlab", sha) == ["success"]


def test_unusable_payload_is_400_and_foreign_events_are_ignored(function: Function) -> None:
    status, _ = post(function, "running", {"pipelineRun": {"metadata": {"name": "x"}}})
    assert status == 400
    event = CloudEvent({"type": "dev.tekton.event.taskrun.running.v1", "source": "/x", "id": "1"}, {"taskRun": {}})
    headers, body = to_binary(event)
    with urllib.request.urlopen(urllib.request.Request(function.url("/"), body, headers), timeout=10) as resp:
        assert resp.status == 200


def test_what_is_no_cloudevent_gets_a_short_json_error_that_echoes_nothing(function: Function) -> None:
    secret = "Bearer not-to-be-echoed-" + uuid.uuid4().hex
    for headers, body in [
        ({"Content-Type": "application/json", "Authorization": secret}, b"{not json"),
        ({"Content-Type": "application/cloudevents+json", "Authorization": secret}, b'{"specversion": "1.0"}'),
        ({"Content-Type": "text/plain", "Authorization": secret}, b"\xff\xfe" * 100),
    ]:
        request = urllib.request.Request(function.url("/"), data=body, headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        answer = e.value.read()
        assert 400 <= e.value.code < 500 and e.value.headers.get_content_type() == "application/json"
        assert secret.encode() not in answer and b"not json" not in answer and set(json.loads(answer)) == {"error"}


def test_json_that_is_no_cloudevent_or_has_a_non_string_type_is_400_without_a_traceback(function: Function) -> None:
    """Found by tests/test_fuzz_notify.py: each of these was a 500 with a traceback in the log (the
    framework's background-event fallback, the SDK's unmarshalling, notify reading `type`)."""
    binary = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/x", "ce-type": "x"}
    structured = {"Content-Type": "application/cloudevents+json"}
    event = {"specversion": "1.0", "id": "1", "source": "/x"}
    cases = [
        ({"Content-Type": "application/json"}, b'{"context": 1}'),
        ({"Content-Type": "application/json"}, b"[1, 2]"),
        ({"Content-Type": "application/json"}, b'"1.0"'),
        (dict(binary, **{"ce-specversion": "2.0", "Content-Type": "application/json"}), b"[1]"),
        (dict(binary, **{"Content-Type": "application/json"}), b"[" * 100_000),
        ({"Content-Type": "text/plain", **binary}, b"[" * 100_000),
        (structured, b"[" * 100_000),
        (structured, json.dumps(dict(event, type=1)).encode()),
        # Binary headers with the structured content type, and a body that is no JSON object: the
        # SDK read it as structured and raised AttributeError (a CI run, 2026-12-04).
        *((dict(binary, **structured), body) for body in (b'"1.0"', b"[1, 2]", b"1", b"null", b"true")),
        (structured, json.dumps(dict(event, type="dev.tekton.event.pipelinerun.running.v1", id=["1"])).encode()),
    ]
    before = function.log_path.read_text().count("Traceback")
    for headers, body in cases:
        request = urllib.request.Request(function.url("/"), data=body, headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 400 and e.value.headers.get_content_type() == "application/json", (headers, body[:40])
        assert set(json.loads(e.value.read())) == {"error"}
    assert function.log_path.read_text().count("Traceback") == before


def test_an_event_id_cannot_write_a_log_line_of_its_own(function: Function) -> None:
    """A rejected event's id is logged: a line break in it is escaped, not written."""
    fake = f"ERROR forged-{uuid.uuid4().hex}"
    event = {
        "specversion": "1.0",
        "id": f"1\n{fake} id",
        "source": "/x",
        "type": "dev.tekton.event.pipelinerun.running.v1",
        "data": {"pipelineRun": {"metadata": {"name": "x"}}},
    }
    request = urllib.request.Request(
        function.url("/"), json.dumps(event).encode(), {"Content-Type": "application/cloudevents+json"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
    assert e.value.code == 400
    log = function.log_path.read_text()
    assert f"\\n{fake} id" in log  # logged, escaped
    assert not [line for line in log.splitlines() if line.startswith(fake)]


# -- forged events: the event is a hint, the API is the truth --------------------------------------
def forged(data: dict[str, Any], **meta: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out["pipelineRun"]["metadata"].update(meta)
    return out


def test_a_forged_success_posts_nothing_and_the_real_failure_is_posted(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha, f"{PREFIX}webhook": "true"}
    running = runs.create("02-running", notes)
    name = running["pipelineRun"]["metadata"]["name"]
    assert post(function, "running", running)[0] == 200
    # the attacker's copy: state successful, a condition that says so, and another repository
    fake = json.loads((EVENTS / "01-successful.json").read_text())["pipelineRun"]
    lie = forged(running, annotations={**notes, f"{PREFIX}github-repo": "victim/other"})
    lie["pipelineRun"]["status"] = fake["status"]
    status, body = post(function, "successful", lie)
    assert status == 200 and body["state"] == "running" and body["delivered"] == []
    assert states_of(standins, "github", sha) == ["pending"]
    assert not [s for s in standins.of("github") if "victim" in s.path]
    # the real failure, afterwards, is posted
    status, body = post(function, "failed", runs.step(name, "02-failed"))
    assert status == 200 and body["state"] == "failed"
    assert states_of(standins, "github", sha) == ["pending", "failure"]
    assert [h.body["state"] for h in hooks_of(standins, uid_of(running))] == ["running", "failed"]


def test_events_for_unknown_runs_or_other_uids_post_nothing(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha, f"{PREFIX}webhook": "true"}
    real = runs.create("01-successful", notes)
    before = len(standins.seen)
    no_such = forged(real, name="does-not-exist", uid=str(uuid.uuid4()))
    status, body = post(function, "successful", no_such)
    assert (status, body["ignored"]) == (200, "no such run")
    other_uid = forged(real, uid=str(uuid.uuid4()))
    status, body = post(function, "successful", other_uid)
    assert (status, body["ignored"]) == (200, "the run's uid is not the event's")
    other_ns = forged(real, namespace="kube-system")
    status, body = post(function, "successful", other_ns)  # notify's Role is not bound there
    assert (status, body["error"]) == (503, "the run cannot be read")  # as a restarting apiserver's 403
    assert len(standins.seen) == before
    assert "no such run, nothing sent" in function.log_path.read_text()
    assert post(function, "successful", real)[0] == 200
    assert states_of(standins, "github", sha) == ["success"]


def test_a_restart_between_two_events_reposts_nothing(
    standins: StandIns, runs: Runs, env: dict[str, str], tmp_path: Path, sha: str
) -> None:
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}gitlab-project": "group/app", f"{PREFIX}sha": sha}
    notes[f"{PREFIX}webhook"] = "true"
    running = runs.create("01-running", notes)
    name = running["pipelineRun"]["metadata"]["name"]
    first = Function(env, tmp_path / "first.log")
    try:
        assert post(first, "running", running)[0] == 200
        assert post(first, "successful", runs.step(name, "01-successful"))[0] == 200
    finally:
        first.stop()
    posted = len(standins.seen)
    second = Function(env, tmp_path / "second.log")  # scale-to-zero: a new pod, empty memory
    try:
        # Tekton's controller restarted too: the final event again, and a late running one
        assert post(second, "successful", runs.data(name))[0] == 200
        assert post(second, "running", running)[0] == 200
    finally:
        second.stop()
    assert len(standins.seen) == posted, "nothing posted, not even a terminal-state check"
    assert states_of(standins, "gitlab", sha) == ["running", "success"]
    assert states_of(standins, "github", sha) == ["pending", "success"]
    assert [h.body["state"] for h in hooks_of(standins, uid_of(running))] == ["running", "successful"]


def test_fan_out_is_one_post_per_distinct_target(function: Function, standins: StandIns, runs: Runs, sha: str) -> None:
    notes = {f"{PREFIX}slack": "true," * 20 + "default", f"{PREFIX}webhook": "true,TRUE,default,yes"}
    data = runs.create("02-failed", notes)
    assert post(function, "failed", data)[0] == 200
    name = data["pipelineRun"]["metadata"]["name"]
    assert len([s for s in standins.of("slack") if name in s.body["text"]]) == 1
    assert len(hooks_of(standins, uid_of(data))) == 1


def test_a_repository_outside_the_allow_list_is_refused_logged_and_counted(
    function: Function, standins: StandIns, runs: Runs, sha: str
) -> None:
    notes = {f"{PREFIX}github-repo": "victim/other", f"{PREFIX}gitlab-project": "group/app", f"{PREFIX}sha": sha}
    data = runs.create("01-successful", notes)
    status, body = post(function, "successful", data)
    assert status == 200 and body["delivered"] == ["gitlab#0"]
    assert not [s for s in standins.of("github") if "victim" in s.path]
    log = function.log_path.read_text()
    assert log.count("github target 'victim/other' refused") == 1
    assert post(function, "successful", forged(data, name="no-such-run"))[1]["ignored"] == "no such run"
    text = function.metrics()
    assert 'tpl_notify_refused_targets_total{kind="github"} 1.0' in text
    assert 'tpl_notify_ignored_events_total{reason="unknown-run"}' in text


# -- ingress: who may send events, and how much ----------------------------------------------------
AUDIENCE = "tekton-listener-notify"
SENDER = "tekton-listener-notify-trigger-oidc"  # a ServiceAccount SENDERS allows
# notify's ingress checks: a token for AUDIENCE, of a `*-oidc` ServiceAccount of the listener's namespace
SENDERS = {"NOTIFY_AUDIENCE": AUDIENCE, "NOTIFY_ALLOWED_SUBJECTS": f"system:serviceaccount:{LISTENER_NAMESPACE}:*-oidc"}


@contextmanager
def token_reviews(cluster: Cluster) -> Iterator[None]:
    """service.yaml's ClusterRoleBindings (system:auth-delegator: notify may create TokenReviews)
    while entered; cluster-scoped, so no test namespace removes them, and test_manifests creates
    them too: deleted on the way out."""
    rbac = [
        d for d in yaml.safe_load_all((ROOT / "service.yaml").read_text()) if d and d["kind"] == "ClusterRoleBinding"
    ]
    for doc in rbac:
        cluster.apply(doc)  # for notify's ServiceAccount (namespace as shipped)
    try:
        yield
    finally:
        for doc in rbac:
            cluster.raw("DELETE", f"{collection_path(doc)}/{doc['metadata']['name']}", cluster.admin)


def sa_token(cluster: Cluster, name: str, audience: str) -> str:
    """A real token of ServiceAccount `name` (created if new) for `audience`, as Eventing would get one."""
    cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": LISTENER_NAMESPACE}}
    )
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": [audience]}}
    path = f"/api/v1/namespaces/{LISTENER_NAMESPACE}/serviceaccounts/{name}/token"
    return cluster.api("POST", path, request)["status"]["token"]


def raw_post(fn: Function, data: dict[str, Any], token: str | None, chunked: bool = False) -> tuple[int, Any]:
    """A binary-mode event by http.client: with a bearer token, and chunked (no Content-Length) if asked."""
    meta = data["pipelineRun"]["metadata"]
    event = CloudEvent(
        {"type": "dev.tekton.event.pipelinerun.failed.v1", "source": "/x", "id": str(uuid.uuid4())}, data
    )
    headers, body = to_binary(event)
    headers = dict(headers, **({"Authorization": f"Bearer {token}"} if token else {}))
    conn = http.client.HTTPConnection("127.0.0.1", fn.port, timeout=60)
    try:
        if chunked:
            conn.request(
                "POST",
                "/",
                body=iter([body[i : i + 1000] for i in range(0, len(body), 1000)]),
                headers=headers,
                encode_chunked=True,
            )
        else:
            conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "application/json", meta["name"]
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_only_senders_with_a_token_for_the_audience_get_in_and_bodies_are_capped(
    cluster: Cluster, standins: StandIns, runs: Runs, env: dict[str, str], tmp_path: Path, sha: str
) -> None:
    with token_reviews(cluster):
        good = sa_token(cluster, SENDER, AUDIENCE)
        wrong_audience = sa_token(cluster, SENDER, "some-other-service")
        stranger = sa_token(cluster, "someone-else", AUDIENCE)  # right audience, not an allowed subject
        fn = Function(env | SENDERS | {"NOTIFY_MAX_BODY_BYTES": "4096"}, tmp_path / "guarded.log")
        try:
            data = runs.create("02-failed", {f"{PREFIX}github-repo": "example/app", f"{PREFIX}sha": sha})
            before = len(standins.seen)
            refused = {
                "no token": (None, 401),
                "not a token": ("x" * 40, 401),
                "another audience": (wrong_audience, 401),
                "another sender": (stranger, 403),
            }
            for what, (token, code) in refused.items():
                status, body = raw_post(fn, data, token)
                assert (status, "error" in body) == (code, True), what
            huge = copy.deepcopy(data)
            huge["pipelineRun"]["metadata"]["annotations"]["padding"] = "x" * 8000
            assert raw_post(fn, huge, good)[0] == 413
            assert raw_post(fn, huge, good, chunked=True)[0] == 413
            assert len(standins.seen) == before, "nothing refused reached a target"
            for chunked in (False, True):
                status, body = raw_post(fn, data, good, chunked)
                assert status == 200 and body["state"] == "failed", body
            assert states_of(standins, "github", sha) == ["failure"]
            text = fn.metrics()
            for reason in ("no-token", "bad-token", "subject", "too-large"):
                assert f'tpl_notify_rejected_requests_total{{reason="{reason}"}}' in text
            log = fn.log_path.read_text()
            assert good not in log and stranger not in log
        finally:
            fn.stop()


# -- per-task statuses, from a run the simulator plays ---------------------------------------------
def test_each_pipeline_task_gets_its_own_commit_status_linking_to_its_log(
    function: Function, standins: StandIns, runs: Runs, sim: Simulator, sha: str
) -> None:
    played = sim.play(scenarios.failure(), namespace=runs.namespace).wait()
    notes = {f"{PREFIX}github-repo": "example/app", f"{PREFIX}gitlab-project": "group/app", f"{PREFIX}sha": sha}
    runs.cluster.api("PATCH", runs.path(played.name), {"metadata": {"annotations": notes}}, content_type=MERGE)
    status, body = post(function, "failed", runs.data(played.name))
    assert status == 200 and body["state"] == "failed", body
    context = f"tekton/{runs.namespace}/{played.name}"
    github = {s.body["context"]: s.body for s in standins.of("github", sha=sha)}
    assert sorted(github) == [context, f"{context}/cleanup", f"{context}/compile"]  # publish was skipped
    compile_ = github[f"{context}/compile"]
    assert compile_["state"] == "failure"
    assert compile_["target_url"] == f"{LISTENER}/logs/{runs.namespace}/{played.name}?task=compile"
    assert "step build exited 2" in compile_["description"] and compile_["description"].startswith("Failed (")
    assert github[f"{context}/cleanup"]["state"] == "success"
    assert github[context]["state"] == "failure"
    assert github[context]["description"].startswith("Failed (Failed: task compile, step build exited 2; Tasks")
    gitlab = {s.body["name"]: s.body["state"] for s in standins.of("gitlab", sha=sha)}
    assert gitlab == {context: "failed", f"{context}/compile": "failed", f"{context}/cleanup": "success"}
    # the same event again: every per-task status is in the run's record, nothing is re-posted
    before = len(standins.seen)
    assert post(function, "failed", runs.data(played.name))[0] == 200
    assert len(standins.seen) == before


# -- the watch-fed mode: the same notifier, fed by a list-watch instead of events --------------------
READY = "watching PipelineRuns in"


class WatcherProcess:
    """`python -m shared.notify.watcher` as a subprocess, the way deploy/notify-watch.yaml runs it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        full = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        full.update(env, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        self.log = log_path.open("wb")
        cmd = [sys.executable, "-m", "shared.notify.watcher"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        # a SIGTERM that lands before Python has imported the module is the OS default (exit -15):
        # what is under test is the watcher's own shutdown, so it is sent once the watcher said it runs
        wait_for(lambda: self.proc.poll() is not None or READY in self.log_path.read_text(), "the watcher to start")
        self.proc.terminate()
        try:
            assert self.proc.wait(15) == 0, self.log_path.read_text()[-2000:]
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


def watched_namespace(
    cluster: Cluster, identity: Identity, env: dict[str, str], tmp_path: Path
) -> tuple[Runs, dict[str, str]]:
    """A namespace of its own for a watcher (it reports every run there), and the watcher's env."""
    watched = Runs(cluster, f"notify-watch-{uuid.uuid4().hex[:6]}")
    bind_notify(cluster, identity, watched.namespace)
    config = tmp_path / "watch.yaml"
    allow = {"gitlab": ["group/app"], "github": ["example/*"], "slack": ["default"], "webhook": ["default"]}
    config.write_text(yaml.safe_dump({"allow": [{"namespaces": [watched.namespace], **allow}]}))
    return watched, env | {"NAMESPACE": watched.namespace, "NOTIFY_CONFIG": str(config), "NOTIFY_LEASE_SECONDS": "3"}


def test_the_watch_fed_mode_posts_what_the_event_fed_one_does(
    function: Function,
    standins: StandIns,
    runs: Runs,
    cluster: Cluster,
    notify_identity: Identity,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    steps = [("01-started", "started", 1), ("01-running", "running", 2), ("01-successful", "successful", 4)]
    # event-fed, the reference
    sha_events = fresh_sha()
    events = runs.create("01-queued", dict(ALL, **{f"{PREFIX}sha": sha_events}))
    assert post(function, "queued", events)[0] == 200
    for fixture, state, _ in steps:
        assert post(function, state, runs.step(events["pipelineRun"]["metadata"]["name"], fixture))[0] == 200

    # watch-fed, in a namespace of its own
    watched, watch_env = watched_namespace(cluster, notify_identity, env, tmp_path)
    sha_watch = fresh_sha()
    first = WatcherProcess(watch_env, tmp_path / "watcher-1.log")
    try:
        run = watched.create("01-queued", dict(ALL, **{f"{PREFIX}sha": sha_watch}))
        name = run["pipelineRun"]["metadata"]["name"]
        wait_for(lambda: watched.record(name).get("rank") == 0, "queued reported")
        for fixture, _, rank in steps[:2]:
            watched.step(name, fixture)
            wait_for(lambda rank=rank: watched.record(name).get("rank") == rank, f"rank {rank} reported")
    finally:
        first.stop()
    # the run finishes while no watcher runs; two start, one leads, the final state is posted once
    watched.step(name, "01-successful")
    second = WatcherProcess(watch_env, tmp_path / "watcher-2.log")
    third = WatcherProcess(watch_env, tmp_path / "watcher-3.log")
    try:
        wait_for(lambda: watched.record(name).get("rank") == 4, "successful reported after the restart")
        wait_for(lambda: len(hooks_of(standins, uid_of(run))) == 4, "the webhook's successful")
    finally:
        second.stop()
        third.stop()
    leaders = [p for p in (second, third) if "is the leader" in p.log_path.read_text()]
    assert len(leaders) >= 1
    for kind in ("gitlab", "github"):
        assert states_of(standins, kind, sha_watch) == states_of(standins, kind, sha_events), kind
    assert [h.body["state"] for h in hooks_of(standins, uid_of(run))] == [
        h.body["state"] for h in hooks_of(standins, uid_of(events))
    ]
    slack = [s.body["text"] for s in standins.of("slack") if name in s.body["text"]]
    assert len(slack) == 1 and "succeeded" in slack[0]


def test_the_watchers_deployment_is_valid_and_runs_the_watcher(cluster: Cluster, runs: Runs) -> None:
    [deployment] = [d for d in yaml.safe_load_all((ROOT / "deploy" / "notify-watch.yaml").read_text()) if d]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == NOTIFY_SA and spec["containers"][0]["command"][-1] == "shared.notify.watcher"
    path = f"/apis/apps/v1/namespaces/{runs.namespace}/deployments?dryRun=All"
    status, text = cluster.raw("POST", path, cluster.admin, deployment)
    assert status == 201, text[:500]


def test_the_lease_has_one_holder_and_changes_hands_only_after_it_expired(cluster: Cluster, runs: Runs) -> None:
    kube = Kube(client.ApiClient(cluster.client_configuration()))
    now = [0.0]
    name = f"lease-{uuid.uuid4().hex[:6]}"

    def candidate(identity: str) -> Lease:
        return Lease(kube, runs.namespace, identity, duration=10, name=name, clock=lambda: now[0])

    a, b, c = candidate("a"), candidate("b"), candidate("c")
    assert a.try_acquire() and a.held
    assert not b.try_acquire() and not b.held
    now[0] = 5.0
    assert a.try_acquire()  # renewed: b's view of the record changes at 5
    assert not b.try_acquire()
    now[0] = 14.0
    assert not b.try_acquire(), "unchanged for 9 s only, as b observed it"
    now[0] = 15.5  # a stopped renewing at 5: it is no leader past 15, and b takes over past 15
    assert not a.held
    assert b.try_acquire() and b.held
    assert not a.try_acquire() and not a.held
    # a write from a stale read loses (resourceVersion precondition): never two holders
    stale = kube.get(b.path)
    assert b.try_acquire()
    assert not c._write("PUT", stale) and not c.held
    holder = kube.get(b.path)["spec"]
    assert holder["holderIdentity"] == "b" and holder["leaseTransitions"] == 1
    b.release()
    assert kube.get(b.path)["spec"]["holderIdentity"] == ""
    assert c.try_acquire() and c.held, "a released Lease is taken at once"


def test_only_notifys_role_may_patch_runs_and_nothing_more(
    cluster: Cluster, runs: Runs, notify_identity: Identity
) -> None:
    run = runs.create("01-running", {})["pipelineRun"]["metadata"]["name"]
    ns = runs.namespace
    tekton = f"/apis/tekton.dev/v1/namespaces/{ns}"
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    patch = {"metadata": {"annotations": {"x": "y"}}}
    assert cluster.raw("PATCH", f"{tekton}/pipelineruns/{run}", notify_identity, patch, MERGE)[0] == 200
    denied = {
        "read secrets": ("GET", f"/api/v1/namespaces/{ns}/secrets", None),
        "patch taskruns": ("PATCH", f"{tekton}/taskruns/x", patch),
        "create pipelineruns": ("POST", f"{tekton}/pipelineruns", {"metadata": {"name": "sneaky"}}),
        "delete pipelineruns": ("DELETE", f"{tekton}/pipelineruns/{run}", None),
        "update another lease": ("PUT", f"{leases}/kube-scheduler", {"metadata": {"name": "kube-scheduler"}}),
        "list leases": ("GET", leases, None),
    }
    for what, (method, path, body) in denied.items():
        status, _ = cluster.raw(method, path, notify_identity, body, MERGE if method == "PATCH" else "application/json")
        assert status == 403, what
    # the read-only Role of logs/status/health still cannot write runs
    grant_listener(cluster, ns)
    cluster.wait_allowed(cluster.listener, f"{tekton}/pipelineruns", "the listener's RoleBinding")
    assert cluster.raw("PATCH", f"{tekton}/pipelineruns/{run}", cluster.listener, patch, MERGE)[0] == 403


def test_the_watcher_carries_on_through_an_apiserver_restart(
    standins: StandIns, cluster: Cluster, notify_identity: Identity, env: dict[str, str], tmp_path: Path
) -> None:
    watched, watch_env = watched_namespace(cluster, notify_identity, env, tmp_path)
    metrics_port = free_port()
    watcher = WatcherProcess(watch_env | {"METRICS_PORT": str(metrics_port)}, tmp_path / "watcher.log")
    sha = fresh_sha()
    try:
        run = watched.create("01-queued", dict(ALL, **{f"{PREFIX}sha": sha}))
        name = run["pipelineRun"]["metadata"]["name"]
        wait_for(lambda: watched.record(name).get("rank") == 0, "queued reported")
        cluster.restart_apiserver()
        watched.step(name, "01-running")
        wait_for(lambda: watched.record(name).get("rank") == 2, "running reported after the restart", 90)
        watched.step(name, "01-successful")
        wait_for(lambda: watched.record(name).get("rank") == 4, "successful reported", 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            scraped = resp.read().decode()
    finally:
        watcher.stop()
    assert states_of(standins, "gitlab", sha) == ["pending", "running", "success"]
    assert states_of(standins, "github", sha) == ["pending", "pending", "success"]
    watches = [line for line in scraped.splitlines() if line.startswith("tpl_kube_requests_total{")]
    opened = sum(float(line.rsplit(" ", 1)[1]) for line in watches if 'verb="watch"' in line and "pipelineruns" in line)
    assert opened >= 2, "the watch was opened again after the restart"
    assert "broke" in watcher.log_path.read_text() or "retrying" in watcher.log_path.read_text()
