"""Query options of /logs and /status, validated before anything else happens."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.config import Settings
from shared.kube.names import object_name_problem

# A bare `?timestamps` means true, as curl users write it.
_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


# The request headers an option may come from (`Accept`, `Last-Event-ID`).
Headers = Mapping[str, str]


class QueryError(ValueError):
    """A query option is invalid; the message says which and why."""


class Args(Mapping[str, list[str]]):
    """Multi-valued query arguments (what werkzeug's MultiDict offers via getlist)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._data: dict[str, list[str]] = {}
        for key, value in pairs:
            self._data.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[str]:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def last(self, key: str) -> str | None:
        values = self._data.get(key)
        return values[-1] if values else None


def _check_known(args: Args, allowed: set[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise QueryError(f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _bool(args: Args, name: str, default: bool) -> bool:
    raw = args.last(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError(f"{name} must be true or false")


def _seconds(args: Args, name: str, default: float, maximum: float) -> float:
    raw = args.last(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise QueryError(f"{name} must be a number of seconds") from err
    if not math.isfinite(value) or value < 0:
        raise QueryError(f"{name} must be a non-negative number of seconds")
    if value > maximum:
        raise QueryError(f"{name} must be at most {maximum:g} seconds")
    return value


def _names(args: Args, name: str) -> frozenset[str]:
    out: set[str] = set()
    for raw in args.get(name, []):
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            problem = object_name_problem(item)
            if problem or len(item) > 63:
                raise QueryError(f"{name}: {problem or 'longer than 63 characters'}")
            out.add(item)
    return frozenset(out)


@dataclass(frozen=True)
class LogQuery:
    tasks: frozenset[str]
    steps: frozenset[str]
    timestamps: bool
    format: str  # text | ndjson
    wait: float
    heartbeat: float
    # A resume token from an earlier stream of this run (`resume=`, else the `Last-Event-ID`
    # header; checked against the run later).
    resume: str | None = None
    # Text mode: every line prefixed with its resume cursor (what `ci/tekton-logs.sh` reads).
    cursors: bool = False

    ALLOWED = frozenset({"task", "step", "timestamps", "format", "wait", "heartbeat", "resume", "cursors"})

    @classmethod
    def from_request(cls, args: Args, settings: Settings, headers: Headers) -> LogQuery:
        return cls.parse(args, settings, headers.get("Accept", ""), headers.get("Last-Event-ID"))

    @classmethod
    def parse(cls, args: Args, settings: Settings, accept: str = "", last_event_id: str | None = None) -> LogQuery:
        _check_known(args, set(cls.ALLOWED))
        fmt = (args.last("format") or "").strip().lower()
        if not fmt:
            fmt = "ndjson" if "application/x-ndjson" in accept else "text"
        if fmt not in ("text", "ndjson"):
            raise QueryError("format must be text or ndjson")
        heartbeat = _seconds(args, "heartbeat", settings.heartbeat_seconds, 3600)
        if 0 < heartbeat < 1:
            raise QueryError("heartbeat must be 0 (off) or at least 1 second")
        return cls(
            tasks=_names(args, "task"),
            steps=_names(args, "step"),
            timestamps=_bool(args, "timestamps", False),
            format=fmt,
            wait=_seconds(args, "wait", settings.run_wait_seconds, settings.max_wait_seconds),
            heartbeat=heartbeat,
            resume=resume_token(args.last("resume")) or resume_token(last_event_id),
            cursors=_bool(args, "cursors", False),
        )


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def resume_token(raw: str | None) -> str | None:
    """A resume token's shape (base64url parts joined by a dot); its content is checked later."""
    if raw is None:
        return None
    value = raw.strip()
    if not value or len(value) > 8192 or any(c not in _TOKEN_CHARS for c in value):
        raise QueryError("resume must be a token from an earlier stream of this run (base64url)")
    return value


@dataclass(frozen=True)
class StatusQuery:
    wait: float
    tasks: bool

    ALLOWED = frozenset({"wait", "tasks"})

    @classmethod
    def from_request(cls, args: Args, settings: Settings, headers: Headers) -> StatusQuery:
        return cls.parse(args, settings)

    @classmethod
    def parse(cls, args: Args, settings: Settings) -> StatusQuery:
        _check_known(args, set(cls.ALLOWED))
        return cls(
            wait=_seconds(args, "wait", 0.0, settings.max_wait_seconds),
            tasks=_bool(args, "tasks", False),
        )
