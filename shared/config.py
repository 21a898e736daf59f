"""Configuration from the environment. Names follow the seed: PORT, NAMESPACE, KUBECONFIG."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    pass


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from err
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class Settings:
    namespace: str = "tekton-pipelines"
    kubeconfig: str | None = None
    port: int = 8080
    # How long /logs and /status wait for a run that does not exist yet (trigger -> logs race).
    run_wait_seconds: float = 60.0
    # Upper bound on ?wait= for /logs and /status.
    max_wait_seconds: float = 3600.0
    # Bytes sent on a silent stream so proxies and Knative's idle timeout keep it open.
    heartbeat_seconds: float = 15.0
    # End a stream cleanly just before the platform would cut it (0: never).
    stream_deadline_seconds: float = 0.0
    kube_connections: int = 256
    readiness_cache_seconds: float = 5.0
    # Proxies (CIDRs) whose X-Forwarded-For is believed: rate limits then key on the real client.
    # Mask values of Secrets the run's steps reference (needs `get secrets`; off without it).
    mask_secrets: bool = True
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            namespace=environ.get("NAMESPACE") or "tekton-pipelines",
            kubeconfig=environ.get("KUBECONFIG") or None,
            port=int(_number(environ, "PORT", 8080, 1, 65535)),
            run_wait_seconds=_number(environ, "RUN_WAIT_SECONDS", 60.0, 0, 3600),
            max_wait_seconds=_number(environ, "MAX_WAIT_SECONDS", 3600.0, 0, 86400),
            heartbeat_seconds=_number(environ, "HEARTBEAT_SECONDS", 15.0, 0, 3600),
            stream_deadline_seconds=_number(environ, "STREAM_DEADLINE_SECONDS", 0.0, 0, 86400),
            kube_connections=int(_number(environ, "KUBE_CONNECTIONS", 256, 1, 10000)),
            readiness_cache_seconds=_number(environ, "READINESS_CACHE_SECONDS", 5.0, 0, 3600),
            trusted_proxies=_networks(environ, "TRUSTED_PROXIES"),
            mask_secrets=(environ.get("MASK_SECRETS") or "auto").strip().lower() not in ("off", "false", "0", "no"),
        )


def _networks(environ: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for item in (environ.get(name) or "").replace(" ", ",").split(","):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError as err:
                raise SettingsError(f"{name}: {item!r} is not an IP network") from err
    return tuple(out)
