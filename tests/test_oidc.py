"""OIDC bearer tokens from CI, checked against a local issuer serving its JWKS over HTTPS (own CA)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.auth import Authenticator
from shared.auth.oidc import OidcVerifier
from shared.auth.oidc_config import parse_config
from shared.auth.oidc_keys import IssuerKeys, https_fetcher
from tests.oidc_issuer import AUDIENCE, Issuer, SigningKey


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    with Issuer(tmp_path) as running:
        yield running


def verifier(issuer: Issuer, **options: Any) -> OidcVerifier:
    config, problems = parse_config(yaml.safe_dump(issuer.config(**options)))
    assert problems == []
    return OidcVerifier(config, https_fetcher(str(issuer.ca_file)))


def test_valid_token_grants_the_rule(issuer: Issuer) -> None:
    decision = verifier(issuer).authenticate(issuer.token())
    assert decision.ok, decision.error
    principal = decision.principal
    assert principal is not None and principal.kind == "oidc"
    assert principal.name == "project_path:group/app:ref_type:branch:ref:main"
    assert principal.may_read("app-ci") and not principal.may_read("tekton-pipelines")
    assert principal.may_read_run({"ci.example.com/project": "group-app", "other": "x"})
    assert not principal.may_read_run({"ci.example.com/project": "group-other"})
    assert not principal.may_read_run({})


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        # Times relative to when the test runs (parameters are made at collection, maybe minutes before).
        ({"exp": -120}, "token expired"),
        ({"nbf": +120}, "token not valid yet"),
        ({"aud": "https://other-service.test"}, "token audience is not this service"),
        ({"aud": None}, "token lacks the 'aud' claim"),
        ({"exp": None}, "token lacks the 'exp' claim"),
        ({"sub": None}, "token lacks the 'sub' claim"),
    ],
)
def test_bad_claims_are_401(issuer: Issuer, claims: dict[str, Any], error: str) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in claims.items()}
    decision = verifier(issuer).authenticate(issuer.token(**claims))
    assert (decision.ok, decision.status, decision.error) == (False, 401, error)
    assert decision.headers["WWW-Authenticate"].startswith("Bearer ")


def test_small_clock_skew_is_tolerated(issuer: Issuer) -> None:
    now = int(time.time())
    check = verifier(issuer, leeway_seconds=30)
    assert check.authenticate(issuer.token(exp=now - 10)).ok
    assert check.authenticate(issuer.token(nbf=now + 10, iat=now + 10)).ok
    assert check.authenticate(issuer.token(exp=now - 40)).status == 401


def test_wrong_issuer(issuer: Issuer, tmp_path: Path) -> None:
    # Signed with the trusted issuer's own key, but claiming another issuer: still refused.
    decision = verifier(issuer).authenticate(issuer.token(iss="https://gitlab.example.com"))
    assert (decision.status, decision.error) == (401, "token issuer is not trusted")
    # Another issuer's token (another key), naming itself.
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with Issuer(other_dir, pool="other") as other:
        decision = verifier(issuer).authenticate(other.token())
    assert (decision.status, decision.error) == (401, "token issuer is not trusted")


def test_forged_signatures(issuer: Issuer) -> None:
    check = verifier(issuer)
    impostor = SigningKey(kid=issuer.keys[0].kid)  # the right kid, the wrong key
    for token, error in [
        (issuer.token(key=impostor), "token signature is invalid"),
        (issuer.unsigned(), "token algorithm is not allowed"),
        (issuer.key_confusion(), "token algorithm is not allowed"),
    ]:
        decision = check.authenticate(token)
        assert (decision.ok, decision.status, decision.error) == (False, 401, error)
    # Listing HS256 (or none) as allowed is refused when the configuration is read.
    for algorithms in (["HS256"], ["none"], ["RS256", "HS512"]):
        config, problems = parse_config(yaml.safe_dump(issuer.config(algorithms=algorithms)))
        assert config.issuers == {} and "algorithms must be" in problems[0]


def test_token_payload_tampered_after_signing(issuer: Issuer) -> None:
    header, payload, signature = issuer.token(project_path="group/other").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["project_path"] = "group/app"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    decision = verifier(issuer).authenticate(f"{header}.{forged_payload}.{signature}")
    assert (decision.status, decision.error) == (401, "token signature is invalid")


def test_unknown_kid_refetches_at_most_once_per_interval(issuer: Issuer) -> None:
    check = verifier(issuer, jwks_min_refresh_seconds=3600)
    assert check.authenticate(issuer.token()).ok
    assert issuer.jwks_requests == 1
    stranger = SigningKey()
    for _ in range(20):  # made-up kids: one fetch now would be allowed, but the last was just made
        decision = check.authenticate(issuer.token(key=stranger))
        assert (decision.status, decision.error) == (401, "token signed with an unknown key")
    assert issuer.jwks_requests == 1


def test_rotated_key_is_fetched_on_its_first_token(issuer: Issuer) -> None:
    check = verifier(issuer, jwks_min_refresh_seconds=0)
    assert check.authenticate(issuer.token()).ok
    rotated = SigningKey()
    issuer.keys.append(rotated)
    assert check.authenticate(issuer.token(key=rotated)).ok
    assert issuer.jwks_requests == 2
    assert check.authenticate(issuer.token(key=rotated)).ok  # cached now
    assert issuer.jwks_requests == 2


def test_keys_are_fetched_again_when_stale(issuer: Issuer) -> None:
    now = [1000.0]
    keys = IssuerKeys(verifier(issuer).config.issuers[issuer.url], https_fetcher(str(issuer.ca_file)), lambda: now[0])
    kid = issuer.keys[0].kid
    assert keys.key(kid) is not None and issuer.jwks_requests == 1
    now[0] += 3599
    assert keys.key(kid) is not None and issuer.jwks_requests == 1
    now[0] += 2
    assert keys.key(kid) is not None and issuer.jwks_requests == 2


@pytest.mark.parametrize(
    "claims",
    [
        {"project_path": "group/other"},
        {"ref_protected": "false"},
        {"project_path": ["group/app"]},
        {"ref_protected": None},
    ],
)
def test_claims_no_rule_grants_are_403(issuer: Issuer, claims: dict[str, Any]) -> None:
    decision = verifier(issuer).authenticate(issuer.token(**claims))
    assert (decision.ok, decision.status) == (False, 403)
    assert decision.error == "no rule grants this token's claims any access"


def test_unreachable_issuer_is_503_not_a_bad_credential(issuer: Issuer, tmp_path: Path) -> None:
    # The CA does not vouch for the server: TLS fails, no keys were ever fetched.
    config, _ = parse_config(yaml.safe_dump(issuer.config()))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with Issuer(other_dir, pool="other") as other:
        check = OidcVerifier(config, https_fetcher(str(other.ca_file)))
    decision = check.authenticate(issuer.token())
    assert (decision.status, decision.headers.get("Retry-After")) == (503, "10")
    assert issuer.jwks_requests == 0


@pytest.mark.parametrize(
    "token",
    [
        "eyJ.x.y",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "eyJhbGciOiJSUzI1NiJ9.W10.sig",
        "eyJbXQ.e30.sig",
        "eyJ" + "A" * 3000 + ".a.b",
    ],
)
def test_malformed_tokens_are_401(issuer: Issuer, token: str) -> None:
    decision = verifier(issuer).authenticate(token)
    assert (decision.ok, decision.status) == (False, 401)


def test_config_problems_are_reported_without_values() -> None:
    text = yaml.safe_dump(
        {
            "issuers": [
                {"issuer": "http://gitlab.example.com", "audience": "a"},
                {"issuer": "https://gitlab.example.com"},
                {"issuer": "https://ok.example.com", "audience": "secret-looking-audience"},
            ],
            "rules": [
                {"issuer": "https://ok.example.com", "claims": {}, "namespaces": ["a"]},
                {"issuer": "https://ok.example.com", "claims": {"project_path": "x"}, "namespaces": "*"},
                {
                    "issuer": "https://ok.example.com",
                    "claims": {"p": "x"},
                    "namespaces": ["a"],
                    "run_labels": {"k": "a/b"},
                },
            ],
        }
    )
    config, problems = parse_config(text)
    assert list(config.issuers) == ["https://ok.example.com"] and len(config.rules) == 1
    assert config.rules[0].namespaces is None
    assert len(problems) == 4 and not any("secret-looking" in p or "a/b" in p for p in problems)
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_config("issuers: [")


def test_basic_and_static_tokens_keep_working_beside_oidc(issuer: Issuer) -> None:
    auth = Authenticator("ci", "pw", oidc=verifier(issuer), max_failures_per_address=3)
    assert auth.authenticate("Basic Y2k6cHc=").ok  # ci:pw
    assert auth.authenticate(f"Bearer {issuer.token()}").principal.kind == "oidc"  # type: ignore[union-attr]
    assert auth.authenticate("Basic Y2k6bm8=").status == 401
    # Bad tokens count as failed logins of their address; a valid one is never blocked.
    for _ in range(3):
        assert auth.authenticate(f"Bearer {issuer.unsigned()}", "10.0.0.9").status == 401
    assert auth.authenticate(f"Bearer {issuer.unsigned()}", "10.0.0.9").status == 429
    assert auth.authenticate(f"Bearer {issuer.token()}", "10.0.0.9").ok


def test_oidc_alone_is_a_configuration() -> None:
    config, _ = parse_config(yaml.safe_dump({"issuers": [], "rules": []}))
    auth = Authenticator(oidc=OidcVerifier(config, https_fetcher()))
    assert auth.configured
    assert auth.authenticate("Basic Y2k6cHc=").status == 401
    assert AUDIENCE  # the issuer's default audience is what the listener is configured with


def test_config_file_is_read_again_when_it_changes(issuer: Issuer, tmp_path: Path) -> None:
    from shared.auth.oidc_config import ConfigFile

    path = tmp_path / "oidc.yaml"
    path.write_text(yaml.safe_dump(issuer.config()))
    now = [1000.0]
    source = ConfigFile(str(path))
    check = OidcVerifier(source.load(), https_fetcher(str(issuer.ca_file)), source, clock=lambda: now[0])
    other_project = issuer.token(project_path="group/other")
    assert check.authenticate(other_project).status == 403
    assert check.authenticate(issuer.token()).ok and issuer.jwks_requests == 1

    changed = issuer.config()
    changed["rules"][0]["claims"]["project_path"] = "group/other"
    path.write_text(yaml.safe_dump(changed) + "# edited\n")
    assert check.authenticate(other_project).status == 403  # checked at most once a second
    now[0] += 1.5
    assert check.authenticate(other_project).ok
    assert check.authenticate(issuer.token()).status == 403
    assert issuer.jwks_requests == 1  # the issuer did not change: its keys stay cached

    path.write_text("issuers: [")  # broken: nothing is trusted until it is fixed
    now[0] += 1.5
    assert check.authenticate(other_project).error == "token issuer is not trusted"
