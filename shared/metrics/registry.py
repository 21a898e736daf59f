"""The metrics themselves. Label values come from small fixed sets (function, route template, code,
verb, resource, outcome, target kind, notify's reasons), never from request input, so a hostile
client cannot make a series per request."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# Requests last from milliseconds (/health) to an hour (a followed run).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_KUBE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("tpl_http_requests", "HTTP requests answered", ["function", "route", "code"])
REQUEST_SECONDS = Histogram(
    "tpl_http_request_duration_seconds",
    "From the request to the end of its response body (a stream: until it ends)",
    ["function", "route"],
    buckets=_REQUEST_BUCKETS,
)
# Gauges sum the live workers under multiprocess mode.
REQUESTS_IN_HANDLER = Gauge(
    "tpl_http_requests_in_handler",
    "Requests not answered yet: authenticating, looking the run up, waiting for it (?wait=)",
    ["function"],
    multiprocess_mode="livesum",
)
OPEN_STREAMS = Gauge(
    "tpl_http_open_streams", "Streamed responses being sent", ["function"], multiprocess_mode="livesum"
)
STREAMED_BYTES = Counter("tpl_http_streamed_bytes", "Body bytes of streamed responses", ["function"])
STREAMED_LINES = Counter("tpl_logs_streamed_lines", "Step log lines sent by /logs (notices and heartbeats not counted)")
RESUMES = Counter("tpl_logs_resumes", "Streams asked to resume (resume= or Last-Event-ID), by answer", ["code"])
AUTH_FAILURES = Counter(
    "tpl_auth_failures", "Refused credentials, by scheme (basic, bearer, oidc, none) and answer", ["scheme", "code"]
)
BACKOFFS = Counter("tpl_backoffs", "Requests told to retry later (429), by cause (auth, streams)", ["cause"])
KUBE_REQUESTS = Counter(
    "tpl_kube_requests", "Kubernetes API requests, by verb, resource and outcome", ["verb", "resource", "outcome"]
)
KUBE_REQUEST_SECONDS = Histogram(
    "tpl_kube_request_duration_seconds",
    "Kubernetes API request latency to the response headers (watches and log follows: until open)",
    ["verb", "resource"],
    buckets=_KUBE_BUCKETS,
)
NOTIFY_DELIVERIES = Counter(
    "tpl_notify_deliveries", "Notification deliveries, by target kind and outcome", ["target", "outcome"]
)
# kind: gitlab, github, slack, webhook
NOTIFY_REFUSED_TARGETS = Counter(
    "tpl_notify_refused_targets", "Targets a run's annotation chose outside the allow-list", ["kind"]
)
# reason: unknown-run, uid-mismatch, unreadable
NOTIFY_IGNORED_EVENTS = Counter(
    "tpl_notify_ignored_events", "Events that named no readable run of that uid", ["reason"]
)
# reason: no-token, bad-token, subject, review-failed, too-large, not-cloudevent
NOTIFY_REJECTED_REQUESTS = Counter(
    "tpl_notify_rejected_requests", "Event requests refused at notify's ingress", ["reason"]
)
MASKED = Counter("tpl_logs_masked_values", "Secret values replaced in streamed logs")


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, from a dict after the first time: `labels()` checks its arguments
    and takes a lock on every call, a measurable part of a short request. Label values come from
    small fixed sets (above), so the dict stays small."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def api_verb(method: str, path: str, query: Mapping[str, Any]) -> tuple[str, str]:
    """(verb, resource) of one API request, as the apiserver's own metrics name them."""
    parts = [part for part in path.split("/") if part]
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
    else:  # cluster-scoped: /apis/<group>/<version>/<plural>[/<name>] or /api/v1/<plural>[/<name>]
        rest = parts[3:] if parts[:1] == ["apis"] else parts[2:]
    resource = rest[0] if rest else "none"
    if method != "GET":
        return method.lower(), resource
    if query.get("watch") in ("true", True):
        return "watch", resource
    if len(rest) >= 3:
        return "get", f"{resource}/{rest[2]}"  # a subresource: pods/log
    return ("get" if len(rest) == 2 else "list"), resource


@contextmanager
def kube_request(method: str, path: str, query: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """Times one API request; the caller sets `["outcome"]` to "ok"; a raised error with a `status`
    (the adapter's KubeError) counts as that code, or "unreachable" for status 0."""
    verb, resource = api_verb(method, path, query)
    outcome = {"outcome": "error"}
    started = time.perf_counter()
    try:
        yield outcome
    except Exception as err:
        status = getattr(err, "status", None)
        if isinstance(status, int):
            outcome["outcome"] = str(status) if status else "unreachable"
        raise
    finally:
        child(KUBE_REQUEST_SECONDS, verb, resource).observe(time.perf_counter() - started)
        child(KUBE_REQUESTS, verb, resource, outcome["outcome"]).inc()


def notify_delivery(target: str, outcome: str) -> None:
    """One delivery to a target of kind `target` (gitlab, github, slack, webhook): `outcome` one of
    delivered, retried, failed, skipped (notify's own words; keep the set small)."""
    NOTIFY_DELIVERIES.labels(target, outcome).inc()


def notify_refused(kind: str) -> None:
    """A target of kind `kind` a run's annotation chose outside notify's allow-list."""
    NOTIFY_REFUSED_TARGETS.labels(kind).inc()


def notify_ignored(reason: str) -> None:
    """An event that named no readable run of its uid (`reason`: unknown-run, uid-mismatch, unreadable)."""
    NOTIFY_IGNORED_EVENTS.labels(reason).inc()


def notify_rejected(reason: str) -> None:
    """An event request refused at notify's ingress: no-token, bad-token, subject, review-failed,
    too-large, not-cloudevent."""
    NOTIFY_REJECTED_REQUESTS.labels(reason).inc()


def masked(count: int) -> None:
    """`count` secret values were replaced in a stream."""
    if count:
        MASKED.inc(count)
