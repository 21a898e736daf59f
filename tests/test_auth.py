"""Authentication decisions: Basic and Bearer, malformed headers, scoping, caching, rate limits."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from shared.auth import Authenticator, Decision, Principal
from shared.auth.credentials import token_digest

COST = 4  # fastest bcrypt cost: the tests check behaviour, bench/auth_timing.py checks timing
ALICE_PW = "alice-password-1"
BOB_PW = "bob-password-22"
CI_TOKEN = "tpl_" + "A" * 43
OTHER_TOKEN = "tpl_" + "B" * 43


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(COST)).decode()


ALICE_HASH = hashed(ALICE_PW)
BOB_HASH = hashed(BOB_PW).replace("$2b$", "$2y$", 1)  # htpasswd -B writes $2y$


def basic(user: str | bytes, password: str | bytes) -> str:
    raw_user = user.encode() if isinstance(user, str) else user
    raw_pw = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(raw_user + b":" + raw_pw).decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingCheckpw:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: bytes, hashed_password: bytes) -> bool:
        self.calls += 1
        return bcrypt.checkpw(password, hashed_password)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def checkpw() -> CountingCheckpw:
    return CountingCheckpw()


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(
        "# test users\n"
        f"alice:{ALICE_HASH}:team-a,team-b\n"
        f"bob:{BOB_HASH}:*\n"
        f"ci:sha256${token_digest(CI_TOKEN).hex()}:team-a\n"
    )
    return path


@pytest.fixture
def make_auth(creds_file: Path, clock: FakeClock, checkpw: CountingCheckpw) -> Callable[..., Authenticator]:
    def make(**overrides: object) -> Authenticator:
        settings: dict[str, object] = {"auth_file": str(creds_file), "clock": clock, "checkpw": checkpw}
        settings.update(overrides)
        return Authenticator(bcrypt_cost=COST, **settings)  # type: ignore[arg-type]

    return make


def assert_challenge(decision: Decision, error: str | None = None) -> None:
    assert not decision.ok
    assert decision.status == 401
    assert decision.principal is None
    assert decision.headers["WWW-Authenticate"].startswith("Basic realm=")
    if error is not None:
        assert decision.error == error


# --- configuration ---------------------------------------------------------------------------


def test_nothing_configured_refuses_everything_with_503(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        auth = Authenticator.from_env({})
    assert not auth.configured
    for header in (None, "", basic("admin", "admin"), "Bearer x"):
        decision = auth.authenticate(header, "10.0.0.1")
        assert (decision.ok, decision.status) == (False, 503)
        assert decision.error == "authentication is not configured on this service"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "not configured" in errors[0].getMessage()


def test_no_default_credentials() -> None:
    auth = Authenticator.from_env({})
    for user, password in (("admin", "admin"), ("admin", ""), ("", "")):
        assert auth.authenticate(basic(user, password)).status == 503


@pytest.mark.parametrize("environ", [{"AUTH_USERNAME": "admin"}, {"AUTH_PASSWORD": "secret-123456"}])
def test_half_configured_env_user_is_not_configured(environ: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        auth = Authenticator.from_env(environ, bcrypt_cost=COST)
    assert auth.authenticate(basic("admin", "secret-123456")).status == 503
    assert "secret-123456" not in caplog.text


def test_env_user_reads_only_namespace_by_default() -> None:
    auth = Authenticator.from_env({"AUTH_USERNAME": "ci", "AUTH_PASSWORD": "pw-123456", "NAMESPACE": "ci-runs"})
    decision = auth.authenticate(basic("ci", "pw-123456"), "10.0.0.1")
    assert decision.ok and decision.principal == Principal("ci", frozenset({"ci-runs"}), "user")
    assert not decision.principal.may_read("tekton-pipelines")


def test_env_user_reads_every_namespace_when_configured() -> None:
    password = "env-password-" + "x" * 100  # longer than bcrypt's 72 bytes: still works, whole
    environ = {"AUTH_USERNAME": "ci", "AUTH_PASSWORD": password, "AUTH_NAMESPACES": "*"}
    auth = Authenticator.from_env(environ, bcrypt_cost=COST)
    decision = auth.authenticate(basic("ci", password), "10.0.0.1")
    assert decision.ok and decision.principal == Principal("ci", None, "user")
    assert decision.principal.may_read("anything")
    assert not auth.authenticate(basic("ci", password[:-1]), "10.0.0.1").ok
    assert not auth.authenticate(basic("ci", password[:72]), "10.0.0.1").ok


def test_file_user_wins_over_env_user_of_the_same_name(creds_file: Path) -> None:
    auth = Authenticator("alice", "env-password-123", auth_file=str(creds_file), bcrypt_cost=COST)
    assert auth.authenticate(basic("alice", ALICE_PW)).ok
    assert not auth.authenticate(basic("alice", "env-password-123")).ok


# --- Basic -----------------------------------------------------------------------------------


def test_bcrypt_users_and_namespace_scoping(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    alice = auth.authenticate(basic("alice", ALICE_PW), "10.0.0.1")
    assert alice.ok and alice.status == 200 and alice.principal is not None
    assert alice.principal.name == "alice" and alice.principal.kind == "user"
    assert alice.principal.may_read("team-a") and alice.principal.may_read("team-b")
    assert not alice.principal.may_read("team-c")
    assert not alice.principal.may_read("")
    bob = auth.authenticate(basic("bob", BOB_PW), "10.0.0.1")  # a $2y$ hash
    assert bob.ok and bob.principal is not None and bob.principal.may_read("kube-system")


def test_wrong_password(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    assert_challenge(auth.authenticate(basic("alice", "wrong-password"), "10.0.0.1"), "invalid credentials")
    assert_challenge(auth.authenticate(basic("alice", ""), "10.0.0.1"), "invalid credentials")
    assert_challenge(auth.authenticate(basic("alice", ALICE_PW + "x"), "10.0.0.1"), "invalid credentials")


def test_unknown_user_answers_like_a_wrong_password_and_costs_a_bcrypt(
    make_auth: Callable[..., Authenticator], checkpw: CountingCheckpw
) -> None:
    auth = make_auth()
    wrong = auth.authenticate(basic("alice", "wrong-password"), "10.0.0.1")
    calls_known = checkpw.calls
    unknown = auth.authenticate(basic("mallory", "wrong-password"), "10.0.0.1")
    assert checkpw.calls - calls_known == 1 == calls_known  # the dummy hash was verified too
    assert (unknown.status, unknown.error, dict(unknown.headers)) == (wrong.status, wrong.error, dict(wrong.headers))


def test_token_name_is_not_a_basic_user(make_auth: Callable[..., Authenticator]) -> None:
    assert_challenge(make_auth().authenticate(basic("ci", CI_TOKEN)), "invalid credentials")


def test_password_with_colon_and_utf8(tmp_path: Path) -> None:
    password = "pä:ss:wörd-long"
    path = tmp_path / "c"
    path.write_text(f"zoe.smith@example.com:{hashed(password)}:*\n")
    auth = Authenticator(auth_file=str(path), bcrypt_cost=COST)
    assert auth.authenticate(basic("zoe.smith@example.com", password)).ok
    assert not auth.authenticate(basic("zoe.smith@example.com", "pä")).ok


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic YWxpY2U",  # bad padding
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b":" + ALICE_PW.encode()).decode(),  # empty user
        "Basic " + base64.b64encode(b"\xff\xfe:" + ALICE_PW.encode()).decode(),  # user not UTF-8
        "Basic " + base64.b64encode(b"ali\nce:" + ALICE_PW.encode()).decode(),  # control character
        "Basic " + base64.b64encode(b"x" * 300 + b":pw").decode(),  # user name too long
        "Basic Ã¤Ã¶",  # non-ASCII header text (latin-1 decoded bytes)
        "Basic " + "QUFB" * 2000,  # huge
        "Basic " + base64.b64encode(("alice:" + ALICE_PW).encode()).decode() + "A" * 5000,
        "Digest username=alice",
        "Negotiate YWxpY2U=",
        "alice:" + ALICE_PW,
        "Bearer",
        "Bearer tpl_ with space",
        "Bearer tøken",
        "Bearer " + "x" * 5000,
        "Bearer \x00\x01",
    ],
)
def test_malformed_authorization_headers(make_auth: Callable[..., Authenticator], header: str) -> None:
    decision = make_auth().authenticate(header, "10.0.0.1")
    assert_challenge(decision)
    assert ALICE_PW not in decision.error and "alice" not in decision.error  # nothing reflected


def test_missing_header_asks_for_credentials(make_auth: Callable[..., Authenticator]) -> None:
    assert_challenge(make_auth().authenticate(None, "10.0.0.1"), "authentication required")


def test_scheme_is_case_insensitive(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    encoded = basic("alice", ALICE_PW).split()[1]
    assert auth.authenticate(f"basic {encoded}").ok
    assert auth.authenticate(f"  BASIC   {encoded}  ").ok
    assert auth.authenticate(f"bearer {CI_TOKEN}").ok


# --- Bearer ----------------------------------------------------------------------------------


def test_bearer_token(make_auth: Callable[..., Authenticator], checkpw: CountingCheckpw) -> None:
    auth = make_auth()
    decision = auth.authenticate(f"Bearer {CI_TOKEN}", "10.0.0.1")
    assert decision.ok and decision.principal == Principal("ci", frozenset({"team-a"}), "token")
    assert decision.principal.may_read("team-a") and not decision.principal.may_read("team-b")
    assert_challenge(auth.authenticate(f"Bearer {OTHER_TOKEN}", "10.0.0.1"), "invalid credentials")
    assert_challenge(auth.authenticate(f"Bearer {CI_TOKEN[:-1]}", "10.0.0.1"), "invalid credentials")
    assert checkpw.calls == 0  # tokens never cost a bcrypt


def test_tokens_sharing_a_name_both_work(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text(
        f"ci:sha256${token_digest(CI_TOKEN).hex()}:team-a\nci:sha256${token_digest(OTHER_TOKEN).hex()}:team-a\n"
    )
    auth = Authenticator(auth_file=str(path), bcrypt_cost=COST)
    assert auth.authenticate(f"Bearer {CI_TOKEN}").ok and auth.authenticate(f"Bearer {OTHER_TOKEN}").ok


# --- cache -----------------------------------------------------------------------------------


def test_success_is_cached_and_costs_no_second_bcrypt(
    make_auth: Callable[..., Authenticator], checkpw: CountingCheckpw, clock: FakeClock
) -> None:
    auth = make_auth(cache_ttl=60)
    header = basic("alice", ALICE_PW)
    assert auth.authenticate(header, "10.0.0.1").ok
    assert checkpw.calls == 1
    for _ in range(50):
        assert auth.authenticate(header, "10.0.0.2").ok
    assert checkpw.calls == 1
    clock.advance(59.9)
    assert auth.authenticate(header).ok and checkpw.calls == 1
    clock.advance(0.2)  # TTL over: verified again
    assert auth.authenticate(header).ok and checkpw.calls == 2


def test_failures_are_never_cached(make_auth: Callable[..., Authenticator], checkpw: CountingCheckpw) -> None:
    auth = make_auth(max_failures_per_address=0, max_failures_per_user=0)
    for _ in range(5):
        assert not auth.authenticate(basic("alice", "wrong-password")).ok
    assert checkpw.calls == 5


def test_cache_keyed_by_the_whole_credential(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    assert auth.authenticate(basic("alice", ALICE_PW)).ok
    assert not auth.authenticate(basic("alice", ALICE_PW + " ")).ok
    assert not auth.authenticate(basic("bob", ALICE_PW)).ok


def test_cache_disabled_with_zero_ttl(make_auth: Callable[..., Authenticator], checkpw: CountingCheckpw) -> None:
    auth = make_auth(cache_ttl=0)
    for _ in range(3):
        assert auth.authenticate(basic("alice", ALICE_PW)).ok
    assert checkpw.calls == 3


def test_cache_keys_do_not_hold_the_password(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    assert auth.authenticate(basic("alice", ALICE_PW)).ok
    keys = list(auth.__dict__["_cache"])
    assert len(keys) == 1 and ALICE_PW.encode() not in keys[0] and len(keys[0]) == 32


# --- rate limits -----------------------------------------------------------------------------


def test_failures_per_address_get_429_with_retry_after(
    make_auth: Callable[..., Authenticator], clock: FakeClock, checkpw: CountingCheckpw
) -> None:
    auth = make_auth(max_failures_per_address=3, max_failures_per_user=0, failure_window=60)
    for i in range(3):
        assert auth.authenticate(basic(f"user{i}", "wrong-password"), "10.0.0.9").status == 401
        clock.advance(10)
    calls = checkpw.calls
    blocked = auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9")  # right password, not cached
    assert (blocked.ok, blocked.status) == (False, 429)
    assert blocked.headers["Retry-After"] == "30"  # first failure at t, now t+30, window 60
    assert "alice" not in blocked.error
    assert checkpw.calls == calls  # a blocked address burns no bcrypt
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.10").ok  # other addresses unaffected
    clock.advance(29)
    assert auth.authenticate(basic("mallory", "x"), "10.0.0.9").headers["Retry-After"] == "1"
    clock.advance(1)  # the first failure left the window: one more attempt allowed
    assert auth.authenticate(basic("bob", BOB_PW), "10.0.0.9").ok


def test_cached_credentials_pass_a_blocked_address(make_auth: Callable[..., Authenticator], clock: FakeClock) -> None:
    auth = make_auth(max_failures_per_address=2, max_failures_per_user=0)
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9").ok
    for _ in range(2):
        auth.authenticate(basic("alice", "wrong-password"), "10.0.0.9")
    assert auth.authenticate(basic("bob", BOB_PW), "10.0.0.9").status == 429
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9").ok  # proven recently: allowed


def test_failures_per_user_block_only_the_guessing_client(make_auth: Callable[..., Authenticator]) -> None:
    """The per-user limit keys on (user, client) (issue 15): a guesser blocks itself, never the
    user elsewhere, not even on an address the user never used before."""
    auth = make_auth(max_failures_per_address=0, max_failures_per_user=3, failure_window=60, cache_ttl=0)
    for _ in range(3):
        assert auth.authenticate(basic("alice", "guess"), "192.0.2.1").status == 401
    guess = auth.authenticate(basic("alice", "guess"), "192.0.2.1")
    assert guess.status == 429 and int(guess.headers["Retry-After"]) == 60
    assert auth.authenticate(basic("alice", ALICE_PW), "192.0.2.1").status == 429  # that client waits
    for i in range(20):  # a distributed guesser, one attempt per address
        assert auth.authenticate(basic("alice", "guess"), f"198.51.100.{i}").status == 401
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.2").ok  # a brand-new address: in
    assert auth.authenticate(basic("bob", BOB_PW), "192.0.2.1").ok  # other users from that client


def test_per_user_limit_applies_to_unknown_names_too(make_auth: Callable[..., Authenticator]) -> None:
    """Otherwise 429-versus-401 would tell which names exist."""
    auth = make_auth(max_failures_per_address=0, max_failures_per_user=2)
    for name in ("alice", "nobody"):
        statuses = [auth.authenticate(basic(name, "guess"), "192.0.2.9").status for _ in range(3)]
        assert statuses == [401, 401, 429]


def test_valid_token_is_never_rate_limited(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(max_failures_per_address=2)
    for _ in range(2):
        assert auth.authenticate(f"Bearer {OTHER_TOKEN}", "10.0.0.9").status == 401
    assert auth.authenticate(f"Bearer {OTHER_TOKEN}", "10.0.0.9").status == 429
    assert auth.authenticate(f"Bearer {CI_TOKEN}", "10.0.0.9").ok
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9").status == 429  # token failures count


def test_malformed_headers_do_not_count_as_failures(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(max_failures_per_address=1)
    for _ in range(10):
        auth.authenticate("Basic !!!", "10.0.0.9")
        auth.authenticate(None, "10.0.0.9")
    assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9").ok


def test_rate_limits_disabled_with_zero(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(max_failures_per_address=0, max_failures_per_user=0)
    for _ in range(30):
        assert auth.authenticate(basic("alice", "guess"), "10.0.0.9").status == 401


def test_rate_limit_settings_from_env(creds_file: Path, clock: FakeClock) -> None:
    auth = Authenticator.from_env(
        {"AUTH_FILE": str(creds_file), "AUTH_MAX_FAILURES_PER_ADDRESS": "1", "AUTH_FAILURE_WINDOW": "7"},
        clock=clock,
    )
    auth.authenticate(basic("alice", "guess"), "10.0.0.9")
    assert auth.authenticate(basic("alice", "guess"), "10.0.0.9").headers["Retry-After"] == "7"


def test_bad_env_numbers_fall_back_to_defaults(creds_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    auth = Authenticator.from_env(
        {"AUTH_FILE": str(creds_file), "AUTH_CACHE_TTL": "soon", "AUTH_MAX_FAILURES_PER_USER": "-3"}
    )
    assert auth.authenticate(basic("alice", ALICE_PW)).ok
    assert "AUTH_CACHE_TTL" in caplog.text


# --- logs ------------------------------------------------------------------------------------


def test_secrets_never_logged(make_auth: Callable[..., Authenticator], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = make_auth(max_failures_per_address=2)
    headers = [
        basic("alice", ALICE_PW),
        basic("alice", "wrong-secret-1"),
        basic(ALICE_PW, "typed-into-user-field"),
        f"Bearer {CI_TOKEN}",
        f"Bearer {OTHER_TOKEN}",
        basic("bob", "wrong-secret-2"),
    ]
    for header in headers:
        auth.authenticate(header, "10.0.0.9")
    for secret in (ALICE_PW, "wrong-secret-1", "wrong-secret-2", CI_TOKEN, OTHER_TOKEN, "typed-into-user-field"):
        assert secret not in caplog.text
    for header in headers:
        assert header.split()[1] not in caplog.text
    assert "user alice" in caplog.text and "unknown user" in caplog.text


def test_concurrent_burst_cannot_exceed_the_limit(creds_file: Path) -> None:
    """Attempts are counted before bcrypt runs: 10 simultaneous guesses, limit 3, 3 bcrypts."""
    release = threading.Event()
    arrived = threading.Semaphore(0)
    verifications: list[int] = []

    def slow_checkpw(password: bytes, hashed_password: bytes) -> bool:
        verifications.append(1)
        arrived.release()
        release.wait(10)
        return bcrypt.checkpw(password, hashed_password)

    auth = Authenticator(auth_file=str(creds_file), bcrypt_cost=COST, max_failures_per_address=3, checkpw=slow_checkpw)
    statuses: list[int] = []

    def guess(i: int) -> None:
        decision = auth.authenticate(basic("alice", f"guess-{i}"), "192.0.2.7")
        statuses.append(decision.status)
        if decision.status == 429:
            arrived.release()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert arrived.acquire(timeout=10)  # every thread is either in bcrypt or refused
    release.set()
    for thread in threads:
        thread.join()
    assert len(verifications) == 3
    assert sorted(statuses) == [401] * 3 + [429] * 7


def test_success_does_not_count_as_failure(make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(max_failures_per_address=2, max_failures_per_user=2, cache_ttl=0)
    for _ in range(10):
        assert auth.authenticate(basic("alice", ALICE_PW), "10.0.0.9").ok
    assert auth.authenticate(basic("alice", "guess"), "10.0.0.9").status == 401
