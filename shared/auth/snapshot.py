"""The credentials in force: one immutable snapshot of users and tokens, swapped whole on reload."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import bcrypt

from shared.auth.credentials import Credentials, parse_namespaces
from shared.auth.decision import Principal
from shared.config import AuthSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class User:
    principal: Principal
    password_hash: bytes
    prehashed: bool  # the env user: password_hash holds sha256(password), compared in constant time


@dataclass(frozen=True)
class Snapshot:
    """One immutable version of the configuration; swapped whole on reload."""

    generation: int
    users: Mapping[str, User]
    tokens: tuple[tuple[bytes, Principal], ...]
    dummy_hash: bytes

    @property
    def configured(self) -> bool:
        return bool(self.users or self.tokens)


def env_user_namespaces(settings: AuthSettings) -> frozenset[str] | None:
    """What the AUTH_USERNAME user may read: AUTH_NAMESPACES (`*`: every namespace), else only
    NAMESPACE. A value that does not parse narrows to NAMESPACE, never widens."""
    if not settings.env_namespaces:
        return frozenset({settings.namespace})
    try:
        return parse_namespaces(settings.env_namespaces)
    except ValueError:
        log.error("AUTH_NAMESPACES is not '*' or a list of namespace names; using NAMESPACE only")
        return frozenset({settings.namespace})


def dummy_hash(cost: int) -> bytes:
    """A well-formed bcrypt hash labelled `cost` that no password matches, made at cost 4: checking
    against it costs as much as any real hash of `cost`, building it costs nothing."""
    cheap = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(4))
    return b"$2b$%02d$" % cost + cheap[7:]


def build_snapshot(
    credentials: Credentials,
    env_user: str | None,
    env_password: bytes | None,
    default_cost: int,
    generation: int,
    env_namespaces: frozenset[str] | None = None,
) -> Snapshot:
    # Unknown users are verified against a dummy hash of the cost most users have, and the env
    # user is hashed at that cost too, so a wrong password costs the same for every name.
    costs = Counter(entry.cost for entry in credentials.users.values())
    cost = max(costs, key=lambda c: (costs[c], c)) if costs else default_cost
    if len(costs) > 1:
        log.warning(
            "credentials file mixes bcrypt costs %s; failed logins of users with a different cost than %d "
            "are distinguishable by timing from unknown users",
            sorted(costs),
            cost,
        )
    users: dict[str, User] = {
        name: User(Principal(name, entry.namespaces, "user"), entry.password_hash, prehashed=False)
        for name, entry in credentials.users.items()
    }
    if env_user is not None and env_password is not None:
        if env_user in users:
            log.warning("user %s is defined in the credentials file and AUTH_USERNAME; the file wins", env_user)
        else:
            # The service holds this password in clear anyway: a digest compare costs microseconds,
            # so a cold start does not pay bcrypt to build or check it (failures still do: `_verify`).
            env_digest = hashlib.sha256(env_password).digest()
            users[env_user] = User(Principal(env_user, env_namespaces, "user"), env_digest, prehashed=True)
    tokens = tuple((entry.digest, Principal(entry.name, entry.namespaces, "token")) for entry in credentials.tokens)
    return Snapshot(
        generation=generation,
        users=users,
        tokens=tokens,
        dummy_hash=dummy_hash(cost),
    )
