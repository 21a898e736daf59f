"""notify: report Tekton PipelineRun CloudEvents to GitLab, GitHub, Slack and webhooks.

    functions-framework --source functions/notify/main.py --target notify --signature-type cloudevent

A cloudevent target only gets POST routes, so the Knative probes `GET /health/liveness` and
`GET /health/readiness` are registered on the framework's Flask app while it loads this module
(it does so inside an app context). Answers: 200 "OK" when every target is done, 502 to make
Knative Eventing redeliver, 422 for permanent target failures, 400 for unusable payloads.
"""

from __future__ import annotations

import json

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.notify import Notifier, metrics

notifier = Notifier.from_env()


def _json(body: object, status: int) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


@functions_framework.cloud_event
def notify(event: CloudEvent) -> None:
    outcome = notifier.handle(event["type"], event["id"], event.get_data())
    # The framework answers 200 "OK" for a cloudevent target that returns; abort() carries our
    # status and JSON body (what was delivered, or why nothing was), also for 200.
    flask.abort(_json(outcome.body, outcome.status))


def liveness() -> flask.Response:
    return _json({"status": "ok"}, 200)


def readiness() -> flask.Response:
    ok, reason = notifier.ready()
    return _json({"status": "ok" if ok else reason}, 200 if ok else 503)


def prometheus() -> flask.Response:
    return flask.Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


if flask.has_app_context():
    flask.current_app.add_url_rule("/health/liveness", "notify-liveness", liveness, methods=["GET"])
    flask.current_app.add_url_rule("/health/readiness", "notify-readiness", readiness, methods=["GET"])
    flask.current_app.add_url_rule("/metrics", "notify-metrics", prometheus, methods=["GET"])
