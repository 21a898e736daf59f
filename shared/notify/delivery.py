"""Sending one request with timeouts and bounded retries.

Retried: connection errors, timeouts, 408, 429 and 5xx. The wait before the next attempt is the
answer's `Retry-After` (seconds or an HTTP date) if it has one, else the retry policy's schedule
(`shared.kube.retry.backoff_delay`) from `backoff_base`, capped at `backoff_max`. Nothing is
retried past `max_attempts` or past `budget` seconds from the first attempt: when the next wait
would cross the budget the target is given up at once (Knative Eventing redelivers the event later).
Redirects are not followed (a redirect could carry a token to another host).
`sleep` and `clock` are injectable for tests.
"""

from __future__ import annotations

import email.utils
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Protocol

from shared.kube.retry import backoff_delay
from shared.notify.config import RetryPolicy
from shared.notify.protocol import HttpRequest, HttpResponse, Verdict

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class Transport(Protocol):
    def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def urllib_transport(request: HttpRequest, timeout: float) -> HttpResponse:
    """One HTTP exchange; any HTTP status is a response, network trouble raises OSError."""
    if not request.url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are sent to")
    req = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        request.url, data=request.body, headers=dict(request.headers), method=request.method
    )
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, dict(resp.headers.items()), resp.read(MAX_BODY))
    except urllib.error.HTTPError as e:
        with e:
            body = e.read(MAX_BODY) if e.fp else b""
            return HttpResponse(e.code, dict(e.headers.items()) if e.headers else {}, body)
    except HTTPException as e:  # malformed answers, remote closed mid-response
        raise ConnectionError(f"bad HTTP answer: {e!r}") from None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class Result:
    """How one target's delivery ended: ok, done (already in that state), fail (permanent), retry (gave up)."""

    verdict: Verdict
    attempts: int
    status: int | None = None
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.verdict in ("ok", "done")


class Deliverer:
    def __init__(
        self,
        policy: RetryPolicy,
        transport: Transport = urllib_transport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.transport = transport
        self.sleep = sleep
        self.clock = clock

    def backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.policy.backoff_base, self.policy.backoff_max)

    def send(self, request: HttpRequest, classify: Callable[[HttpResponse], Verdict], label: str = "request") -> Result:
        policy = self.policy
        start = self.clock()
        last = Result("retry", 0)
        for attempt in range(1, policy.max_attempts + 1):
            remaining = policy.budget - (self.clock() - start)
            timeout = max(0.05, min(policy.timeout, remaining))
            delay = self.backoff(attempt)
            try:
                response = self.transport(request, timeout)
            except (OSError, ValueError) as e:  # URLError, timeouts, refused, reset
                reason = getattr(e, "reason", e)
                last = Result("retry", attempt, None, f"{type(e).__name__}: {reason}")
                if isinstance(e, ValueError) and not isinstance(e, UnicodeError):
                    return Result("fail", attempt, None, str(e))
            else:
                verdict = classify(response)
                detail = response.body[:300].decode("utf-8", errors="replace")
                last = Result(verdict, attempt, response.status, detail)
                if verdict != "retry":
                    return last
                hinted = retry_after_seconds(response.header("Retry-After"))
                if hinted is not None:
                    delay = hinted
            if attempt == policy.max_attempts:
                break
            if self.clock() - start + delay > policy.budget:
                log.warning(
                    "%s: next attempt in %.1fs would exceed the %.0fs budget, giving up", label, delay, policy.budget
                )
                break
            log.info("%s: attempt %d failed (%s), retrying in %.2fs", label, attempt, last.status or last.detail, delay)
            self.sleep(delay)
        return last
