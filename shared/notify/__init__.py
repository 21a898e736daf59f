"""Reporting PipelineRun state to GitLab, GitHub, Slack and webhooks, from Tekton's CloudEvents.

The notify function uses only this surface:

    notifier = Notifier.from_env()
    outcome = notifier.handle(event["type"], event["id"], event.get_data())
    respond outcome.status with outcome.body (JSON)
    notifier.ready() -> (ok, reason) for the readiness probe

See docs/notify.md for annotations, config, secrets and delivery semantics.
"""

from shared.notify.events import RunEvent, parse_event
from shared.notify.notifier import Notifier, Outcome

__all__ = ["Notifier", "Outcome", "RunEvent", "parse_event"]
