"""The notifier's own counters, beside `shared.metrics`' deliveries: what an operator alerts on.

Prometheus counters in the default registry, so `shared.metrics` serves them on `METRICS_PORT`
with the rest (summed over workers in multiprocess mode). Label values are fixed sets (target
kinds, reasons below), never request input.
"""

from __future__ import annotations

from prometheus_client import Counter

# kind: gitlab, github, slack, webhook
REFUSED_TARGETS = Counter(
    "tpl_notify_refused_targets", "Targets a run's annotation chose outside the allow-list", ["kind"]
)
# reason: unknown-run, uid-mismatch, unreadable
IGNORED_EVENTS = Counter("tpl_notify_ignored_events", "Events that named no readable run of that uid", ["reason"])
# reason: no-token, bad-token, subject, review-failed, too-large
REJECTED_REQUESTS = Counter("tpl_notify_rejected_requests", "Event requests refused at ingress", ["reason"])


def refused(kind: str) -> None:
    REFUSED_TARGETS.labels(kind).inc()


def ignored(reason: str) -> None:
    IGNORED_EVENTS.labels(reason).inc()


def rejected(reason: str) -> None:
    REJECTED_REQUESTS.labels(reason).inc()


def count(counter: Counter, label: str) -> float:
    """A counter's value in this process (tests)."""
    return counter.labels(label)._value.get()
