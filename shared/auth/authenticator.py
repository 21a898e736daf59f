from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

REALM = "tekton-pipeline-listener"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the namespaces it may read (None: all)."""

    name: str
    namespaces: frozenset[str] | None = None

    def may_read(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


@dataclass(frozen=True)
class Decision:
    ok: bool
    principal: Principal | None = None
    status: int = 200
    error: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def allow(cls, principal: Principal) -> Decision:
        return cls(ok=True, principal=principal)

    @classmethod
    def challenge(cls, error: str) -> Decision:
        return cls(
            ok=False, status=401, error=error, headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
        )


class Authenticator:
    """Checks HTTP Basic credentials in constant time."""

    def __init__(self, username: str | None, password: str | None) -> None:
        self._user = (username or "").encode()
        self._password = (password or "").encode()
        self.configured = bool(username) and bool(password)
        if not self.configured:
            log.error(
                "no credentials configured (AUTH_USERNAME/AUTH_PASSWORD): "
                "every request to a protected endpoint is refused"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Authenticator:
        return cls(environ.get("AUTH_USERNAME"), environ.get("AUTH_PASSWORD"))

    def authenticate(self, authorization: str | None, client_address: str = "") -> Decision:
        if not self.configured:
            return Decision(ok=False, status=503, error="authentication is not configured on this service")
        if not authorization:
            return Decision.challenge("authentication required")
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or not value:
            return Decision.challenge("unsupported authorization scheme; use HTTP Basic")
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return Decision.challenge("malformed Basic credentials")
        user, sep, password = decoded.partition(b":")
        if not sep:
            return Decision.challenge("malformed Basic credentials")
        # Both comparisons always run, so timing does not tell which part was wrong.
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        if user_ok and password_ok:
            return Decision.allow(Principal(self._user.decode()))
        return Decision.challenge("invalid credentials")
