"""The HTTP requests each kind of target gets, and how their answers are read. Pure: no I/O.

GitLab:  POST {GITLAB_URL}/api/v4/projects/:id/statuses/:sha   PRIVATE-TOKEN
         state pending|running|success|failed|canceled, name, target_url, description (<=255)
         400 "Cannot transition status via :run from :running" = already in that state: done.
GitHub:  POST {GITHUB_API_URL}/repos/{owner}/{repo}/statuses/{sha}   Authorization: Bearer,
         Accept: application/vnd.github+json, X-GitHub-Api-Version: 2022-11-28
         state pending|success|failure|error, context, target_url, description (<=140)
Slack:   POST <incoming webhook URL>, JSON {"text", "blocks"}
Webhook: POST <url>, JSON body below, X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>

State mapping (rank from `events`):
    rank 0-1 (queued, started, pending/resolving)  GitLab pending   GitHub pending
    rank 2-3 (running, stopping, finally)          GitLab running   GitHub pending
    successful                                     GitLab success   GitHub success
    failed: Failed, PipelineRunTimeout             GitLab failed    GitHub failure
    failed: Cancelled, StoppedRunFinally, ...      GitLab canceled  GitHub error
    failed: any other reason (validation, ...)     GitLab failed    GitHub error
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from shared.notify.events import RunEvent
from shared.notify.targets import Target
from shared.runs.outcome import CODE_FAILURE_REASONS

USER_AGENT = "tekton-pipeline-listener-notify/0.1"
GITHUB_API_VERSION = "2022-11-28"
GITHUB_DESCRIPTION_MAX = 140
GITLAB_DESCRIPTION_MAX = 255
GITLAB_TERMINAL = frozenset({"success", "failed", "canceled", "skipped"})
GITHUB_TERMINAL = frozenset({"success", "failure", "error"})

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


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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


def gitlab_state(event: RunEvent) -> str:
    if event.state == "successful":
        return "success"
    if event.state == "failed":
        return "canceled" if event.cancelled else "failed"
    return "pending" if event.rank <= 1 else "running"


def github_state(event: RunEvent) -> str:
    if event.state == "successful":
        return "success"
    if event.state == "failed":
        return "failure" if event.reason in CODE_FAILURE_REASONS else "error"
    return "pending"


def _gitlab_project_path(target: Target) -> str:
    return f"{target.url}/api/v4/projects/{quote(target.project, safe='')}"


def _gitlab_headers(target: Target) -> dict[str, str]:
    return {"PRIVATE-TOKEN": target.secret or "", "Accept": "application/json", "User-Agent": USER_AGENT}


def _github_headers(target: Target) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {target.secret or ''}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
        "User-Agent": USER_AGENT,
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_WORDS = {
    "queued": (":hourglass:", "is queued"),
    "started": (":arrow_forward:", "started"),
    "running": (":arrows_counterclockwise:", "is running"),
    "unknown": (":arrows_counterclockwise:", "is in progress"),
    "successful": (":white_check_mark:", "succeeded"),
    "failed": (":x:", "failed"),
}


def slack_body(event: RunEvent, target: Target, logs_url: str) -> dict[str, Any]:
    emoji, verb = _SLACK_WORDS[event.state]
    if event.cancelled:
        emoji, verb = ":no_entry_sign:", "was cancelled"
    run = f"{event.namespace}/{event.name}"
    text = f"{emoji} PipelineRun {run} {verb}"
    title = f"<{logs_url}|{_slack_escape(run)}>" if logs_url else _slack_escape(run)
    lines = [f"{emoji} PipelineRun *{title}* {verb}"]
    if event.reason or event.message:
        lines.append(_slack_escape(truncate(f"{event.reason}: {event.message}".strip(": "), 2000)))
    context = [f"pipeline `{_slack_escape(event.pipeline)}`"]
    if target.sha:
        context.append(f"commit `{target.sha[:12]}`")
    if logs_url:
        context.append(f"<{logs_url}|logs>")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def webhook_body(event: RunEvent, target: Target, logs_url: str) -> dict[str, Any]:
    return {
        "id": f"{event.uid}/{event.state}",
        "type": event.event_type,
        "state": event.state,
        "reason": event.reason,
        "message": event.message,
        "pipelineRun": {
            "namespace": event.namespace,
            "name": event.name,
            "uid": event.uid,
            "pipeline": event.pipeline,
            "startTime": event.start_time or None,
            "completionTime": event.completion_time or None,
        },
        "sha": target.sha or None,
        "context": target.context,
        "logsUrl": logs_url or None,
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def build_request(event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
    """The request that reports `event` to `target` (which must have no `error`)."""
    if target.kind == "gitlab":
        body: dict[str, Any] = {
            "state": gitlab_state(event),
            "name": target.context,
            "description": truncate(description(event), GITLAB_DESCRIPTION_MAX),
        }
        if logs_url:
            body["target_url"] = logs_url
        headers = _gitlab_headers(target) | {"Content-Type": "application/json"}
        return HttpRequest("POST", f"{_gitlab_project_path(target)}/statuses/{target.sha}", headers, _json(body))
    if target.kind == "github":
        body = {
            "state": github_state(event),
            "context": target.context,
            "description": truncate(description(event), GITHUB_DESCRIPTION_MAX),
        }
        if logs_url:
            body["target_url"] = logs_url
        headers = _github_headers(target) | {"Content-Type": "application/json"}
        url = f"{target.url}/repos/{target.repo}/statuses/{target.sha}"
        return HttpRequest("POST", url, headers, _json(body))
    if target.kind == "slack":
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        return HttpRequest("POST", target.secret or "", headers, _json(slack_body(event, target, logs_url)))
    if target.kind == "webhook":
        raw = _json(webhook_body(event, target, logs_url))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Signature-256": sign(target.secret or "", raw),
            "X-Notify-Delivery": f"{event.uid}/{event.state}",
        }
        return HttpRequest("POST", target.url, headers, raw)
    raise ValueError(f"unknown target kind {target.kind}")


def classify(target: Target, response: HttpResponse) -> Verdict:
    """ok: accepted; done: the target already holds that state; retry: transient; fail: permanent."""
    if 200 <= response.status < 300:
        return "ok"
    if target.kind == "gitlab" and response.status == 400 and b"Cannot transition status" in response.body:
        return "done"
    if response.status in (408, 429) or response.status >= 500:
        return "retry"
    return "fail"


def precheck_request(target: Target) -> HttpRequest | None:
    """A GET of the commit's current statuses, for the terminal-state check (commit statuses only)."""
    if target.kind == "gitlab":
        query = urlencode({"name": target.context, "per_page": 100})
        url = f"{_gitlab_project_path(target)}/repository/commits/{target.sha}/statuses?{query}"
        return HttpRequest("GET", url, _gitlab_headers(target))
    if target.kind == "github":
        url = f"{target.url}/repos/{target.repo}/commits/{target.sha}/statuses?per_page=100"
        return HttpRequest("GET", url, _github_headers(target))
    return None


def already_terminal(target: Target, logs_url: str, response: HttpResponse) -> bool:
    """True if the newest status of our name/context is terminal and belongs to this run (same target_url)."""
    if not logs_url or not 200 <= response.status < 300:
        return False
    try:
        statuses = json.loads(response.body)
    except ValueError:
        return False
    if not isinstance(statuses, list):
        return False
    name_key, state_key, terminal = (
        ("name", "status", GITLAB_TERMINAL) if target.kind == "gitlab" else ("context", "state", GITHUB_TERMINAL)
    )
    mine = [s for s in statuses if isinstance(s, Mapping) and s.get(name_key) == target.context]
    if target.kind == "gitlab":
        # GitLab lists oldest first within a name unless sorted; take the highest id.
        mine.sort(key=lambda s: s.get("id") if isinstance(s.get("id"), int) else -1, reverse=True)
    if not mine:
        return False
    newest = mine[0]
    return newest.get(state_key) in terminal and newest.get("target_url") == logs_url
