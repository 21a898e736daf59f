"""Configuration from the environment: one reader, one failure policy, one settings object per user.

Names follow the seed (PORT, NAMESPACE, KUBECONFIG); every variable is listed in README.md,
docs/security.md and docs/notify.md.

The failure policy, the same for every setting: a value that does not parse or is out of range is
logged at ERROR by name (never its value, which may be a secret) and its default is used, so one
typo does not take the service down. The single exception is a setting whose default would
silently widen what is trusted or locked out: `TRUSTED_PROXIES` is refused with `SettingsError`
(every request then answers 500 "misconfigured" and the log says why), because falling back to "no
trusted proxy" makes every client behind the proxy share one failed-login budget.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from shared.kube.names import key_problem

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_OFF = ("off", "false", "0", "no")
N = TypeVar("N", int, float)
S = TypeVar("S")


class SettingsError(ValueError):
    pass


class Env:
    """Typed reads of environment variables under the failure policy above."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def text(self, name: str, default: str = "", check: Callable[[str], str | None] | None = None) -> str:
        """`check`: why a value is unfit (None: fit)."""
        value = self.environ.get(name, "").strip()
        if value and check and (problem := check(value)):
            return self._rejected(name, problem, default)
        return value or default

    def number(self, name: str, default: float, low: float = 0.0, high: float = math.inf) -> float:
        return self._parsed(name, default, float, low, high)

    def integer(self, name: str, default: int, low: int = 0, high: int = 2**31) -> int:
        return self._parsed(name, default, int, low, high)

    def _parsed(self, name: str, default: N, parse: Callable[[str], N], low: float, high: float) -> N:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            return self._rejected(name, f"is not {'an integer' if parse is int else 'a number'}", default)
        if not math.isfinite(value) or not low <= value <= high:
            bounds = f"between {low:g} and {high:g}" if high < 2**31 else f"at least {low:g}"
            return self._rejected(name, f"is not {bounds}", default)
        return value

    def switch(self, name: str, default: bool) -> bool:
        """On unless set to off/false/0/no (`auto` and anything else mean on)."""
        raw = self.environ.get(name, "").strip().lower()
        return default if not raw else raw not in _OFF

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.environ.get(name, "").strip().lower()
        if not raw:
            return default
        return raw if raw in choices else self._rejected(name, f"is not one of {', '.join(choices)}", default)

    def networks(self, name: str) -> tuple[Network, ...]:
        out = []
        for item in self.environ.get(name, "").replace(" ", ",").split(","):
            if item:
                try:
                    out.append(ipaddress.ip_network(item, strict=False))
                except ValueError as err:
                    raise SettingsError(f"{name}: {item!r} is not an IP network") from err
        return tuple(out)

    def secret(self, name: str, file_path: str | None = None) -> str | None:
        """A secret from `file_path`, else `$NAME_FILE`, else `$NAME`; stripped; None if none is set.
        Files are read on every call, so a rotated Secret is picked up without a restart."""
        path = file_path or self.environ.get(f"{name}_FILE")
        if path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as err:
                log.error("cannot read the secret for %s from %s: %s", name, path, err.strerror)
                return None
            return value or None
        return self.environ.get(name, "").strip() or None

    @staticmethod
    def _rejected(name: str, why: str, default: S) -> S:
        log.error("%s %s; using the default %s", name, why, default)
        return default


def setting(
    var: str,
    default: Any,
    low: float = 0.0,
    high: float = math.inf,
    secret: bool = False,
    choices: tuple[str, ...] = (),
    check: Callable[[str], str | None] | None = None,
) -> Any:
    """A settings field read from the environment variable `var` by `load`; its type is its default's
    (`choices`: the words a text setting may be, compared in lower case; `check`: why a text value
    is unfit, or None)."""
    metadata = {"env": var, "low": low, "high": high, "secret": secret, "choices": choices, "check": check}
    return field(default=default, repr=not secret, metadata=metadata)


def load(cls: type[S], env: Env) -> S:
    """An instance of the settings dataclass `cls`: each `setting` field from its variable, each
    nested settings dataclass loaded in turn. The one place that maps variables to values."""
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        meta = item.metadata
        if "env" not in meta:
            if is_dataclass(item.default_factory):
                values[item.name] = load(item.default_factory, env)  # type: ignore[arg-type]
            continue
        var, default, low, high = meta["env"], item.default, meta["low"], meta["high"]
        if meta["secret"]:
            values[item.name] = env.environ.get(var) or None  # as given: a password may have spaces
        elif isinstance(default, bool):
            values[item.name] = env.switch(var, default)
        elif isinstance(default, int):
            values[item.name] = env.integer(var, default, int(low), int(min(high, 2**31)))
        elif isinstance(default, float):
            values[item.name] = env.number(var, default, low, high)
        elif isinstance(default, tuple):
            values[item.name] = env.networks(var)
        elif meta["choices"]:
            values[item.name] = env.choice(var, default, meta["choices"])
        else:
            values[item.name] = env.text(var, default, meta["check"])
    return cls(**values)


