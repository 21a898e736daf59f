"""Every kind of target the notifier reports to, one sender type each, behind the `Sender` protocol.

The order is the order a run's targets are listed and reported in. The functions below are the
notifier's (and the tests') view: each asks the target's own sender.
"""

from __future__ import annotations

from shared.notify.commit_status import GitHubSender, GitLabSender
from shared.notify.events import RunEvent
from shared.notify.hooks import SlackSender, WebhookSender, sign
from shared.notify.protocol import HttpRequest, HttpResponse, Sender, Verdict
from shared.notify.target import Target

SENDERS: tuple[Sender, ...] = (GitLabSender(), GitHubSender(), SlackSender(), WebhookSender())
KINDS = tuple(sender.kind for sender in SENDERS)

__all__ = [
    "KINDS",
    "SENDERS",
    "HttpRequest",
    "HttpResponse",
    "Verdict",
    "already_terminal",
    "build_request",
    "classify",
    "precheck_request",
    "sign",
]


def build_request(event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
    """The request that reports `event` to `target` (which must have no `error`)."""
    return target.sender.request(event, target, logs_url)


def classify(target: Target, response: HttpResponse) -> Verdict:
    """ok: accepted; done: the target already holds that state; retry: transient; fail: permanent."""
    return target.sender.classify(response)


def precheck_request(target: Target) -> HttpRequest | None:
    """A GET of the commit's current statuses, for the terminal-state check (commit statuses only)."""
    return target.sender.precheck(target)


def already_terminal(target: Target, logs_url: str, response: HttpResponse) -> bool:
    """True if the newest status of our name/context is terminal and belongs to this run."""
    return target.sender.already_terminal(target, logs_url, response)
