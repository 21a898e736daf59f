"""Prometheus metrics of every function, and the small API the wings call to move them.

Every wing may import this package (it imports nothing of `shared` but `config`): the HTTP
wrapper counts requests, `kube/client` API calls, `notify` deliveries and refusals, `logs/masking` matches.
Metrics are served on their own port (`METRICS_PORT`, `shared.metrics.server`), which no
ingress routes to. Names and labels: docs/observability.md.

Under gunicorn with several workers (`WORKERS` > 1) set `PROMETHEUS_MULTIPROC_DIR` to an empty,
writable directory (an emptyDir): every worker then writes its values there and a scrape sums
them (prometheus_client's multiprocess mode). With one worker (the default) values live in the
process.
"""

from shared.metrics.registry import (
    AUTH_FAILURES,
    BACKOFFS,
    KUBE_REQUEST_SECONDS,
    KUBE_REQUESTS,
    MASKED,
    NOTIFY_DELIVERIES,
    NOTIFY_IGNORED_EVENTS,
    NOTIFY_REFUSED_TARGETS,
    NOTIFY_REJECTED_REQUESTS,
    OPEN_STREAMS,
    REQUEST_SECONDS,
    REQUESTS,
    REQUESTS_IN_HANDLER,
    RESUMES,
    STREAMED_BYTES,
    STREAMED_LINES,
    child,
    kube_request,
    masked,
    notify_delivery,
    notify_ignored,
    notify_refused,
    notify_rejected,
)

__all__ = [
    "AUTH_FAILURES",
    "BACKOFFS",
    "KUBE_REQUESTS",
    "KUBE_REQUEST_SECONDS",
    "MASKED",
    "NOTIFY_DELIVERIES",
    "NOTIFY_IGNORED_EVENTS",
    "NOTIFY_REFUSED_TARGETS",
    "NOTIFY_REJECTED_REQUESTS",
    "OPEN_STREAMS",
    "REQUESTS",
    "REQUESTS_IN_HANDLER",
    "REQUEST_SECONDS",
    "RESUMES",
    "STREAMED_BYTES",
    "STREAMED_LINES",
    "child",
    "kube_request",
    "masked",
    "notify_delivery",
    "notify_ignored",
    "notify_refused",
    "notify_rejected",
]