DEFAULT_BCRYPT_COST = 12


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the protected endpoints, and the limits on failed logins (docs/security.md)."""

    # The one user from the environment (its namespaces: AUTH_NAMESPACES below); both or neither.
    username: str | None = setting("AUTH_USERNAME", None, secret=True)
    password: str | None = setting("AUTH_PASSWORD", None, secret=True)
    # Namespaces the AUTH_USERNAME user may read: `*` or a comma-separated list; unset: NAMESPACE only.
    env_namespaces: str = setting("AUTH_NAMESPACES", "")
    namespace: str = setting("NAMESPACE", "tekton-pipelines")
    # Many users and bearer tokens, each with its namespaces; reloaded when it changes.
    auth_file: str | None = setting("AUTH_FILE", None)
    # Seconds a verified credential is remembered, so bcrypt runs once per client, not per request.
    cache_ttl: float = setting("AUTH_CACHE_TTL", 60.0)
    # Failed logins allowed per client (an address, an IPv6 /64) and per (user, client) within
    # `failure_window` seconds (0: no limit); repeat offenders back off exponentially.
    max_failures_per_address: int = setting("AUTH_MAX_FAILURES_PER_ADDRESS", 10)
    max_failures_per_user: int = setting("AUTH_MAX_FAILURES_PER_USER", 5)
    failure_window: float = setting("AUTH_FAILURE_WINDOW", 60.0, low=1)
    # Cost of the dummy hash unknown users are checked against (timing like a real user's).
    bcrypt_cost: int = setting("AUTH_BCRYPT_COST", DEFAULT_BCRYPT_COST, low=4, high=31)
    # CI jobs' OIDC tokens (GitLab id_tokens, GitHub Actions): trusted issuers and claim rules.
    oidc_config: str | None = setting("OIDC_CONFIG", None)
    # CA bundle for the issuers' HTTPS endpoints (default: certifi's).
    oidc_ca_file: str | None = setting("OIDC_CA_FILE", None)


# Knative Serving's default max-revision-timeout-seconds: no request outlives it.
MAX_WAIT_BOUND = 600.0


@dataclass(frozen=True)
class StreamSettings:
    """Caps on concurrent log streams and waits: per principal (0: none), in total (0: only the
    thread reservation below)."""

    per_principal: int = setting("LOGS_MAX_STREAMS_PER_PRINCIPAL", 10)
    total: int = setting("LOGS_MAX_STREAMS", 0)
    # Streams and waits may hold at most THREADS worker threads (functions-framework's setting; 0:
    # its default, cores x 4); gunicorn runs RESERVED_THREADS more, which only short requests
    # (/status, probes) ever find free.
    threads: int = setting("THREADS", 0, 0, 10000)
    reserved_threads: int = setting("RESERVED_THREADS", 2, 0, 1000)
    # Seconds a refused client is told to wait (Retry-After).
    retry_after: int = setting("LOGS_STREAM_RETRY_AFTER", 10, low=1)


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics and the access log (docs/observability.md)."""

    # Port of /metrics, apart from the function's own (no ingress routes to it); 0: not served.
    port: int = setting("METRICS_PORT", 9090, 0, 65535)
    # Several gunicorn workers: a fresh directory where each writes its values (prometheus_client
    # reads the same variable itself).
    multiproc_dir: str | None = setting("PROMETHEUS_MULTIPROC_DIR", None)
    # One JSON line per request on stdout.
    access_log: bool = setting("ACCESS_LOG", True)


@dataclass(frozen=True)
class Settings:
    """The listener's settings (logs, status, health)."""

    # Namespace of runs addressed without one.
    namespace: str = setting("NAMESPACE", "tekton-pipelines")
    kubeconfig: str | None = setting("KUBECONFIG", None)
    port: int = setting("PORT", 8080, 1, 65535)
    # How long /logs and /status wait for a run that does not exist yet (trigger -> logs race).
    run_wait_seconds: float = setting("RUN_WAIT_SECONDS", 60.0, 0, MAX_WAIT_BOUND)
    # Upper bound on ?wait= for /logs and /status: below the platform's request timeout, so a wait
    # ends with an answer rather than a cut.
    max_wait_seconds: float = setting("MAX_WAIT_SECONDS", 590.0, 0, MAX_WAIT_BOUND)
    # Bytes sent on a silent stream so proxies and Knative's idle timeout keep it open.
    heartbeat_seconds: float = setting("HEARTBEAT_SECONDS", 15.0, 0, 3600)
    # End a stream cleanly just before the platform would cut it (0: never).
    stream_deadline_seconds: float = setting("STREAM_DEADLINE_SECONDS", 0.0, 0, 86400)
    # Pooled connections to the API: every open stream and watch holds one.
    kube_connections: int = setting("KUBE_CONNECTIONS", 256, 1, 10000)
    readiness_cache_seconds: float = setting("READINESS_CACHE_SECONDS", 5.0, 0, 3600)
    # Masking of the values of Secrets a run's pods reference, in /logs (docs/security.md):
    # `required` (values that cannot be read: 503), `optional` (then unmasked), `off`.
    # Empty: `required`, or `off` where the former switch MASK_SECRETS=off is set (`masking_mode`).
    masking: str = setting("MASKING", "", choices=("required", "optional", "off"))
    mask_secrets: bool = setting("MASK_SECRETS", True)
    # Secrets masking never reads (the listener's own credentials), comma-separated names.
    own_secrets: str = setting("LISTENER_SECRETS", "tekton-pipeline-listener-credentials")
    # Proxies (CIDRs) whose X-Forwarded-For is believed: rate limits then key on the real client.
    trusted_proxies: tuple[Network, ...] = setting("TRUSTED_PROXIES", ())
    # Where a run's commit SHA is for `?sha=`: a label (selected by the API server), or, when
    # RUN_SHA_ANNOTATION is set, that annotation (the namespace's runs are listed and filtered).
    run_sha_label: str = setting("RUN_SHA_LABEL", "pipelinesascode.tekton.dev/sha", check=key_problem)
    run_sha_annotation: str = setting("RUN_SHA_ANNOTATION", "", check=key_problem)
    auth: AuthSettings = field(default_factory=AuthSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def masking_mode(self) -> str:
        return self.masking or ("required" if self.mask_secrets else "off")

    @property
    def own_secret_names(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.own_secrets.split(",") if name.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return load(cls, Env(environ))
