"""Query options of /logs and /status, validated before anything else happens."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.config import Settings
from shared.kube.names import label_value_problem, object_name_problem
from shared.runs.digest import LAST_LINES, MAX_LAST_LINES

# What is trimmed around a value: what a user may type. Not `str.strip()`'s whitespace, which
# includes \x1c-\x1f: `cursors=%1D` would read as a bare `cursors`, which means true.
_BLANKS = " \t"

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

    def value(self, key: str) -> str | None:
        """The last value, without `_BLANKS` around it; refused unless printable ASCII."""
        raw = self.last(key)
        if raw is None:
            return None
        value = raw.strip(_BLANKS)
        if not (value.isascii() and value.isprintable()):
            raise QueryError(f"{key} must be printable ASCII")
        return value


def _check_known(args: Args, allowed: set[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise QueryError(f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _bool(args: Args, name: str, default: bool) -> bool:
    raw = args.value(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError(f"{name} must be true or false")


def _seconds(args: Args, name: str, default: float, maximum: float) -> float:
    raw = args.value(name)
    if not raw:
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
            item = item.strip(_BLANKS)
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
    # The failure digest before a failed run's final status line (every format: it is what a
    # person reads first), with this many lines of each failed step.
    digest: bool = True
    digest_lines: int = LAST_LINES
    # format=github: the token of `::stop-commands::` (the client's, shared by its resumed streams).
    stop_commands: str | None = None
    # The run by what a CI job knows, instead of its name in the path.
    eventid: str | None = None
    sha: str | None = None
    # The log budget (see `shared.logs.formats.budget`); 0: none.
    max_bytes: int = 0
    tail: int = 0
    since: float = 0.0  # seconds before the request
    max_lines: int = 0

    ALLOWED = frozenset(
        {"task", "step", "timestamps", "format", "wait", "heartbeat", "resume", "cursors", "digest_lines"}
        | {"stop_commands", "digest", "eventid", "sha", "max_bytes", "tail", "since", "max_lines"}
    )
    FORMATS = ("text", "ndjson", "gitlab", "github", "sse", "html")

    @classmethod
    def from_request(cls, args: Args, settings: Settings, headers: Headers) -> LogQuery:
        return cls.parse(args, settings, headers.get("Accept", ""), headers.get("Last-Event-ID"))

    @classmethod
    def parse(cls, args: Args, settings: Settings, accept: str = "", last_event_id: str | None = None) -> LogQuery:
        _check_known(args, set(cls.ALLOWED))
        fmt = (args.value("format") or "").lower()
        if not fmt:
            fmt = next((f for media, f in _ACCEPTED if media in accept), "text")
        if fmt not in cls.FORMATS:
            raise QueryError(f"format must be one of {', '.join(cls.FORMATS)}")
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
            digest=_bool(args, "digest", True),
            digest_lines=_count(args, "digest_lines", LAST_LINES, MAX_LAST_LINES),
            stop_commands=_stop_token(args.value("stop_commands")),
            eventid=eventid_arg(args),
            sha=sha_arg(args),
            max_bytes=_count(args, "max_bytes", 0, 2**40),
            tail=_count(args, "tail", 0, 1_000_000),
            since=_duration(args, "since"),
            max_lines=_count(args, "max_lines", 0, 2**40),
        )


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
_TEN_YEARS = 10 * 365 * 86400.0


def _duration(args: Args, name: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1h30m`: seconds (as `kubectl logs --since` takes them); 0, or
    more than ten years: no limit."""
    raw = args.value(name)
    if not raw:
        return 0.0
    match = _DURATION.fullmatch(raw)
    if raw.replace(".", "", 1).isdigit():
        value = float(raw)
    elif match and any(match.groups()):
        hours, minutes, seconds = (float(g or 0) for g in match.groups())
        value = hours * 3600 + minutes * 60 + seconds
    else:
        raise QueryError(f"{name} must be a duration such as 90s, 15m, 2h or 1h30m")
    return value if 0 < value <= _TEN_YEARS else 0.0


def _count(args: Args, name: str, default: int, maximum: int) -> int:
    value = args.value(name)
    if not value:
        return default
    if not value.isdigit() or int(value) > maximum:
        raise QueryError(f"{name} must be a whole number from 0 to {maximum}")
    return int(value)


_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def _matching(args: Args, name: str, pattern: re.Pattern[str], rule: str) -> str | None:
    raw = args.last(name)
    if raw is not None and not pattern.fullmatch(raw):
        raise QueryError(f"{name} must be {rule}")
    return raw


def eventid_arg(args: Args) -> str | None:
    """A Tekton Triggers event ID: a label value."""
    raw = args.last("eventid")
    if raw is not None and label_value_problem(raw):
        raise QueryError("eventid must be a label value: up to 63 letters, digits, '-', '_' or '.'")
    return raw


def sha_arg(args: Args) -> str | None:
    sha = _matching(args, "sha", _SHA, "7 to 64 hexadecimal digits")
    return sha.lower() if sha else None


def _stop_token(raw: str | None) -> str | None:
    """A `::stop-commands::` token: 16 to 64 letters and digits (GitHub reads it up to `::`)."""
    if raw is None:
        return None
    if not (16 <= len(raw) <= 64 and raw.isascii() and raw.isalnum()):
        raise QueryError("stop_commands must be 16 to 64 letters and digits")
    return raw


# `Accept` media types that choose a format (a browser's page request: the live page).
_ACCEPTED = (("application/x-ndjson", "ndjson"), ("text/event-stream", "sse"), ("text/html", "html"))

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def resume_token(raw: str | None) -> str | None:
    """A resume token's shape (base64url parts joined by a dot); its content is checked later."""
    if raw is None:
        return None
    value = raw.strip(_BLANKS)
    if not value or len(value) > 8192 or any(c not in _TOKEN_CHARS for c in value):
        raise QueryError("resume must be a token from an earlier stream of this run (base64url)")
    return value


@dataclass(frozen=True)
class StatusQuery:
    wait: float
    tasks: bool
    digest_lines: int = LAST_LINES  # lines of each failed step in the failure digest
    eventid: str | None = None
    sha: str | None = None

    ALLOWED = frozenset({"wait", "tasks", "digest_lines", "eventid", "sha"})

    @classmethod
    def from_request(cls, args: Args, settings: Settings, headers: Headers) -> StatusQuery:
        return cls.parse(args, settings)

    @classmethod
    def parse(cls, args: Args, settings: Settings) -> StatusQuery:
        _check_known(args, set(cls.ALLOWED))
        return cls(
            wait=_seconds(args, "wait", 0.0, settings.max_wait_seconds),
            tasks=_bool(args, "tasks", False),
            digest_lines=_count(args, "digest_lines", LAST_LINES, MAX_LAST_LINES),
            eventid=eventid_arg(args),
            sha=sha_arg(args),
        )
