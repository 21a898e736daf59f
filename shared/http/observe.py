"""What every request leaves behind: metrics, one JSON access-log line, its `X-Request-Id`.

The endpoint wrapper opens an `Observation` when a request arrives and hands it the response;
the observation counts the body as it goes out and, when the server closes the response (the end
of a stream included, or a client gone), records the duration and writes the access-log line.
`run_request` adds who asked and for which run (`note_caller`, `note_run`). Nothing from headers,
query strings or bodies is logged but the validated run and the principal's name.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import orjson
from flask import Flask, Request, Response, g, request

from shared import metrics
from shared.config import Env, MetricsSettings, load
from shared.http.server_hooks import patch_once
from shared.logs.events import Event, LogLines
from shared.metrics.server import serve

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# An id from the ingress (Envoy and Knative set one) is kept when it is plainly an id.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_CALLER, _RUN = "tpl.caller", "tpl.run"


def _access_logger() -> logging.Logger:
    logger = logging.getLogger("tekton_pipeline_listener.access")
    if not logger.handlers:  # its own handler: gunicorn configures only its own loggers
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


ACCESS = _access_logger()


def _new_request_id() -> str:
    # 128 random bits in hex, as uuid4().hex was, from the process's generator (seeded from the
    # OS, again in every forked worker): no system call per request.
    return f"{random.getrandbits(128):032x}"


def route_of(path: str) -> str:
    """The path's template: a bounded label value whatever the client sends."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        return "/"
    head = parts[0]
    if head == "health":
        tail = parts[1:]
        return "/health" if not tail else f"/health/{tail[0]}" if tail in (["liveness"], ["readiness"]) else "other"
    if head in ("logs", "status") and len(parts) in (2, 3):
        return f"/{head}/<run>" if len(parts) == 2 else f"/{head}/<namespace>/<run>"
    return "other"


def note_caller(request: Request, name: str, kind: str) -> None:
    request.environ[_CALLER] = (name, kind)


def note_run(request: Request, namespace: str, name: str) -> None:
    request.environ[_RUN] = f"{namespace}/{name}"


class _CountedBody:
    """The response body as it is sent: bytes counted, close passed on."""

    def __init__(self, body: Iterable[bytes], function: str) -> None:
        self._body = body
        self._bytes = metrics.child(metrics.STREAMED_BYTES, function)
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self.sent += len(chunk)
            self._bytes.inc(len(chunk))
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def counted_lines(batches: Iterable[list[Event]]) -> Iterator[list[Event]]:
    """The follower's batches, their step log lines counted (the events know how many they hold:
    counting newlines in the body would cost a pass over every byte)."""
    for batch in batches:
        lines = sum(event.lines for event in batch if isinstance(event, LogLines))
        if lines:
            metrics.STREAMED_LINES.inc(lines)
        yield batch


class Observation:
    def __init__(self, request: Request, function: str) -> None:
        self.started = time.perf_counter()
        self.function = function
        self.route = route_of(request.path)
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        self.request_id = incoming if _REQUEST_ID.match(incoming) else _new_request_id()
        self.resume = function == "logs" and ("resume" in request.args or "Last-Event-ID" in request.headers)
        self._in_handler = metrics.child(metrics.REQUESTS_IN_HANDLER, function)
        self._in_handler.inc()

    def abandoned(self) -> None:
        self._in_handler.dec()

    def answered(self, request: Request, response: Response, settings: MetricsSettings | None) -> Response:
        """Called once with the handler's response (errors included)."""
        self._in_handler.dec()
        response.headers[REQUEST_ID_HEADER] = self.request_id
        body: _CountedBody | None = None
        if response.is_streamed:
            body = _CountedBody(response.response, self.function)  # type: ignore[arg-type]
            response.response = body
            metrics.child(metrics.OPEN_STREAMS, self.function).inc()
        log_it = settings is None or settings.access_log
        response.call_on_close(lambda: self._finished(request, response, body, log_it))
        return response

    def _finished(self, request: Request, response: Response, body: _CountedBody | None, log_it: bool) -> None:
        seconds = time.perf_counter() - self.started
        code = response.status_code
        if body is not None:
            metrics.child(metrics.OPEN_STREAMS, self.function).dec()
        metrics.child(metrics.REQUESTS, self.function, self.route, str(code)).inc()
        metrics.child(metrics.REQUEST_SECONDS, self.function, self.route).observe(seconds)
        if self.resume:
            metrics.child(metrics.RESUMES, str(code)).inc()
        if not log_it:
            return
        caller = request.environ.get(_CALLER)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": self.request_id,
            "function": self.function,
            "method": request.method,
            "route": self.route,
            "run": request.environ.get(_RUN),
            "principal": caller[0] if caller else None,
            "auth": caller[1] if caller else None,
            "code": code,
            "bytes": body.sent if body is not None else response.content_length or 0,
            "duration_ms": round(seconds * 1000, 1),
            "resume": self.resume,
        }
        ACCESS.info("%s", orjson.dumps(line).decode())


def observe_app(app: Flask, function: str) -> None:
    """Observations for a Flask app whose views are not behind the endpoint wrapper (notify)."""
    settings = load(MetricsSettings, Env())

    def opened() -> None:
        g.tpl_observation = Observation(request, function)

    def answered(response: Response) -> Response:
        observation = g.pop("tpl_observation", None)
        if observation is None:
            return response
        # The object itself: the response closes after the request context has gone.
        return observation.answered(request._get_current_object(), response, settings)  # type: ignore[attr-defined]

    def torn_down(_: BaseException | None) -> None:
        observation = g.pop("tpl_observation", None)  # still here: the view raised past Flask
        if observation is not None:
            observation.abandoned()

    app.before_request(opened)
    app.after_request(answered)
    app.teardown_request(torn_down)


def install_worker_hook() -> bool:
    """Each gunicorn worker starts its metrics server as it starts, before any request."""
    try:
        from gunicorn.workers.gthread import ThreadWorker
    except ImportError:
        return False
    original = ThreadWorker.init_process

    def init_process(self: ThreadWorker) -> None:
        try:
            serve(load(MetricsSettings, Env()), int(self.cfg.workers))
        except Exception:  # metrics must never keep a worker from serving
            log.exception("starting the metrics server failed")
        original(self)

    def patch() -> None:
        ThreadWorker.init_process = init_process  # type: ignore[method-assign]

    return patch_once(ThreadWorker, "_tpl_metrics_hook", patch)
