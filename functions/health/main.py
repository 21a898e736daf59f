"""GET /health: liveness of the service; cheap, open, JSON. Also the probe paths.

It never talks to Kubernetes (its pods carry no ServiceAccount token), so its readiness does not
ask the API either."""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from shared.http.endpoint import endpoint
from shared.http.responses import HttpError, json_response
from shared.http.service import Service


@functions_framework.http
@endpoint(kubernetes=False)
def health(request: Request, svc: Service) -> Response:
    if request.path.rstrip("/") != "/health":
        raise HttpError(404, "no such path; use /health, /health/liveness or /health/readiness")
    return json_response({"status": "ok", "service": "tekton-pipeline-listener"})
