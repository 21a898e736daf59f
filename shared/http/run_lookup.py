"""The run a request is about: named in its path, or the one run its `?eventid=` / `?sha=` selects
(404 when none came within the wait, 409 with the candidates when several match)."""

from __future__ import annotations

from typing import Protocol

from shared.http.responses import HttpError
from shared.http.run_request import RunRequest
from shared.http.service import Service
from shared.runs.find import RunSelector, find_runs
from shared.runs.lookup import find_pipelinerun
from shared.runs.model import Obj, labels_of, name_of
from shared.runs.outcome import outcome_of


class SelectingQuery(Protocol):
    eventid: str | None
    sha: str | None


def find_run(svc: Service, req: RunRequest[SelectingQuery], wait: float) -> Obj:
    ref = req.run
    if ref.name:
        return find_pipelinerun(svc.kube, ref.namespace, ref.name, wait, svc.shutdown, req.client_gone)
    settings = svc.settings
    selector = RunSelector(req.query.eventid, req.query.sha, settings.run_sha_label, settings.run_sha_annotation)
    if problem := selector.problem():
        raise HttpError(400, problem)
    runs = find_runs(svc.kube, ref.namespace, selector, wait, svc.shutdown, req.client_gone)
    # Runs the caller may not read are neither found nor listed as candidates.
    runs = [run for run in runs if req.principal.may_read_run(labels_of(run))]
    if not runs:
        raise HttpError(404, f"no PipelineRun in {ref.namespace} with {selector.describe()} after {wait:g}s")
    if len(runs) > 1:
        candidates = [
            {
                "name": name_of(run),
                "namespace": ref.namespace,
                "creationTimestamp": (run.get("metadata") or {}).get("creationTimestamp"),
                "outcome": str(outcome_of(run)),
            }
            for run in runs
        ]
        message = f"{len(runs)} PipelineRuns in {ref.namespace} match {selector.describe()}; ask for one by name"
        raise HttpError(409, message, extra={"candidates": candidates})
    return runs[0]
