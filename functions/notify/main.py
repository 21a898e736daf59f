"""notify: report Tekton PipelineRun CloudEvents to GitLab, GitHub, Slack and webhooks.

    functions-framework --source functions/notify/main.py --target notify --signature-type cloudevent

A cloudevent target only gets POST routes, so the Knative probes `GET /health/liveness` and
`GET /health/readiness` are registered on the framework's Flask app while it loads this module
(it does so inside an app context), with a check of every POST's sender, size and shape before
the framework parses it (`shared.notify.ingress`: 401/403 without a valid token when
NOTIFY_AUDIENCE is set, 413 over NOTIFY_MAX_BODY_BYTES, 400 for what is no CloudEvent).
Answers, all JSON: 200 when every target is done (or the event named no run), 502 to make
Knative Eventing redeliver, 422 for permanent target failures, 400 for unusable payloads, 503
while the API or the config is unusable (docs/openapi-notify.yaml).
"""

from __future__ import annotations

import json
import logging

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shared import log_lines
from shared.config import Env, load
from shared.http.observe import install_worker_hook, observe_app
from shared.http.server_hooks import install_error_pages, install_request_limits
from shared.notify import Notifier
from shared.notify.ingress import IngressGuard, IngressSettings, token_review

# Bounded request lines and headers, JSON errors for requests gunicorn refuses (as every function).
install_error_pages()
install_request_limits()
install_worker_hook()  # shared/metrics on METRICS_PORT: deliveries, Kubernetes API requests
log_lines.install()  # an event's id or type cannot start a log line of its own

log = logging.getLogger(__name__)
notifier = Notifier.from_env()
guard = IngressGuard(load(IngressSettings, Env()), token_review(lambda *a: notifier.kube.send(*a)))


def _json(body: object, status: int) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


@functions_framework.cloud_event
def notify(event: CloudEvent) -> None:
    try:
        outcome = notifier.handle(event["type"], event["id"], event.get_data())
    except Exception:  # a bug: Eventing redelivers on 500; the client gets JSON, the log the trace
        log.exception("event %s: not handled", event["id"])
        flask.abort(_json({"error": "internal error"}, 500))
    # The framework answers 200 "OK" for a cloudevent target that returns; abort() carries our
    # status and JSON body (what was delivered, or why nothing was), also for 200.
    flask.abort(_json(outcome.body, outcome.status))


def check_sender() -> flask.Response | None:
    """Before the framework parses an event: the sender's token, the body's size, then that it is a
    CloudEvent at all (docs/notify.md)."""
    if flask.request.method != "POST":
        return None
    refusal = guard.refusal(flask.request.headers.get("Authorization"))
    refusal = refusal or guard.too_large(flask.request.content_length)
    if refusal is None and flask.request.content_length is None:
        # Chunked: werkzeug reads at most MAX_CONTENT_LENGTH (the cap + 1), so one byte over is seen.
        try:
            size = len(flask.request.get_data(cache=True))
        except RequestEntityTooLarge:
            size = guard.settings.max_body + 1
        refusal = guard.too_large(size)
    refusal = refusal or guard.not_an_event(flask.request.headers, flask.request.get_data(cache=True))
    return None if refusal is None else _json(refusal.body, refusal.status)


def json_errors(error: HTTPException) -> flask.Response:
    """Every error as a short JSON body: the framework's own 400 page echoes the request's headers
    (a bearer token among them) and body."""
    if error.response is not None:  # one of ours (flask.abort with a response)
        return error.response
    return _json({"error": error.name}, error.code or 500)


def liveness() -> flask.Response:
    return _json({"status": "ok"}, 200)


def readiness() -> flask.Response:
    ok, reason = notifier.ready()
    return _json({"status": "ok" if ok else reason}, 200 if ok else 503)


if flask.has_app_context():
    observe_app(flask.current_app, "notify")  # tpl_http_* metrics, access log, X-Request-Id
    flask.current_app.add_url_rule("/health/liveness", "notify-liveness", liveness, methods=["GET"])
    flask.current_app.add_url_rule("/health/readiness", "notify-readiness", readiness, methods=["GET"])
    flask.current_app.config["MAX_CONTENT_LENGTH"] = guard.settings.max_body + 1
    flask.current_app.before_request(check_sender)
    flask.current_app.register_error_handler(HTTPException, json_errors)
