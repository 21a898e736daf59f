"""GET /status/<run> and /status/<namespace>/<run>: the run's final state for `curl -f`.

200 only for a succeeded run; 409 while it runs (Retry-After); 422 when it failed, was cancelled
or timed out; 404 when it does not exist. `?wait=<s>` waits for the run to finish.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from shared.http.endpoint import endpoint
from shared.http.query import StatusQuery
from shared.http.responses import json_response, kube_errors_answered
from shared.http.run_request import parse_run_request
from shared.http.service import Service
from shared.kube.client import TASKRUNS
from shared.runs.lookup import find_pipelinerun, wait_until_done
from shared.runs.model import PIPELINE_RUN_LABEL
from shared.runs.status import Outcome, http_code, outcome_of, run_status


@functions_framework.http
@endpoint
def status(request: Request, svc: Service) -> Response:
    req = parse_run_request(request, svc, "status", StatusQuery.from_request)
    ref, query = req.run, req.query
    with kube_errors_answered(ref.what):
        run = find_pipelinerun(svc.kube, ref.namespace, ref.name, query.wait, svc.shutdown)
        run = wait_until_done(svc.kube, run, query.wait, svc.shutdown, req.client_gone)
        taskruns = None
        if query.tasks:
            taskruns, _ = svc.kube.list_objects(TASKRUNS, ref.namespace, f"{PIPELINE_RUN_LABEL}={ref.name}")
    outcome = outcome_of(run)
    headers = {"Retry-After": "10"} if outcome in (Outcome.RUNNING, Outcome.PENDING) else {}
    return json_response(run_status(run, taskruns), http_code(outcome), headers)
