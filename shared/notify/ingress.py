"""Who may send events to notify, and how much: checked before an event is parsed.

- Body size: at most `NOTIFY_MAX_BODY_BYTES` (default 1 MiB; a PipelineRun event is a few KiB),
  else 413 with a JSON body, before any of it is parsed.
- Shape: a POST must be a CloudEvent (binary mode: `ce-*` headers; structured mode: a JSON
  object with `specversion`) whose `id`, `source`, `type` and `specversion` are strings, else 400
  JSON. Without this the framework falls back to Google's legacy background-event conversion,
  which crashes (500, a traceback) on any JSON body that is not such an event, and lets
  exceptions of the CloudEvents SDK (e.g. a deeply nested body) through as 500s.
- Sender: with `NOTIFY_AUDIENCE` set, a request needs `Authorization: Bearer <token>`, a
  Kubernetes ServiceAccount token issued for that audience, as Knative Eventing's sender identity
  (`authentication-oidc: enabled`) sends with each delivery; the Trigger names the audience
  (`subscriber.audience`, deploy/notify-trigger.yaml). The apiserver checks it (a TokenReview
  with that audience: signature, expiry, audience, the ServiceAccount still existing), and
  `NOTIFY_ALLOWED_SUBJECTS` (comma-separated fnmatch patterns of usernames, e.g.
  `system:serviceaccount:tekton-pipelines:oidc-trigger-*`) narrows who. Anything else: 401 JSON.
  A verified token is remembered `NOTIFY_TOKEN_CACHE_SECONDS` (by its hash), so a burst of
  events costs one review. The review needs `create tokenreviews` (ClusterRole
  `system:auth-delegator`, bound in service.yaml).

Refusals are logged (never the token) and counted in `tpl_notify_rejected_requests_total{reason}`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.http import from_http

from shared.config import setting
from shared.metrics import notify_rejected

log = logging.getLogger(__name__)

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_MAX = 1024
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
NOT_AN_EVENT = (
    "not a CloudEvent: binary mode needs the ce-specversion, ce-id, ce-source and ce-type headers, "
    "structured mode a JSON object with those attributes (Content-Type application/cloudevents+json)"
)


@dataclass(frozen=True)
class IngressSettings:
    audience: str = setting("NOTIFY_AUDIENCE", "")
    subjects: str = setting("NOTIFY_ALLOWED_SUBJECTS", "")
    max_body: int = setting("NOTIFY_MAX_BODY_BYTES", 1024 * 1024, low=1024, high=64 * 1024 * 1024)
    cache_seconds: float = setting("NOTIFY_TOKEN_CACHE_SECONDS", 60.0, high=3600)


@dataclass(frozen=True)
class Refusal:
    status: int
    body: Mapping[str, Any]


# (token, audience) -> the TokenReview's status; raises on API trouble.
Review = Callable[[str, str], Mapping[str, Any]]


class IngressGuard:
    def __init__(self, settings: IngressSettings, review: Review, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.review = review
        self.clock = clock
        self.subjects = tuple(s.strip() for s in settings.subjects.split(",") if s.strip())
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[float, str]] = {}
        if not settings.audience:
            log.warning("NOTIFY_AUDIENCE is not set: events are accepted from anyone who can reach notify")

    def too_large(self, length: int | None) -> Refusal | None:
        if length is not None and length > self.settings.max_body:
            return self._refuse(413, "too-large", f"the body is over {self.settings.max_body} bytes")
        return None

    def not_an_event(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        """None if `body` with `headers` is a CloudEvent with string attributes; else the 400.

        It parses the event once more than the framework does (a few KiB, capped by max_body),
        so that nothing the SDK cannot read reaches the framework's fallback."""
        try:
            event = from_http(headers, body)
        # Exception, not a list: the SDK reads hostile bytes and has raised AttributeError too (a
        # structured body that is a JSON string); whatever it cannot read is no event, never a 500.
        except Exception:
            return self._refuse(400, "not-cloudevent", NOT_AN_EVENT)
        if any(not isinstance(event.get(key), str) or not event.get(key) for key in REQUIRED_ATTRIBUTES):
            return self._refuse(400, "not-cloudevent", "id, source, specversion and type must be non-empty strings")
        return None

    def refusal(self, authorization: str | None) -> Refusal | None:
        """None if the sender may deliver events; else the answer."""
        audience = self.settings.audience
        if not audience:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._refuse(401, "no-token", "a bearer token for this audience is required")
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._verified.get(key)
        if cached is not None and cached[0] > now:
            return None
        try:
            status = self.review(token, audience)
        except Exception as e:  # the API down: the sender retries, nothing is lost
            log.warning("token review failed (%s)", type(e).__name__)
            return self._refuse(503, "review-failed", "the token cannot be checked now")
        user = str(((status.get("user") or {}).get("username")) or "")
        if not status.get("authenticated") or audience not in (status.get("audiences") or []):
            return self._refuse(401, "bad-token", "the token is not valid for this audience")
        if self.subjects and not any(fnmatch.fnmatchcase(user, pattern) for pattern in self.subjects):
            log.warning("events from %s refused: not in NOTIFY_ALLOWED_SUBJECTS", user)
            return self._refuse(403, "subject", "this sender may not deliver events")
        with self._lock:
            if len(self._verified) >= CACHE_MAX:
                self._verified.clear()
            self._verified[key] = (now + self.settings.cache_seconds, user)
        return None

    def _refuse(self, status: int, reason: str, message: str) -> Refusal:
        notify_rejected(reason)
        log.warning("event request refused (%d): %s", status, message)
        return Refusal(status, {"error": message})


def token_review(send: Callable[[str, str, Any], Mapping[str, Any]]) -> Review:
    """A `Review` through the Kube adapter's `send` (POST a TokenReview, read its status)."""

    def review(token: str, audience: str) -> Mapping[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [audience]},
        }
        return send("POST", TOKENREVIEWS, body).get("status") or {}

    return review
