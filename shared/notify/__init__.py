"""Reporting PipelineRun state to GitLab, GitHub, Slack and webhooks, from Tekton's CloudEvents.

The notify function uses only this surface:

    notifier = Notifier.from_env()
    outcome = notifier.handle(event["type"], event["id"], event.get_data())
    respond outcome.status with outcome.body (JSON)
    notifier.ready() -> (ok, reason) for the readiness probe

The event only names a run: the notifier reads it from the API (`runs_api`) and reports what it
finds there, keeping what it delivered on the run itself (`record`).

Inside: `events` (CloudEvent / API object → `RunEvent`, ranks), `selection` (which targets a run has, from
annotations over namespace defaults), `senders` (one `Sender` per target kind: `commit_status` for
GitLab and GitHub, `hooks` for Slack and webhooks, behind `protocol`), `delivery` (one request with
retries), `state` (a lock and a cached record per run), `notifier` (one event → deliveries), `config`.
The run's outcome comes from the run model (`shared.runs.outcome`), as for `/status`.

See docs/notify.md for annotations, config, secrets and delivery semantics.
"""

from shared.notify.events import RunEvent, parse_event
from shared.notify.notifier import Notifier, Outcome

__all__ = ["Notifier", "Outcome", "RunEvent", "parse_event"]
