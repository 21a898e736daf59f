"""Turning one CloudEvent into deliveries, idempotently and in order.

For an event of rank r for run u (ranks in `events`):
1. r below the highest rank already seen for u: dropped as stale (a late `running` after
   `successful`), nothing is sent.
2. Each selected target that wants the event's state and has not yet been delivered rank >= r
   for u is sent to; the others are skipped (duplicates, and targets already done on an earlier
   delivery of this same event).
3. Targets are sent to in parallel, each with its own retries; one failing does not hold up or
   stop the others. A delivered target is recorded at once.
4. The answer: 200 when every wanted target is delivered (or nothing was to be done); 502 when
   some target gave up on a transient error (Knative Eventing retries the event, and on that
   redelivery only the targets not yet delivered are sent to); 422 when the only failures are
   permanent (4xx answers, missing token: retrying cannot help, Eventing dead-letters it);
   400 for a PipelineRun event whose payload is unusable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.notify.config import ConfigError, Settings
from shared.notify.delivery import Deliverer, Result
from shared.notify.events import TERMINAL_RANK, EventError, RunEvent, parse_event
from shared.notify.selection import Target, select_targets
from shared.notify.state import RunRecord, RunStates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Mapping[str, Any] = field(default_factory=dict)


class Notifier:
    def __init__(self, settings: Settings, deliverer: Deliverer | None = None, states: RunStates | None = None) -> None:
        self.settings = settings
        self.deliverer = deliverer or Deliverer(settings.retry)
        self.states = states or RunStates(settings.state_max_runs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        return cls(Settings.from_env(environ))

    def ready(self) -> tuple[bool, str]:
        """Readiness: the config file (if any) parses."""
        try:
            self.settings.config.get()
        except ConfigError as e:
            return False, str(e)
        return True, "ok"

    def handle(self, event_type: str, event_id: str, data: Any) -> Outcome:
        try:
            event = parse_event(event_type, event_id, data)
        except EventError as e:
            log.warning("event %s (%s) rejected: %s", event_id, event_type, e)
            return Outcome(400, {"error": str(e)})
        if event is None:
            return Outcome(200, {"ignored": f"not a PipelineRun event: {event_type}"})
        try:
            config = self.settings.config.get()
        except ConfigError as e:
            log.error("%s", e)
            return Outcome(503, {"error": "notifier config is invalid"})
        targets = select_targets(event, self.settings, config)
        run = f"{event.namespace}/{event.name}"
        record = self.states.get(event.uid)
        with record.lock:
            if event.rank < record.max_rank:
                log.info(
                    "%s: %s (rank %d) after rank %d, dropped as stale", run, event.state, event.rank, record.max_rank
                )
                return Outcome(200, {"run": run, "state": event.state, "stale": True})
            fresh_record = record.max_rank < 0
            record.max_rank = max(record.max_rank, event.rank)
            todo = [t for t in targets if t.wants(event.state) and record.delivered.get(t.key, -1) < event.rank]
            skipped = [t.kind for t in targets if t not in todo]
            results = self._deliver_all(event, todo, record, fresh_record)
        failed = {k: r for k, r in results.items() if not r.delivered}
        body: dict[str, Any] = {
            "run": run,
            "state": event.state,
            "delivered": sorted(k for k, r in results.items() if r.delivered),
            "skipped": sorted(skipped),
            "failed": {k: {"verdict": r.verdict, "status": r.status} for k, r in sorted(failed.items())},
        }
        if not failed:
            return Outcome(200, body)
        transient = any(r.verdict == "retry" for r in failed.values())
        return Outcome(502 if transient else 422, body)

    def _deliver_all(
        self, event: RunEvent, targets: list[Target], record: RunRecord, fresh_record: bool
    ) -> dict[str, Result]:
        if not targets:
            return {}
        labels = {t.key: f"{t.kind}#{i}" for i, t in enumerate(targets)}
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="notify") as pool:
            futures = {
                t.key: pool.submit(
                    self._deliver_one, event, t, labels[t.key], fresh_record and t.key not in record.delivered
                )
                for t in targets
            }
            results = {}
            for target in targets:
                try:
                    result = futures[target.key].result()
                except Exception as e:  # a bug in one target must not hide the others' results
                    log.exception("%s: delivery crashed", labels[target.key])
                    result = Result("retry", 0, None, repr(e))
                if result.delivered:
                    record.delivered[target.key] = event.rank
                results[labels[target.key]] = result
        return results

    def _deliver_one(self, event: RunEvent, target: Target, label: str, check_terminal: bool) -> Result:
        run = f"{event.namespace}/{event.name}"
        if target.error:
            log.error("%s %s: %s", run, label, target.error)
            return Result("fail", 0, None, target.error)
        logs_url = self.settings.logs_url(event.namespace, event.name)
        if check_terminal and event.rank < TERMINAL_RANK and self._terminal_already(target, logs_url, label):
            log.info("%s %s %s: this run's status there is already terminal, not sent", run, event.state, label)
            return Result("done", 0, None, "already terminal")
        sender = target.sender
        result = self.deliverer.send(sender.request(event, target, logs_url), sender.classify, label)
        level = logging.INFO if result.delivered else logging.ERROR
        log.log(
            level,
            "%s %s %s: %s, %d attempt(s), HTTP %s",
            run,
            event.state,
            label,
            result.verdict,
            result.attempts,
            result.status,
        )
        return result

    def _terminal_already(self, target: Target, logs_url: str, label: str) -> bool:
        """The terminal-state check: one GET, no retries; any trouble means "not known to be terminal"."""
        check = target.sender.precheck(target)
        if check is None or not logs_url:
            return False
        try:
            response = self.deliverer.transport(check, self.settings.retry.timeout)
        except (OSError, ValueError) as e:
            log.warning("%s: terminal-state check failed (%s), posting anyway", label, type(e).__name__)
            return False
        return target.sender.already_terminal(target, logs_url, response)
