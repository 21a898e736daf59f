"""GET /status/<run> and /status/<namespace>/<run>: the run's final state for `curl -f`.

200 only for a succeeded run; 409 while it runs (Retry-After); 422 when it failed, was cancelled
or timed out; 404 when it does not exist. `?wait=<s>` waits for the run to finish, holding one of
the caller's stream slots meanwhile (429 when none is free).
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from shared.http.endpoint import endpoint
from shared.http.query import StatusQuery
from shared.http.responses import json_response, kube_errors_answered
from shared.http.run_lookup import find_run
from shared.http.run_request import check_run_grant, held_while_waiting, parse_run_request
from shared.http.service import Service
from shared.logs.last_lines import with_last_lines
from shared.runs.lookup import taskruns_of, wait_until_done
from shared.runs.status import http_code, outcome_of, run_status


@functions_framework.http
@endpoint
def status(request: Request, svc: Service) -> Response:
    req = parse_run_request(request, svc, "status", StatusQuery.from_request)
    ref, query = req.run, req.query
    with held_while_waiting(svc, req.principal, query.wait), kube_errors_answered(ref.what):
        run = find_run(svc, req, query.wait)
        check_run_grant(req.principal, run, ref)
        run = wait_until_done(svc.kube, run, query.wait, svc.shutdown, req.client_gone)
        outcome = outcome_of(run)
        failed = http_code(outcome) == 422
        taskruns = taskruns_of(svc.kube, run) if query.tasks or failed else None
        body = run_status(run, taskruns, task_details=query.tasks)
        if "digest" in body:
            body["digest"] = with_last_lines(svc.kube, svc.maskers, ref.namespace, body["digest"], query.digest_lines)
    headers = {} if outcome.done else {"Retry-After": "10"}
    return json_response(body, http_code(outcome), headers)
