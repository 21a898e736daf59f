"""Turning one event into deliveries: the event is a hint, the API is the truth.

For an event naming run n (namespace, name) with uid u:
1. The run is read from the API. If it does not exist, or its uid is not u, nothing is sent: the
   answer is 200 (redelivering cannot make it exist) and a warning is logged. If the API cannot
   be reached the answer is 503, for Eventing to redeliver.
2. What is reported is the run as the API has it (its state, annotations, params), never the
   event's payload. An event claiming `successful` for a running run reports `running`.
3. With the run's delivery record (`record`, stored on the run): the run's state ranked below
   one already acted on is dropped as stale; each selected target that wants the state and has
   not yet got it (nor a state ranked at or above it) is sent to, in parallel, each with its own
   retries; the record is then stored on the run, so a restarted instance neither re-posts nor
   skips.
4. The answer: 200 when every wanted target is delivered (or nothing was to be done); 502 when
   some target gave up on a transient error (Knative Eventing retries the event, and on that
   redelivery only the targets not yet delivered are sent to); 422 when the only failures are
   permanent (4xx answers, missing token: retrying cannot help, Eventing dead-letters it);
   400 for a PipelineRun event whose payload is unusable.

The watch-fed mode (`watcher`) calls `report_run` with each run it sees: the same steps from 2 on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings as KubeSettings
from shared.config import load
from shared.kube.client import Forbidden, Kube, KubeError, load_api_client
from shared.metrics import notify_delivery, notify_ignored
from shared.notify.config import ConfigError, Settings
from shared.notify.delivery import Deliverer, Result
from shared.notify.events import TERMINAL_RANK, EventError, RunEvent, parse_event, run_event
from shared.notify.record import DeliveryRecord
from shared.notify.runs_api import ApiRuns, RunStore
from shared.notify.selection import Target, select_targets
from shared.notify.state import RunStates
from shared.notify.tasks import COMMIT_KINDS, per_task, task_logs_url, with_failed_task
from shared.runs.model import Obj

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Mapping[str, Any] = field(default_factory=dict)


class Notifier:
    def __init__(
        self,
        settings: Settings,
        deliverer: Deliverer | None = None,
        states: RunStates | None = None,
        runs: RunStore | None = None,
    ) -> None:
        self.settings = settings
        self.deliverer = deliverer or Deliverer(settings.retry)
        self.states = states or RunStates(settings.state_max_runs)
        self._runs = runs
        self._kube: Kube | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        return cls(Settings.from_env(environ))

    @property
    def kube(self) -> Kube:
        """The API client, made on first use (KUBECONFIG, else the in-cluster ServiceAccount)."""
        if self._kube is None:
            self._kube = Kube(load_api_client(load(KubeSettings, self.settings.env)))
        return self._kube

    @property
    def runs(self) -> RunStore:
        if self._runs is None:
            self._runs = ApiRuns(self.kube)
        return self._runs

    def ready(self) -> tuple[bool, str]:
        """Readiness: the config file (if any) parses."""
        try:
            self.settings.config.get()
        except ConfigError as e:
            return False, str(e)
        return True, "ok"

    def handle(self, event_type: str, event_id: str, data: Any) -> Outcome:
        try:
            claim = parse_event(event_type, event_id, data)
        except EventError as e:
            log.warning("event %s (%s) rejected: %s", event_id, event_type, e)
            return Outcome(400, {"error": str(e)})
        if claim is None:
            return Outcome(200, {"ignored": f"not a PipelineRun event: {event_type}"})
        run = f"{claim.namespace}/{claim.name}"
        memory = self.states.get(claim.uid)
        with memory.lock:
            try:
                obj = self.runs.pipelinerun(claim.namespace, claim.name)
            except Forbidden as e:
                # 503, not 200: a restarting apiserver refuses with 403 until its RBAC is loaded, and
                # a genuine event must then be redelivered. Eventing's retries are bounded; a namespace
                # notify's Role is not bound in ends dead-lettered, with this error in the log.
                log.error("event %s for %s: the run cannot be read (%s), nothing sent", event_id, run, e.reason)
                notify_ignored("unreadable")
                return Outcome(503, {"run": run, "error": "the run cannot be read"})
            except KubeError as e:
                log.warning("event %s for %s: the API did not answer (%s)", event_id, run, e.reason)
                return Outcome(503, {"run": run, "error": "kubernetes API unavailable"})
            if obj is None or (obj.get("metadata") or {}).get("uid") != claim.uid:
                why = "no such run" if obj is None else "the run's uid is not the event's"
                notify_ignored("unknown-run" if obj is None else "uid-mismatch")
                log.warning(
                    "event %s (%s, uid %s) for %s: %s, nothing sent", event_id, claim.state, claim.uid, run, why
                )
                return Outcome(200, {"run": run, "ignored": why})
            outcome = self._report(run_event(obj, "", event_id), obj, memory)
        if outcome.body.get("state") != claim.state:
            log.info(
                "event %s for %s claimed %s; the API says %s", event_id, run, claim.state, outcome.body.get("state")
            )
        return outcome

    def report_run(self, obj: Obj) -> Outcome:
        """Reports a run as read from the API (the watch-fed mode)."""
        try:
            event = run_event(obj)
        except EventError as e:
            return Outcome(400, {"error": str(e)})
        memory = self.states.get(event.uid)
        with memory.lock:
            return self._report(event, obj, memory)

    def _report(self, event: RunEvent, obj: Obj, memory: Any) -> Outcome:
        try:
            config = self.settings.config.get()
        except ConfigError as e:
            log.error("%s", e)
            return Outcome(503, {"error": "notifier config is invalid"})
        run = f"{event.namespace}/{event.name}"
        record = DeliveryRecord.of(obj)
        if memory.record is not None and memory.record.uid == record.uid:
            record.merge(memory.record)
        if event.rank < record.rank:
            log.info("%s: %s (rank %d) after rank %d, dropped as stale", run, event.state, event.rank, record.rank)
            return Outcome(200, {"run": run, "state": event.state, "stale": True})
        targets = select_targets(event, self.settings, config)
        commit_targets = any(t.kind in COMMIT_KINDS for t in targets)
        taskruns = self.runs.taskruns(obj) if targets and (commit_targets or event.state == "failed") else []
        event = with_failed_task(event, taskruns)
        pairs = [(event, t) for t in targets]
        if commit_targets:
            pairs += per_task(event, targets, taskruns)
        fresh_record = record.rank < 0
        todo = [(e, t) for e, t in pairs if t.wants(e.state) and not record.delivered(t.key, e.state, e.rank)]
        skipped = [t.kind for e, t in pairs if (e, t) not in todo]
        checks = {t.key: fresh_record and not record.knows(t.key) for _, t in todo}
        results = self._deliver_all(todo, record, checks)
        if record.rank < event.rank or results:
            record.seen(event.rank)
            memory.record = record
            if any(r.delivered for r in results.values()) or fresh_record:
                self.runs.save(obj, record)
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
        self, todo: list[tuple[RunEvent, Target]], record: DeliveryRecord, checks: Mapping[str, bool]
    ) -> dict[str, Result]:
        """Sends each (event, target) in parallel; labels: `kind#i` for the run, `kind#i:task` per task."""
        if not todo:
            return {}
        labels = {t.key: f"{t.kind}#{i}" + (f":{t.task}" if t.task else "") for i, (_, t) in enumerate(todo)}
        with ThreadPoolExecutor(max_workers=min(len(todo), 16), thread_name_prefix="notify") as pool:
            futures = {t.key: pool.submit(self._deliver_one, e, t, labels[t.key], checks[t.key]) for e, t in todo}
            results = {}
            for event, target in todo:
                try:
                    result = futures[target.key].result()
                except Exception as e:  # a bug in one target must not hide the others' results
                    log.exception("%s: delivery crashed", labels[target.key])
                    result = Result("retry", 0, None, repr(e))
                if result.delivered:
                    record.add(target.key, event.state, event.rank)
                results[labels[target.key]] = result
        return results

    def _deliver_one(self, event: RunEvent, target: Target, label: str, check_terminal: bool) -> Result:
        run = f"{event.namespace}/{event.name}"
        if target.error:
            log.error("%s %s: %s", run, label, target.error)
            return Result("fail", 0, None, target.error)
        logs_url = task_logs_url(self.settings.logs_url(event.namespace, event.name), target.task)
        if check_terminal and event.rank < TERMINAL_RANK and self._terminal_already(target, logs_url, label):
            log.info("%s %s %s: this run's status there is already terminal, not sent", run, event.state, label)
            return Result("done", 0, None, "already terminal")
        sender = target.sender
        result = self.deliverer.send(sender.request(event, target, logs_url), sender.classify, label)
        notify_delivery(target.kind, result.verdict)  # tpl_notify_deliveries_total (shared/metrics)
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
