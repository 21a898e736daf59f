"""The credentials file: format and parsing (it is read again on change: `shared.watched_files`).

One entry per line, htpasswd style, `#` starts a comment line, blank lines are ignored:

    <name>:<hash>:<namespaces>

    alice:$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW:team-a,team-b
    release-bot:$2y$12$...:*
    gitlab-ci:sha256$9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08:team-a

- `<hash>` starting `$2a$`, `$2b$` or `$2y$` is a bcrypt password hash: `<name>` logs in with HTTP
  Basic. Made by `tpl-credentials hash-password` or `htpasswd -nB` (then append `:<namespaces>`).
- `<hash>` of the form `sha256$<64 hex digits>` is the SHA-256 of a bearer token: the token is sent
  as `Authorization: Bearer <token>` and `<name>` only names the caller (logs, stream limits).
  Made by `tpl-credentials mint-token`. Several tokens may share a name (rotation overlap).
- `<namespaces>`: comma-separated namespace names, or `*` for every namespace. Required: an entry
  without it is rejected rather than silently granted everything.

A line that does not parse is skipped and logged with its number only (it may hold a secret). A
user name defined twice keeps its first definition.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.watched_files import WatchedFile

log = logging.getLogger(__name__)

ALL_NAMESPACES = "*"
TOKEN_HASH_PREFIX = "sha256$"  # noqa: S105 -- a format marker, not a secret
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# Basic user names cannot contain ':'; no whitespace or control characters either, so a name is
# always safe to show in a log line.
_NAME = re.compile(r"[A-Za-z0-9._@+=-]{1,128}")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_TOKEN_HASH = re.compile(r"sha256\$[0-9a-f]{64}")
MAX_FILE_BYTES = 4 * 1024 * 1024  # a credentials file larger than this is a mistake, not a config


@dataclass(frozen=True)
class UserEntry:
    name: str
    password_hash: bytes  # bcrypt
    namespaces: frozenset[str] | None  # None: every namespace

    @property
    def cost(self) -> int:
        return int(self.password_hash[4:6])


@dataclass(frozen=True)
class TokenEntry:
    name: str
    digest: bytes  # SHA-256 of the token
    namespaces: frozenset[str] | None


@dataclass(frozen=True)
class Credentials:
    users: dict[str, UserEntry]
    tokens: tuple[TokenEntry, ...]

    def __bool__(self) -> bool:
        return bool(self.users or self.tokens)


EMPTY = Credentials(users={}, tokens=())


def token_digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def parse_namespaces(text: str) -> frozenset[str] | None:
    """`*` -> None (all); otherwise a non-empty set of valid namespace names. Raises ValueError."""
    items = [item.strip() for item in text.split(",")]
    if items == [ALL_NAMESPACES]:
        return None
    if not items or any(not _NAMESPACE.fullmatch(item) for item in items):
        raise ValueError("namespaces must be '*' or a comma-separated list of namespace names")
    return frozenset(items)


def format_namespaces(namespaces: frozenset[str] | None) -> str:
    return ALL_NAMESPACES if namespaces is None else ",".join(sorted(namespaces))


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError("names are 1-128 characters of letters, digits and . _ @ + = -")
    return name


def parse_line(line: str) -> UserEntry | TokenEntry:
    """One non-comment line. Raises ValueError with a message that never quotes the line."""
    parts = line.strip().split(":")
    if len(parts) != 3:
        raise ValueError("expected <name>:<hash>:<namespaces>")
    name, secret, namespaces_text = parts
    check_name(name)
    namespaces = parse_namespaces(namespaces_text)
    if secret.startswith(BCRYPT_PREFIXES):
        match = _BCRYPT.fullmatch(secret)
        if not match or not 4 <= int(match.group(1)) <= 31:
            raise ValueError("malformed bcrypt hash")
        return UserEntry(name, secret.encode("ascii"), namespaces)
    if secret.startswith(TOKEN_HASH_PREFIX):
        if not _TOKEN_HASH.fullmatch(secret):
            raise ValueError("malformed token hash (sha256$ and 64 lowercase hex digits)")
        return TokenEntry(name, bytes.fromhex(secret[len(TOKEN_HASH_PREFIX) :]), namespaces)
    raise ValueError("unsupported hash: use bcrypt ($2b$/$2y$) or sha256$<hex> for tokens")


def parse(lines: Iterable[str], source: str = "credentials") -> tuple[Credentials, list[str]]:
    """All valid entries and a list of problems (line numbers and reasons, no content)."""
    users: dict[str, UserEntry] = {}
    tokens: list[TokenEntry] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            entry = parse_line(stripped)
        except ValueError as exc:
            problems.append(f"{source} line {number}: {exc}; line ignored")
            continue
        if isinstance(entry, TokenEntry):
            tokens.append(entry)
        elif entry.name in users:
            problems.append(f"{source} line {number}: user {entry.name!r} is already defined; line ignored")
        else:
            users[entry.name] = entry
    return Credentials(users=users, tokens=tuple(tokens)), problems


class CredentialsFile(WatchedFile):
    """A credentials file and its last loaded version (a Secret volume: see `shared.watched_files`)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.unusable = False  # the last load found no usable file at all (not just bad lines)

    def load(self) -> tuple[Credentials, list[str]]:
        """Read and parse; on any problem with the whole file: no entries (fail closed), and the reason."""
        self.unusable = False
        if self.mark() is None:
            return self._unusable("cannot be read (missing?)")
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return self._unusable(f"cannot be read ({exc.strerror})")
        if len(raw) > MAX_FILE_BYTES:
            return self._unusable(f"is larger than {MAX_FILE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._unusable("is not UTF-8")
        return parse(text.splitlines(), source=self.path)

    def _unusable(self, reason: str) -> tuple[Credentials, list[str]]:
        self.unusable = True
        return EMPTY, [f"credentials file {self.path} {reason}; no users or tokens from it"]
