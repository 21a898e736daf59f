"""Sending one request with timeouts and bounded retries.

Retried: connection errors, timeouts, 408, 429 and 5xx. The wait before the next attempt is the
answer's `Retry-After` (seconds or an HTTP date) if it has one, else the retry policy's schedule
(`shared.kube.retry.backoff_delay`) from `backoff_base`, capped at `backoff_max`. Nothing is
retried past `max_attempts` or past `budget` seconds from the first attempt: when the next wait
would cross the budget the target is given up at once (Knative Eventing redelivers the event later).
Redirects are not followed (a redirect could carry a token to another host). Requests go through
one pooled `requests` session (`pooled_transport`). `sleep` and `clock` are injectable for tests.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.kube.retry import backoff_delay
from shared.notify.config import RetryPolicy
from shared.notify.protocol import HttpRequest, HttpResponse, Verdict

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class Transport(Protocol):
    def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse: ...


POOL_SIZE = 16


def _session() -> requests.Session:
    """One pooled client for every target: connections to a forge or Slack are kept and reused
    (a run's events, and every run, go to the same few hosts). urllib3 retries nothing here:
    attempts are counted, timed and classified by `Deliverer` (per target, within a budget,
    honouring Retry-After, with per-kind verdicts such as GitLab's "Cannot transition"), which
    urllib3's `Retry` cannot express. Proxies and netrc from the environment are not used."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=Retry(0, redirect=0))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_pool = _session()


def pooled_transport(request: HttpRequest, timeout: float) -> HttpResponse:
    """One HTTP exchange on the pool; any HTTP status is a response, network trouble raises OSError.
    Redirects are not followed (a redirect could carry a token to another host)."""
    if not request.url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are sent to")
    try:
        with _pool.request(
            request.method,
            request.url,
            data=request.body,
            headers=dict(request.headers),
            timeout=(min(timeout, 5.0), timeout),
            allow_redirects=False,
            stream=True,
        ) as resp:
            body = resp.raw.read(MAX_BODY, decode_content=True) or b""
            return HttpResponse(resp.status_code, dict(resp.headers.items()), body)
    except requests.Timeout as e:
        raise TimeoutError(type(e).__name__) from None
    except requests.RequestException as e:  # refused, reset, bad answers, TLS
        raise ConnectionError(type(e).__name__) from None


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
        transport: Transport = pooled_transport,
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
