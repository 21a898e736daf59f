"""The credentials file: format, problems, and reload on change (rewrite and Secret symlink swap)."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import bcrypt
import pytest

from shared.auth import Authenticator
from shared.auth.credentials import TokenEntry, UserEntry, parse, parse_line, token_digest

COST = 4
PW_A = "first-password-1"
PW_B = "second-password-2"
HASH_A = bcrypt.hashpw(PW_A.encode(), bcrypt.gensalt(COST)).decode()
HASH_B = bcrypt.hashpw(PW_B.encode(), bcrypt.gensalt(COST)).decode()
TOKEN = "tpl_" + "t" * 43
TOKEN_LINE = f"ci:sha256${token_digest(TOKEN).hex()}:team-a"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- format ----------------------------------------------------------------------------------


def test_parse_entries() -> None:
    user = parse_line(f"alice:{HASH_A}:team-b, team-a")
    assert isinstance(user, UserEntry)
    assert user.name == "alice" and user.namespaces == frozenset({"team-a", "team-b"}) and user.cost == COST
    everything = parse_line(f"bob:{HASH_B}:*")
    assert isinstance(everything, UserEntry) and everything.namespaces is None
    token = parse_line(TOKEN_LINE)
    assert isinstance(token, TokenEntry) and token.digest == token_digest(TOKEN)


@pytest.mark.parametrize(
    "line",
    [
        f"alice:{HASH_A}",  # namespaces are required, never implied
        f"alice:{HASH_A}:",
        f"alice:{HASH_A}:team-a,",
        f"alice:{HASH_A}:Team-A",
        f"alice:{HASH_A}:*,team-a",
        f"alice:{HASH_A}:{'a' * 64}",
        f":{HASH_A}:*",
        f"al ice:{HASH_A}:*",
        "alice:plaintext-password:*",
        "alice:$1$md5crypt$xxxxxxxxxxxxxxxxxxxxxx:*",
        f"alice:{HASH_A[:-1]}:*",
        "alice:$2b$99$" + "a" * 53 + ":*",  # cost out of range
        "ci:sha256$" + "A" * 64 + ":*",
        "ci:sha256$abc:*",
        f"alice:{HASH_A}:team-a:extra",
    ],
    # The hash is salted anew at every import: ids without it are the same in every xdist worker.
    ids=lambda line: line.replace(HASH_A, "<hash>").replace(HASH_A[:-1], "<hash[:-1]>"),
)
def test_invalid_lines_are_rejected_without_quoting_them(line: str) -> None:
    credentials, problems = parse(["# comment", "", line], source="f")
    assert not credentials
    assert len(problems) == 1 and problems[0].startswith("f line 3:")
    assert HASH_A not in problems[0] and "plaintext-password" not in problems[0]


def test_duplicate_user_keeps_the_first() -> None:
    credentials, problems = parse([f"alice:{HASH_A}:team-a", f"alice:{HASH_B}:*"])
    assert credentials.users["alice"].namespaces == frozenset({"team-a"})
    assert len(problems) == 1 and "line 2" in problems[0]


def test_bad_lines_do_not_disable_good_ones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"garbage-with-secret-value\nalice:{HASH_A}:*\r\n\n  # indented comment\n")
    with caplog.at_level(logging.WARNING):
        auth = Authenticator(auth_file=str(path), bcrypt_cost=COST)
    assert auth.authenticate(basic("alice", PW_A)).ok
    assert "line 1" in caplog.text and "garbage-with-secret-value" not in caplog.text


@pytest.mark.parametrize("content", [b"", b"# only comments\n", b"\xff\xfe not utf-8", None])
def test_file_without_entries_means_not_configured(
    tmp_path: Path, content: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "credentials"
    if content is not None:
        path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        auth = Authenticator(auth_file=str(path), bcrypt_cost=COST)
    assert auth.authenticate(basic("alice", PW_A)).status == 503
    assert "not configured" in caplog.text


# --- reload ----------------------------------------------------------------------------------


def test_rewritten_file_is_reloaded_at_most_once_per_second(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:team-a\n")
    auth = Authenticator(auth_file=str(path), clock=clock, bcrypt_cost=COST)
    assert auth.authenticate(basic("alice", PW_A)).ok

    path.write_text(f"alice:{HASH_B}:team-b\n{TOKEN_LINE}\n")
    clock.now += 0.5
    assert auth.authenticate(basic("alice", PW_A)).ok  # not checked yet (and cached)
    clock.now += 0.6
    assert not auth.authenticate(basic("alice", PW_A)).ok  # old password revoked; cache dropped
    decision = auth.authenticate(basic("alice", PW_B))
    assert decision.ok and decision.principal is not None and decision.principal.may_read("team-b")
    assert not decision.principal.may_read("team-a")
    assert auth.authenticate(f"Bearer {TOKEN}").ok


def test_reload_can_be_forced_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:*\n")
    auth = Authenticator(auth_file=str(path), clock=FakeClock(), bcrypt_cost=COST)
    assert not auth.reload()  # unchanged
    path.write_text(f"bob:{HASH_B}:*\n")
    assert auth.reload()
    assert auth.authenticate(basic("bob", PW_B)).ok
    assert not auth.authenticate(basic("alice", PW_A)).ok


def test_same_size_rewrite_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:team-a\n")
    auth = Authenticator(auth_file=str(path), clock=FakeClock(), bcrypt_cost=COST)
    stat = path.stat()
    path.write_text(f"alice:{HASH_A}:team-b\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert auth.reload()
    decision = auth.authenticate(basic("alice", PW_A))
    assert decision.principal is not None and decision.principal.may_read("team-b")


def test_kubernetes_secret_symlink_swap(tmp_path: Path) -> None:
    """A Secret volume: credentials -> ..data/credentials, ..data -> ..<timestamp> swapped atomically."""
    volume = tmp_path / "secret"
    volume.mkdir()
    first = volume / "..2024_01_01_00_00_00.1"
    first.mkdir()
    (first / "credentials").write_text(f"alice:{HASH_A}:*\n")
    (volume / "..data").symlink_to(first.name)
    (volume / "credentials").symlink_to("..data/credentials")
    clock = FakeClock()
    auth = Authenticator(auth_file=str(volume / "credentials"), clock=clock, bcrypt_cost=COST)
    assert auth.authenticate(basic("alice", PW_A)).ok

    second = volume / "..2024_01_01_00_05_00.2"
    second.mkdir()
    (second / "credentials").write_text(f"alice:{HASH_B}:*\n")
    os.utime(second / "credentials", ns=(0, (first / "credentials").stat().st_mtime_ns))  # same mtime even
    (volume / "..data_tmp").symlink_to(second.name)
    os.replace(volume / "..data_tmp", volume / "..data")  # what the kubelet does
    for child in first.iterdir():
        child.unlink()
    first.rmdir()

    clock.now += 1.0
    assert auth.authenticate(basic("alice", PW_B)).ok
    assert not auth.authenticate(basic("alice", PW_A)).ok


def test_deleted_file_fails_closed_and_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:*\n")
    auth = Authenticator(auth_file=str(path), clock=FakeClock(), bcrypt_cost=COST)
    path.unlink()
    with caplog.at_level(logging.ERROR):
        assert auth.reload()
    assert auth.authenticate(basic("alice", PW_A)).status == 503
    assert "cannot be read" in caplog.text
    path.write_text(f"alice:{HASH_A}:*\n")
    assert auth.reload()
    assert auth.authenticate(basic("alice", PW_A)).ok


def test_env_user_survives_file_reloads(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:*\n")
    auth = Authenticator("admin", "env-password-1", auth_file=str(path), clock=FakeClock(), bcrypt_cost=COST)
    path.write_text("")
    assert auth.reload()
    assert auth.authenticate(basic("admin", "env-password-1")).ok
    assert not auth.authenticate(basic("alice", PW_A)).ok


def test_reload_checks_stat_cheaply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"alice:{HASH_A}:*\n")
    clock = FakeClock()
    auth = Authenticator(auth_file=str(path), clock=clock, bcrypt_cost=COST)
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(str(p)) or real_stat(p, *a, **k))
    header = basic("alice", PW_A)
    for _ in range(100):  # 100 requests within one second: no stat at all
        clock.now += 0.005
        assert auth.authenticate(header).ok
    assert stats == []
    clock.now += 1
    auth.authenticate(header)
    assert len(stats) == 1
