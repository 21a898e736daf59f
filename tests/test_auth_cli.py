"""`tpl-credentials`: its output is accepted by the authenticator."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from shared.auth import Authenticator
from shared.auth.cli import main


def run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, stdin=io.StringIO(stdin), out=out)
    return code, out.getvalue()


def test_hash_password_entry_works(tmp_path: Path) -> None:
    code, out = run(
        ["hash-password", "--user", "alice", "--namespaces", "team-b,team-a", "--cost", "4"], "a-long-password\n"
    )
    assert code == 0
    line = out.strip()
    assert line.startswith("alice:$2b$04$") and line.endswith(":team-a,team-b")
    assert "a-long-password" not in out
    path = tmp_path / "credentials"
    path.write_text(line + "\n")
    auth = Authenticator(auth_file=str(path), bcrypt_cost=4)
    decision = auth.authenticate("Basic " + base64.b64encode(b"alice:a-long-password").decode())
    assert decision.ok and decision.principal is not None and decision.principal.may_read("team-a")


def test_hash_password_bare_hash() -> None:
    code, out = run(["hash-password", "--cost", "4"], "a-long-password")
    assert code == 0 and out.startswith("$2b$04$") and out.count(":") == 0


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (["hash-password", "--user", "alice"], "a-long-password\n"),  # namespaces required
        (["hash-password", "--user", "al:ice", "--namespaces", "*"], "a-long-password\n"),
        (["hash-password", "--user", "alice", "--namespaces", "Bad_NS"], "a-long-password\n"),
        (["hash-password", "--cost", "4"], "short\n"),
        (["hash-password", "--cost", "4"], "p" * 73 + "\n"),
        (["mint-token", "--name", "bad name", "--namespaces", "*"], ""),
    ],
)
def test_usage_errors(argv: list[str], stdin: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(argv, stdin)
    assert code == 2 and out == ""
    assert "a-long-password" not in capsys.readouterr().err


def test_mint_token_entry_works(tmp_path: Path) -> None:
    code, out = run(["mint-token", "--name", "gitlab-ci", "--namespaces", "team-a"])
    assert code == 0
    token, entry = [line for line in out.splitlines() if not line.startswith("#")]
    assert token.startswith("tpl_") and len(token) >= 40
    assert entry.startswith("gitlab-ci:sha256$") and token not in entry
    path = tmp_path / "credentials"
    path.write_text(entry + "\n")
    decision = Authenticator(auth_file=str(path)).authenticate(f"Bearer {token}")
    assert decision.ok and decision.principal is not None and decision.principal.name == "gitlab-ci"
    _, again = run(["mint-token", "--name", "gitlab-ci", "--namespaces", "team-a"])
    assert token not in again  # a fresh token every time


def test_check(tmp_path: Path) -> None:
    _, out = run(["mint-token", "--name", "ci", "--namespaces", "*"])
    entry = out.splitlines()[-1]
    path = tmp_path / "credentials"
    path.write_text(f"# comment\n{entry}\n")
    assert run(["check", str(path)]) == (0, "0 users, 1 tokens\n")
    path.write_text(f"{entry}\nbroken-line\n")
    code, out = run(["check", str(path)])
    assert code == 1 and "line 2" in out and "broken-line" not in out
    assert run(["check", str(tmp_path / "missing")])[0] == 1
