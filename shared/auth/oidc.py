"""CI jobs' OIDC tokens (GitLab CI `id_tokens`, GitHub Actions) as `Authorization: Bearer <jwt>`.

A token is accepted when its issuer is configured (`shared.auth.oidc_config`), its header names an
algorithm that issuer may use (asymmetric only), its signature verifies with the issuer's key of
that `kid` (`shared.auth.oidc_keys`), `iss` and `aud` are the configured ones and `exp`/`nbf`/`iat`
hold within the leeway. Then the first rule its claims match names the namespaces (and run labels)
it may read: none matching is 403. PyJWT does the JOSE work; nothing here is hand-written crypto.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from shared.auth.decision import REALM, Decision, Principal
from shared.auth.oidc_config import ConfigFile, OidcConfig, Rule
from shared.auth.oidc_keys import FetchJson, IssuerKeys, KeysUnavailable, https_fetcher
from shared.watched_files import ReloadGate

log = logging.getLogger(__name__)

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# Which key types may carry which algorithms: an RSA key never verifies an ES256 token, etc.
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
KEYS_RETRY_AFTER = "10"


def looks_like_jwt(value: str) -> bool:
    """A compact JWS: three base64url parts; its header always starts `eyJ` (`{"`)."""
    return value.startswith("eyJ") and value.count(".") == 2


def rejected(error: str) -> Decision:
    challenge = f'Bearer realm="{REALM}", error="invalid_token"'
    return Decision(ok=False, status=401, error=error, headers={"WWW-Authenticate": challenge})


def _claim_problem(err: jwt.PyJWTError) -> str:
    if isinstance(err, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(err, jwt.ImmatureSignatureError):
        return "token not valid yet"
    if isinstance(err, jwt.InvalidAudienceError):
        return "token audience is not this service"
    if isinstance(err, jwt.InvalidIssuerError):
        return "token issuer is not trusted"
    if isinstance(err, jwt.MissingRequiredClaimError):
        return f"token lacks the {err.claim!r} claim"
    if isinstance(err, jwt.InvalidSignatureError | jwt.InvalidAlgorithmError | jwt.InvalidKeyError):
        return "token signature is invalid"
    return "invalid token"


class OidcVerifier:
    """Checks OIDC bearer tokens against the configured issuers and rules."""

    def __init__(
        self,
        config: OidcConfig,
        fetch: FetchJson,
        source: ConfigFile | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_interval: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self._source = source
        self._reload = ReloadGate("the OIDC configuration", reload_interval, clock)
        self._install(config)

    @classmethod
    def from_file(cls, path: str, ca_file: str | None = None) -> OidcVerifier:
        source = ConfigFile(path)
        return cls(source.load(), https_fetcher(ca_file), source)

    def _install(self, config: OidcConfig) -> None:
        # Issuers whose settings did not change keep their cached keys.
        old = getattr(self, "keys", {})
        self.keys = {
            iss: old[iss] if iss in old and old[iss].issuer == issuer else IssuerKeys(issuer, self._fetch)
            for iss, issuer in config.issuers.items()
        }
        self.config = config

    def _maybe_reload(self) -> None:
        if self._source is not None:
            self._reload.maybe(self._load_if_changed)

    def _load_if_changed(self) -> None:
        assert self._source is not None
        if self._source.changed():
            self._install(self._source.load())

    def authenticate(self, token: str) -> Decision:
        self._maybe_reload()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return rejected("malformed token")
        iss = unverified.get("iss")
        issuer_keys = self.keys.get(iss) if isinstance(iss, str) else None
        if issuer_keys is None:
            return rejected("token issuer is not trusted")
        issuer = issuer_keys.issuer
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in issuer.algorithms:
            return rejected("token algorithm is not allowed")
        if kid is not None and not isinstance(kid, str):
            return rejected("malformed token")
        try:
            jwk = issuer_keys.key(kid)
        except KeysUnavailable:
            # The token may well be valid: say so instead of refusing it as a bad credential.
            return Decision(
                ok=False,
                status=503,
                error="the token issuer's signing keys cannot be fetched; retry later",
                headers={"Retry-After": KEYS_RETRY_AFTER},
            )
        if jwk is None:
            return rejected("token signed with an unknown key")
        if jwk.get("kty") != _KEY_TYPE.get(alg[:2]) or jwk.get("alg", alg) != alg:
            return rejected("token signature is invalid")
        try:
            claims = jwt.decode(
                token,
                key=jwt.PyJWK(dict(jwk), algorithm=alg),
                algorithms=[alg],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as err:
            return rejected(_claim_problem(err))
        return self._granted(claims)

    def _granted(self, claims: Mapping[str, Any]) -> Decision:
        subject = str(claims["sub"])[:256]
        rule = next((r for r in self.config.rules if r.issuer == claims["iss"] and r.matches(claims)), None)
        if rule is None:
            log.info("OIDC token of %r from %s matches no rule", subject, claims["iss"])
            return Decision(ok=False, status=403, error="no rule grants this token's claims any access")
        return Decision.allow(principal_of(subject, rule))


def principal_of(subject: str, rule: Rule) -> Principal:
    return Principal(subject, rule.namespaces, "oidc", rule.run_labels)
