"""HTTP Basic and Bearer authentication against env credentials and a reloadable credentials file.

See docs/security.md for the threat model and the reasoning behind each measure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping

import bcrypt

from shared.auth.cache import VerifiedCache
from shared.auth.credentials import Credentials, CredentialsFile, format_namespaces, token_digest
from shared.auth.decision import Decision, Principal
from shared.auth.limits import Clock, SlidingWindow, client_key
from shared.auth.oidc import OidcVerifier, looks_like_jwt
from shared.auth.snapshot import Snapshot, User, build_snapshot, env_user_namespaces
from shared.config import DEFAULT_BCRYPT_COST, AuthSettings, Env, load
from shared.watched_files import ReloadGate

log = logging.getLogger(__name__)

# Far above any real credential (a 72-byte bcrypt password or a 47-character token in base64), far
# below what would make decoding cost anything.
MAX_AUTHORIZATION_LENGTH = 4096
MAX_USERNAME_LENGTH = 256
BCRYPT_MAX_PASSWORD = 72  # bcrypt ignores the rest; bcrypt 5 raises instead, so truncate as htpasswd does

CheckPw = Callable[[bytes, bytes], bool]


def _shown(value: str) -> str:
    """A caller-supplied value made safe for one log line."""
    return repr(value[:64])


class Authenticator:
    """Checks `Authorization` headers; see the module docstring of `shared.auth` for the surface."""

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        auth_file: str | None = None,
        env_namespaces: frozenset[str] | None = None,
        cache_ttl: float = 60.0,
        max_failures_per_address: int = 10,
        max_failures_per_user: int = 5,
        failure_window: float = 60.0,
        bcrypt_cost: int = DEFAULT_BCRYPT_COST,
        reload_interval: float = 1.0,
        clock: Clock = time.monotonic,
        checkpw: CheckPw = bcrypt.checkpw,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._oidc = oidc  # CI jobs' OIDC tokens (shared/auth/oidc.py), beside users and tokens
        self._checkpw = checkpw
        self._bcrypt_cost = bcrypt_cost
        # A fresh random key per process: cache keys are useless outside this process and cannot
        # be precomputed from guessed passwords.
        # Keyed once: hmac.digest with a digest name looks the algorithm up in OpenSSL on every call
        # (slow in OpenSSL 3); a copy of the keyed HMAC does not.
        self._cache_mac = hmac.new(secrets.token_bytes(32), digestmod=hashlib.sha256)
        self._cache = VerifiedCache(cache_ttl, clock)
        # Failures per client (an address, an IPv6 /64) whatever the user, and per (user, client):
        # a stranger's failures block the stranger, never the user on another client.
        self._address_failures = SlidingWindow(max_failures_per_address, failure_window, clock)
        self._user_failures = SlidingWindow(max_failures_per_user, failure_window, clock)
        self._reload = ReloadGate("the credentials file", reload_interval, clock)
        self._generation = 0
        self._was_configured: bool | None = None

        self._env_user: str | None = None
        self._env_password: bytes | None = None
        self._env_namespaces = env_namespaces
        if username and password:
            self._env_user = username
            self._env_password = password.encode("utf-8")
        elif username or password:
            log.error("AUTH_USERNAME and AUTH_PASSWORD must be set together; ignoring the one that is set")
        self._file = CredentialsFile(auth_file) if auth_file else None
        self._snapshot = self._build(self._file.load() if self._file else (Credentials({}, ()), []))

    @classmethod
    def from_settings(cls, settings: AuthSettings, **overrides: object) -> Authenticator:
        """An authenticator for `settings`; keyword overrides win (tests)."""
        options: dict[str, object] = {
            "auth_file": settings.auth_file,
            "env_namespaces": env_user_namespaces(settings),
            "cache_ttl": settings.cache_ttl,
            "max_failures_per_address": settings.max_failures_per_address,
            "max_failures_per_user": settings.max_failures_per_user,
            "failure_window": settings.failure_window,
            "bcrypt_cost": settings.bcrypt_cost,
        }
        if settings.oidc_config and "oidc" not in overrides:
            options["oidc"] = OidcVerifier.from_file(settings.oidc_config, settings.oidc_ca_file)
        options.update(overrides)
        return cls(settings.username, settings.password, **options)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Authenticator:
        """Settings read by the configuration loader (`shared.config`) from `environ`."""
        return cls.from_settings(load(AuthSettings, Env(environ)), **overrides)

    @property
    def configured(self) -> bool:
        return self._snapshot.configured or self._oidc is not None

    # --- configuration -------------------------------------------------------------------------

    def reload(self, force: bool = False) -> bool:
        """Re-read the credentials file now if it changed (or always with force); True if reloaded.

        Requests call this at most once per `reload_interval`; tests and operators may call it
        directly instead of waiting.
        """
        if self._file is None:
            return False
        return self._reload.now(lambda: self._load_if_changed(force))

    def _maybe_reload(self) -> None:
        if self._file is not None:
            self._reload.maybe(self._load_if_changed)

    def _load_if_changed(self, force: bool = False) -> bool:
        assert self._file is not None
        if not force and not self._file.changed():
            return False
        self._snapshot = self._build(self._file.load())
        return True

    def _build(self, loaded: tuple[Credentials, list[str]]) -> Snapshot:
        credentials, problems = loaded
        level = logging.ERROR if self._file is not None and self._file.unusable else logging.WARNING
        for problem in problems:
            log.log(level, "%s", problem)
        self._generation += 1
        snapshot = build_snapshot(
            credentials, self._env_user, self._env_password, self._bcrypt_cost, self._generation, self._env_namespaces
        )
        self._cache.clear()  # a changed file may have revoked or re-scoped a cached user
        self._log_configuration(snapshot, credentials)
        return snapshot

    def _log_configuration(self, snapshot: Snapshot, credentials: Credentials) -> None:
        if not snapshot.configured and self._oidc is None:
            if self._was_configured is not False:
                sources = "AUTH_USERNAME/AUTH_PASSWORD" + (f" or AUTH_FILE={self._file.path}" if self._file else "")
                log.error(
                    "authentication is not configured (no usable credentials in %s): every request to a protected "
                    "endpoint is refused with 503",
                    sources,
                )
            self._was_configured = False
            return
        self._was_configured = True
        source = self._file.path if self._file else "no credentials file"
        env = f", plus AUTH_USERNAME user {self._env_user} (namespaces {format_namespaces(self._env_namespaces)})"
        shown = env if self._env_user in snapshot.users else ""
        log.info(
            "authentication: %d users, %d tokens from %s%s",
            len(credentials.users),
            len(credentials.tokens),
            source,
            shown,
        )

    # --- requests ------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, client_address: str = "") -> Decision:
        self._maybe_reload()
        snapshot = self._snapshot
        if not snapshot.configured and self._oidc is None:
            return Decision.unavailable()
        if not authorization:
            return Decision.challenge("authentication required")
        if len(authorization) > MAX_AUTHORIZATION_LENGTH:
            return Decision.challenge("malformed Authorization header")
        parts = authorization.strip().split(None, 1)
        if len(parts) != 2:
            return Decision.challenge("malformed Authorization header")
        scheme, value = parts[0].lower(), parts[1].strip()
        address = client_key(client_address)
        if scheme == "basic":
            return self._basic(value, address, snapshot)
        if scheme == "bearer":
            return self._bearer(value, address, snapshot)
        return Decision.challenge("unsupported authorization scheme; use HTTP Basic or Bearer")

    def _basic(self, value: str, address: str, snapshot: Snapshot) -> Decision:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
            return Decision.challenge("malformed Basic credentials")
        raw_user, sep, password = decoded.partition(b":")
        if not sep:
            return Decision.challenge("malformed Basic credentials")
        try:
            user = raw_user.decode("utf-8")
        except UnicodeDecodeError:
            return Decision.challenge("malformed Basic credentials")
        if not user or len(user) > MAX_USERNAME_LENGTH or not user.isprintable():
            # No such name can exist in the file format, so refusing fast reveals nothing.
            return Decision.challenge("invalid credentials")

        mac = self._cache_mac.copy()
        mac.update(b"basic\0" + raw_user + b"\0" + password)
        cache_key = mac.digest()
        cached = self._cache.get(cache_key, snapshot.generation)
        if cached is not None:
            # Proven correct earlier: never blocked by failures of others (see docs/security.md).
            return Decision.allow(cached)

        # Counted as failures before bcrypt runs (and forgotten on success), so concurrent bursts
        # cannot exceed the limits.
        wait, address_stamp = self._address_failures.attempt(address)
        if wait:
            return Decision.too_many(wait)
        wait, user_stamp = self._user_failures.attempt((user, address))
        if wait:
            self._address_failures.undo(address, address_stamp)
            return Decision.too_many(wait)

        entry = snapshot.users.get(user)
        if self._verify(entry, password, snapshot):
            assert entry is not None
            self._address_failures.undo(address, address_stamp)
            self._user_failures.undo((user, address), user_stamp)
            self._cache.put(cache_key, entry.principal, snapshot.generation)
            return Decision.allow(entry.principal)
        self._failed(address, user, known=entry is not None)
        return Decision.challenge("invalid credentials")

    def _verify(self, entry: User | None, password: bytes, snapshot: Snapshot) -> bool:
        try:
            if entry is None:
                # Same work as a known user with a wrong password: timing does not tell names apart.
                self._checkpw(password[:BCRYPT_MAX_PASSWORD], snapshot.dummy_hash)
                return False
            if entry.prehashed:  # the env user: a failure pays one bcrypt like every other failure
                if hmac.compare_digest(hashlib.sha256(password).digest(), entry.password_hash):
                    return True
                self._checkpw(password[:BCRYPT_MAX_PASSWORD], snapshot.dummy_hash)
                return False
            return bool(self._checkpw(password[:BCRYPT_MAX_PASSWORD], entry.password_hash))
        except ValueError:  # a hash bcrypt refuses (validated at load, so should not happen)
            log.error("bcrypt refused the stored hash of a user; treating the login as failed")
            return False

    def _bearer(self, value: str, address: str, snapshot: Snapshot) -> Decision:
        if not value.isascii() or not value.isprintable() or " " in value:
            return Decision.challenge("malformed Bearer token")
        digest = token_digest(value)
        found: Principal | None = None
        # Compare with every token, without stopping early: constant time in the match position.
        for stored, principal in snapshot.tokens:
            if hmac.compare_digest(digest, stored):
                found = principal
        if found is not None:
            # A 256-bit token cannot be guessed, and checking it costs microseconds, so a valid
            # token is never blocked by failures from its address.
            return Decision.allow(found)
        refusal = Decision.challenge("invalid credentials")
        if self._oidc is not None and looks_like_jwt(value):
            refusal = self._oidc.authenticate(value)
            if refusal.status != 401:  # allowed, unmapped claims (403), or the issuer unreachable (503)
                return refusal
        wait, _ = self._address_failures.attempt(address)
        if wait:
            return Decision.too_many(wait)
        self._failed(address, None, known=False)
        return refusal

    def _failed(self, address: str, user: str | None, known: bool) -> None:
        # The name is logged only when it exists: a name that does not may be a password typed
        # into the wrong field.
        who = f"user {user}" if known and user else ("unknown user" if user else "bearer token")
        log.info("authentication failed: %s from %s", who, _shown(address))
        # The failure was already counted by `attempt`; say so once the limit is reached.
        if self._address_failures.retry_after(address):
            log.warning("failed authentications from %s reached the limit; blocked for a while", _shown(address))
        if user is not None and known and self._user_failures.retry_after((user, address)):
            log.warning("failed authentications for user %s from %s reached the limit", user, _shown(address))
