"""CI jobs' OIDC tokens over real HTTP: the listener against the sandbox, the issuer on loopback
HTTPS with its own CA, and ci/tekton-logs.sh with the job's token as GitLab and GitHub hand it out."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.oidc_issuer import AUDIENCE, Issuer, SigningKey
from tests.sandbox.cluster import Cluster, free_port
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import ROOT, Listener, LoopbackServer, basic, grant_listener, reply
from tests.test_metrics import Scraper, value

NS = "app-ci"
PROJECT_LABELS = {"ci.example.com/project": "group-app"}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    with Issuer(tmp_path_factory.mktemp("oidc")) as running:
        yield running


@pytest.fixture(scope="module")
def oidc_listener(cluster: Cluster, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    grant_listener(cluster, NS)
    config = tmp_path_factory.mktemp("oidc-config") / "oidc.yaml"
    config.write_text(yaml.safe_dump(issuer.config()))
    env = {"OIDC_CONFIG": str(config), "OIDC_CA_FILE": str(issuer.ca_file), "NAMESPACE": NS}
    # Each refused token counts against its address (tests/test_oidc.py checks that); here every
    # forgery is sent from one address.
    env["AUTH_MAX_FAILURES_PER_ADDRESS"] = "1000"
    env["METRICS_PORT"] = str(free_port())
    with Listener(cluster, **env) as running:
        yield running


@pytest.fixture(scope="module")
def runs(sim: Simulator) -> dict[str, PlayedRun]:
    """A run of group/app (labelled) and one of nobody in particular, both finished in app-ci."""
    labelled = SCENARIOS["success"]()
    labelled.labels = dict(PROJECT_LABELS)
    played = {"app": sim.play(labelled, NS), "other": sim.play(SCENARIOS["failure"](), NS)}
    for run in played.values():
        run.wait(60)
    return played


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_valid_token_reads_its_projects_runs(
    oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun]
) -> None:
    token = bearer(issuer.token())
    status, body = oidc_listener.get_json(f"/status/{runs['app'].name}", auth=token)
    assert status == 200 and body["outcome"] == "succeeded"
    status, headers, text = oidc_listener.get(f"/logs/{runs['app'].name}", auth=token)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"PipelineRun " in text and b"succeeded" in text.lower()


def test_valid_token_outside_its_grant_is_403(
    oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun]
) -> None:
    token = bearer(issuer.token())
    # A run in its namespace without the project's label; another namespace, whether or not the run exists.
    for path in (
        f"/status/{runs['other'].name}",
        f"/logs/{runs['other'].name}",
        "/status/tekton-pipelines/any-run",
        "/logs/tekton-pipelines/any-run",
    ):
        status, headers, raw = oidc_listener.get(path, auth=token)
        body = json.loads(raw)
        assert (status, body["status"]) == (403, 403), path
        assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("forge", "code", "error"),
    [
        (lambda i: i.token(exp=i.claims()["iat"] - 3600, iat=i.claims()["iat"] - 4000), 401, "token expired"),
        (lambda i: i.token(aud="https://other.test"), 401, "token audience is not this service"),
        (lambda i: i.token(iss="https://gitlab.example.com"), 401, "token issuer is not trusted"),
        (lambda i: i.token(key=SigningKey()), 401, "token signed with an unknown key"),
        (lambda i: i.token(key=SigningKey(kid=i.keys[0].kid)), 401, "token signature is invalid"),
        (lambda i: i.unsigned(), 401, "token algorithm is not allowed"),
        (lambda i: i.key_confusion(), 401, "token algorithm is not allowed"),
        (lambda i: i.token(project_path="group/other"), 403, "no rule grants this token's claims any access"),
        (lambda i: i.token(ref_protected="false"), 403, "no rule grants this token's claims any access"),
    ],
)
def test_refused_tokens(
    oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun], forge: object, code: int, error: str
) -> None:
    token = forge(issuer)  # type: ignore[operator]
    for path in (f"/status/{runs['app'].name}", f"/logs/{runs['app'].name}"):
        status, headers, raw = oidc_listener.get(path, auth=bearer(token))
        assert status == code, (path, raw)
        assert json.loads(raw) == {"error": error, "status": code}
        if code == 401:
            assert headers["www-authenticate"].startswith("Bearer ")
    assert token not in oidc_listener.log()


def test_basic_auth_keeps_working(oidc_listener: Listener, runs: dict[str, PlayedRun]) -> None:
    assert oidc_listener.get(f"/status/{runs['other'].name}", auth=basic())[0] == 422


# -- ci/tekton-logs.sh with the job's token --------------------------------------------------------
def run_script(listener: Listener, run: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "ACTIONS_ID_TOKEN"))}
    environ.update(LISTENER_URL=listener.url, TEKTON_LOGS_RETRIES="2", **env)
    return subprocess.run(
        ["sh", str(ROOT / "ci" / "tekton-logs.sh"), run], env=environ, capture_output=True, text=True, timeout=120
    )


def test_script_uses_a_gitlab_id_token(oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun]) -> None:
    done = run_script(oidc_listener, runs["app"].name, LISTENER_TOKEN=issuer.token(), LISTENER_CREDS="x:wrong")
    assert done.returncode == 0, done.stderr
    assert "PipelineRun " in done.stdout
    refused = run_script(oidc_listener, runs["other"].name, LISTENER_TOKEN=issuer.token())
    assert refused.returncode == 2 and "HTTP 403" in refused.stderr


class _GitHubTokenService(LoopbackServer):
    """ACTIONS_ID_TOKEN_REQUEST_URL: hands out a fresh token for the asked audience, as GitHub does,
    to callers presenting ACTIONS_ID_TOKEN_REQUEST_TOKEN."""

    request_token = "ghs_request-token-for-this-job"

    def __init__(self, issuer: Issuer) -> None:
        self.audiences: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {service.request_token}":
                    self.send_error(401)
                    return
                audience = parse_qs(urlsplit(self.path).query)["audience"][0]
                service.audiences.append(audience)
                reply(self, 200, json.dumps({"count": 1, "value": issuer.token(aud=audience)}).encode())

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.token_url = f"{self.url}/token?api-version=2.0"


def test_script_requests_a_github_actions_token(
    oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun], tmp_path: Path
) -> None:
    with _GitHubTokenService(issuer) as service:
        done = run_script(
            oidc_listener,
            runs["app"].name,
            ACTIONS_ID_TOKEN_REQUEST_URL=service.token_url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN=service.request_token,
            LISTENER_AUDIENCE=AUDIENCE,
        )
    assert done.returncode == 0, done.stderr
    # One fresh token per request: /logs, then /status.
    assert service.audiences and set(service.audiences) == {AUDIENCE}
    assert len(service.audiences) >= 2


def test_oidc_callers_in_metrics_and_access_log(
    oidc_listener: Listener, issuer: Issuer, runs: dict[str, PlayedRun]
) -> None:
    scrape = Scraper(int(oidc_listener.env["METRICS_PORT"]))
    before = scrape()
    path = f"/status/{runs['app'].name}"
    assert oidc_listener.get(path, auth=bearer(issuer.unsigned()))[0] == 401
    assert oidc_listener.get(path, auth=bearer(issuer.token(project_path="group/other")))[0] == 403
    status, headers, _ = oidc_listener.get(path, auth=bearer(issuer.token()))
    assert status == 200
    after = scrape()
    for code in ("401", "403"):
        moved = value(after, "tpl_auth_failures_total", scheme="oidc", code=code)
        assert moved - value(before, "tpl_auth_failures_total", scheme="oidc", code=code) == 1, code
    lines = [json.loads(line) for line in oidc_listener.log().splitlines() if line.startswith('{"time"')]
    [line] = [line for line in lines if line["request_id"] == headers["x-request-id"]]
    assert (line["principal"], line["auth"]) == ("project_path:group/app:ref_type:branch:ref:main", "oidc")
