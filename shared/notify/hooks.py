"""Incoming webhooks: Slack messages and signed generic webhooks, one sender each.

Slack:   POST <incoming webhook URL>, JSON {"text", "blocks"}; every text from the run escaped
         (`&`, `<`, `>`; backticks out of code spans), so a name or message cannot add links,
         mentions (`<!channel>`) or formatting.
Webhook: POST <url>, JSON body below, with
         X-Notify-Timestamp: <unix seconds>
         X-Signature-256: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
         X-Notify-Delivery: <run uid>/<state>
         Receivers check the signature (`verify_signature`), refuse a timestamp more than
         REPLAY_WINDOW seconds from their clock, and dedupe on X-Notify-Delivery within it: a
         captured request cannot be replayed later, nor a body re-signed with another time.

URLs and secrets come from the environment or the config file, never from annotations: an
annotation only picks names the config defines ("true" picks the default from the environment).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

from shared.notify.events import STATES, TERMINAL_STATES, RunEvent
from shared.notify.protocol import USER_AGENT, HttpRequest, PostingSender, json_body, post_json, truncate
from shared.notify.target import Target, TargetContext, env_name

REPLAY_WINDOW = 300

_SLACK_WORDS = {
    "queued": (":hourglass:", "is queued"),
    "started": (":arrow_forward:", "started"),
    "running": (":arrows_counterclockwise:", "is running"),
    "unknown": (":arrows_counterclockwise:", "is in progress"),
    "successful": (":white_check_mark:", "succeeded"),
    "failed": (":x:", "failed"),
}


class SlackSender(PostingSender):
    kind = "slack"
    default_states = TERMINAL_STATES

    def targets(self, ctx: TargetContext) -> list[Target]:
        out = []
        for name in ctx.names("slack"):
            if name == "default":
                url = ctx.secret("SLACK_WEBHOOK_URL")
                error = "" if url else "no Slack webhook (SLACK_WEBHOOK_URL or SLACK_WEBHOOK_URL_FILE)"
            elif name in ctx.config.slack_webhooks:
                entry = ctx.config.slack_webhooks[name]
                variable = entry.get("url_env", "") or f"SLACK_WEBHOOK_URL_{env_name(name)}"
                url = ctx.secret(variable, entry.get("url_file"))
                error = "" if url else f"Slack webhook {name!r} has no URL (url_file)"
            else:
                url, error = None, f"Slack webhook {name!r} is not in the config"
            out.append(ctx.target(self, name, secret=url, context=ctx.context, error=error))
        return out

    def request(self, event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
        return post_json(target.secret or "", {"User-Agent": USER_AGENT}, slack_body(event, target, logs_url))


class WebhookSender(PostingSender):
    kind = "webhook"
    default_states = frozenset(STATES)

    def targets(self, ctx: TargetContext) -> list[Target]:
        out = []
        for name in ctx.names("webhook"):
            if name == "default":
                url, secret = ctx.settings.env.text("WEBHOOK_URL"), ctx.secret("WEBHOOK_SECRET")
            elif name in ctx.config.webhooks:
                entry = ctx.config.webhooks[name]
                url = entry.get("url", "")
                variable = entry.get("secret_env", "") or f"WEBHOOK_SECRET_{env_name(name)}"
                secret = ctx.secret(variable, entry.get("secret_file"))
            else:
                url, secret = "", None
            error = ""
            if not url:
                error = f"webhook {name!r} has no URL"
            elif not secret:
                error = f"webhook {name!r} has no secret (secret_file / WEBHOOK_SECRET[_FILE])"
            out.append(ctx.target(self, name, url=url, secret=secret, context=ctx.context, sha=ctx.sha, error=error))
        return out

    def request(self, event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
        raw = json_body(webhook_body(event, target, logs_url))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Notify-Timestamp": timestamp,
            "X-Signature-256": sign(target.secret or "", raw, timestamp),
            "X-Notify-Delivery": f"{event.uid}/{event.state}",
        }
        return HttpRequest("POST", target.url, headers, raw)


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no link, mention or channel ping from a value."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    """A code span that a backtick in `text` cannot close."""
    return "`" + slack_escape(text).replace("`", "'") + "`"


def _link(url: str, label: str) -> str:
    """`<url|label>` with `|`, `<`, `>` and spaces percent-encoded in the URL, the label escaped."""
    return f"<{quote(url, safe=':/?&=#%;,+@!$()*~.-_')}|{slack_escape(label)}>"


def slack_body(event: RunEvent, target: Target, logs_url: str) -> dict[str, Any]:
    emoji, verb = _SLACK_WORDS[event.state]
    if event.cancelled:
        emoji, verb = ":no_entry_sign:", "was cancelled"
    run = f"{event.namespace}/{event.name}"
    text = f"{emoji} PipelineRun {slack_escape(run)} {verb}"
    title = _link(logs_url, run) if logs_url else slack_escape(run)
    lines = [f"{emoji} PipelineRun *{title}* {verb}"]
    if event.reason or event.message:
        lines.append(slack_escape(truncate(f"{event.reason}: {event.message}".strip(": "), 2000)))
    context = [f"pipeline {_code(event.pipeline)}"]
    if target.sha:
        context.append(f"commit {_code(target.sha[:12])}")
    if logs_url:
        context.append(_link(logs_url, "logs"))
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


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The X-Signature-256 value: HMAC-SHA256 over the timestamp, a dot and the raw body."""
    signed = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, now: float | None = None, window: int = REPLAY_WINDOW
) -> bool:
    """What a receiver checks: the signature (constant-time) and a timestamp within `window` seconds."""
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > window:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), signature)
