"""The endpoint wrapper every function target sits behind: limits, probes, JSON errors.

Nothing raised inside a handler reaches the client as a stack trace: `HttpError`, invalid options,
Kubernetes failures and bugs all become `{"error": "<what was wrong>", "status": <code>}`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Request, Response, current_app, has_app_context
from werkzeug.exceptions import HTTPException

from shared import log_lines
from shared.config import MetricsSettings, SettingsError
from shared.http.observe import Observation, install_worker_hook
from shared.http.query import QueryError
from shared.http.responses import HttpError, error_response, json_response, kube_error
from shared.http.run_request import client_address
from shared.http.server_hooks import SECURITY_HEADERS, install_error_pages, install_request_limits
from shared.http.service import Service, service
from shared.http.shutdown import install_gunicorn_hook
from shared.kube.errors import KubeError
from shared.metrics.server import serve

log = logging.getLogger("tekton_pipeline_listener")
log_lines.install()
install_gunicorn_hook()
install_error_pages()
install_request_limits()
install_worker_hook()

MAX_PATH = 1024
MAX_QUERY = 2048


# -- probes ------------------------------------------------------------------------------------
def probe(request: Request, svc: Service, kubernetes: bool = True) -> Response | None:
    """Answers /health/liveness and /health/readiness in every function; readiness proves the
    Kubernetes API answers only in functions that use it (`health` has no token to use)."""
    if request.path == "/health/liveness":
        return json_response({"status": "ok"})
    if request.path == "/health/readiness":
        problem = svc.kubernetes_problem() if kubernetes else None
        detailed = _operator(request, svc)
        body: dict[str, Any] = {"status": "ready" if problem is None else "not ready"}
        if detailed:
            body["kubernetes"] = problem or "ok"
            body["namespace"] = svc.settings.namespace
        return json_response(body, 200 if problem is None else 503)
    return None


def _operator(request: Request, svc: Service) -> bool:
    """True for a caller who may read every namespace: only an operator learns what the
    service's own Kubernetes access looks like (its namespace, the API's refusals)."""
    header = request.headers.get("Authorization")
    if not header:
        return False
    decision = svc.authenticator.authenticate(header, client_address(request, svc))
    return decision.ok and decision.principal is not None and decision.principal.namespaces is None


# -- the endpoint wrapper ----------------------------------------------------------------------
def _install_app_errors() -> None:
    """Requests functions-framework's own routing refuses (e.g. a `%0A` in the path does not match
    its `/<path:path>` rule) get JSON errors with security headers instead of Flask's HTML."""
    if not has_app_context():
        return
    app = current_app
    if app.config.get("TPL_JSON_ERRORS"):
        return
    app.config["TPL_JSON_ERRORS"] = True

    def http_exception(err: HTTPException) -> Response:
        return error_response(err.code or 500, (err.name or "error").lower())

    app.register_error_handler(HTTPException, http_exception)


Handler = Callable[[Request, Service], Response]


def endpoint(
    handler: Handler | None = None, *, kubernetes: bool = True
) -> Callable[[Request], Response] | Callable[[Handler], Callable[[Request], Response]]:
    """Wraps a function target: limits, probes, and every failure as a JSON error.
    `@endpoint(kubernetes=False)`: a function that never talks to Kubernetes (its readiness
    does not depend on it)."""
    if handler is None:
        return lambda inner: _wrapped(inner, kubernetes)
    return _wrapped(handler, kubernetes)


def _wrapped(handler: Handler, kubernetes: bool) -> Callable[[Request], Response]:
    _install_app_errors()

    @functools.wraps(handler)
    def wrapper(request: Request) -> Response:
        observation = Observation(request, handler.__name__)  # metrics, access log, X-Request-Id
        try:
            response = respond(request)
        except BaseException:  # a worker timeout or exit: the request is no longer in the handler
            observation.abandoned()
            raise
        return observation.answered(request, response, _metrics_settings())

    def respond(request: Request) -> Response:
        try:
            svc = service()
        except SettingsError as err:
            log.error("invalid configuration: %s", err)
            return error_response(500, "the listener is misconfigured; see its log")
        try:
            if len(request.path) > MAX_PATH:
                raise HttpError(414, "request path too long")
            if len(request.query_string) > MAX_QUERY:
                raise HttpError(414, "query string too long")
            if request.method not in ("GET", "HEAD"):
                raise HttpError(405, "method not allowed; use GET", {"Allow": "GET, HEAD"})
            answered = probe(request, svc, kubernetes)
            if answered is not None:
                return answered
            response = handler(request, svc)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response
        except HttpError as err:
            return error_response(err.status, err.message, err.headers, err.extra)
        except QueryError as err:
            return error_response(400, str(err))
        except KubeError as err:
            mapped = kube_error(err, "the requested object")
            return error_response(mapped.status, mapped.message, mapped.headers)
        except Exception:
            log.exception("unhandled error serving %s", request.path[:200])
            return error_response(500, "internal error; see the listener's log")

    return wrapper


def _metrics_settings() -> MetricsSettings | None:
    try:
        settings = service().settings.metrics
    except SettingsError:
        return None
    serve(settings)  # where no gunicorn worker hook started it (a plain Flask server)
    return settings
