"""The protocol every kind of target implements, and the pure HTTP pieces they share. No I/O.

A sender picks the run's targets of its kind from the merged settings, builds the request that
reports an event, and reads the answer: ok (accepted), done (the target already holds that state),
retry (transient), fail (permanent). Commit-status senders can also ask for the commit's current
statuses, so a run whose status there is already terminal is not set back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from shared.notify.events import RunEvent
from shared.notify.target import Kind, Target, TargetContext

USER_AGENT = "tekton-pipeline-listener-notify/0.1"

Verdict = Literal["ok", "done", "retry", "fail"]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str = field(repr=False)  # a Slack webhook URL is a secret
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@runtime_checkable
class Sender(Kind, Protocol):
    def targets(self, ctx: TargetContext) -> list[Target]: ...

    def request(self, event: RunEvent, target: Target, logs_url: str) -> HttpRequest: ...

    def classify(self, response: HttpResponse) -> Verdict: ...

    def precheck(self, target: Target) -> HttpRequest | None: ...

    def already_terminal(self, target: Target, logs_url: str, response: HttpResponse) -> bool: ...


class PostingSender:
    """Defaults for a sender that POSTs and has no state to check first."""

    def classify(self, response: HttpResponse) -> Verdict:
        if 200 <= response.status < 300:
            return "ok"
        if response.status in (408, 429) or response.status >= 500:
            return "retry"
        return "fail"

    def precheck(self, target: Target) -> HttpRequest | None:
        return None

    def already_terminal(self, target: Target, logs_url: str, response: HttpResponse) -> bool:
        return False


def json_body(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def post_json(url: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> HttpRequest:
    return HttpRequest("POST", url, {**headers, "Content-Type": "application/json"}, json_body(body))


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def description(event: RunEvent) -> str:
    if event.terminal:
        head = {"successful": "Succeeded", "failed": "Cancelled" if event.cancelled else "Failed"}[event.state]
        detail = f"{event.reason}: {event.message}" if event.message else event.reason
        return f"{head} ({detail})" if detail else head
    if event.state == "unknown":
        return f"In progress ({event.reason})" if event.reason else "In progress"
    return {"queued": "Queued", "started": "Started", "running": "Running"}[event.state]
