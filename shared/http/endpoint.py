"""HTTP plumbing shared by the functions: JSON errors, probes, auth, run paths, streaming.

Every error is `{"error": "<what was wrong>", "status": <code>}`; nothing raised inside a handler
reaches the client as a stack trace.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import select
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Request, Response, current_app, has_app_context
from werkzeug.exceptions import HTTPException

from shared.auth import Principal, StreamLease, StreamLimitExceeded
from shared.config import SettingsError
from shared.http.request import Args, QueryError
from shared.http.server_hooks import SECURITY_HEADERS, install_error_pages
from shared.http.service import Service, service
from shared.http.shutdown import install_gunicorn_hook
from shared.kube.client import Forbidden, KubeConfigError, KubeError, NotFound, Unreachable
from shared.kube.names import namespace_problem, object_name_problem

log = logging.getLogger("tekton_pipeline_listener")
install_gunicorn_hook()
install_error_pages()

MAX_PATH = 1024
MAX_QUERY = 2048


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body) + "\n", status=status, mimetype="application/json")
    for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[key] = value
    return response


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # json.dumps escapes anything a caller put in the message; the body is never HTML.
    return json_response({"error": message, "status": status}, status, headers)


def kube_error(err: KubeError, what: str) -> HttpError:
    """Maps a Kubernetes failure to a response that names the cause but not internals."""
    if isinstance(err, NotFound):
        return HttpError(404, f"{what} not found")
    if isinstance(err, Forbidden):
        return HttpError(502, f"the listener's service account may not read {what}: Kubernetes RBAC denied it")
    if isinstance(err, KubeConfigError):
        return HttpError(503, "the listener cannot configure its Kubernetes client; see its log", {"Retry-After": "30"})
    if isinstance(err, Unreachable):
        return HttpError(503, "the Kubernetes API is unreachable", {"Retry-After": "5"})
    return HttpError(502, f"the Kubernetes API failed the request ({err.status} {err.reason})")


# -- probes ------------------------------------------------------------------------------------
def probe(request: Request, svc: Service) -> Response | None:
    """Answers /health/liveness and /health/readiness in every function."""
    if request.path == "/health/liveness":
        return json_response({"status": "ok"})
    if request.path == "/health/readiness":
        problem = svc.kubernetes_problem()
        detailed = _authenticated(request, svc)
        body: dict[str, Any] = {"status": "ready" if problem is None else "not ready"}
        if detailed:
            body["kubernetes"] = problem or "ok"
            body["namespace"] = svc.settings.namespace
        return json_response(body, 200 if problem is None else 503)
    return None


def _authenticated(request: Request, svc: Service) -> bool:
    header = request.headers.get("Authorization")
    if not header:
        return False
    return svc.authenticator.authenticate(header, client_address(request, svc)).ok


def client_address(request: Request, svc: Service) -> str:
    """The caller's address for rate limits: the peer, or, behind a trusted proxy, the nearest
    address in X-Forwarded-For that is not itself a trusted proxy (clients can prepend anything)."""
    peer = request.remote_addr or ""
    trusted = svc.settings.trusted_proxies
    if not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop
    return peer


def _in_networks(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


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


def endpoint(handler: Callable[[Request, Service], Response]) -> Callable[[Request], Response]:
    """Wraps a function target: limits, probes, and every failure as a JSON error."""
    _install_app_errors()

    @functools.wraps(handler)
    def wrapper(request: Request) -> Response:
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
            answered = probe(request, svc)
            if answered is not None:
                return answered
            response = handler(request, svc)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response
        except HttpError as err:
            return error_response(err.status, err.message, err.headers)
        except QueryError as err:
            return error_response(400, str(err))
        except KubeError as err:
            mapped = kube_error(err, "the requested object")
            return error_response(mapped.status, mapped.message, mapped.headers)
        except Exception:
            log.exception("unhandled error serving %s", request.path[:200])
            return error_response(500, "internal error; see the listener's log")

    return wrapper


# -- request parsing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRef:
    namespace: str
    name: str


def run_ref(request: Request, endpoint_name: str, default_namespace: str) -> RunRef:
    """`/<endpoint>/<run>` or `/<endpoint>/<namespace>/<run>`, names checked before any API call."""
    parts = raw_path_segments(request)
    if not parts or parts[0] != endpoint_name or len(parts) not in (2, 3):
        raise HttpError(404, f"no such path; use /{endpoint_name}/<run> or /{endpoint_name}/<namespace>/<run>")
    namespace, name = (default_namespace, parts[1]) if len(parts) == 2 else (parts[1], parts[2])
    problem = namespace_problem(namespace)
    if problem:
        raise HttpError(400, f"invalid namespace: {problem}")
    problem = object_name_problem(name)
    if problem:
        raise HttpError(400, f"invalid run name: {problem}")
    return RunRef(namespace, name)


def raw_path_segments(request: Request) -> list[str]:
    """Path segments split before percent-decoding, so `%2F` stays inside a segment (and then
    fails the naming rules) instead of becoming a separator."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        return request.path.strip("/").split("/")
    path = urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0]
    return [unquote(part) for part in path.strip("/").split("/")]


def query_args(request: Request) -> Args:
    return Args(request.args.items(multi=True))


def authorize(request: Request, svc: Service, namespace: str) -> Principal:
    decision = svc.authenticator.authenticate(request.headers.get("Authorization"), client_address(request, svc))
    if not decision.ok or decision.principal is None:
        raise HttpError(decision.status, decision.error, dict(decision.headers))
    if not decision.principal.may_read(namespace):
        # Same answer whether or not the run exists: no probing of other namespaces.
        raise HttpError(403, f"not allowed to read runs in namespace {namespace!r}")
    return decision.principal


# -- streaming ---------------------------------------------------------------------------------
def client_gone_check(request: Request) -> Callable[[], bool]:
    """A cheap check whether the client closed its connection, so a silent stream notices a
    departed client within a second instead of at its next write."""
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone


def admit_stream(svc: Service, principal: Principal) -> StreamLease:
    """A slot for one more log stream of `principal`; 429 when it has too many open."""
    try:
        return svc.stream_limiter.acquire(principal)
    except StreamLimitExceeded as err:
        raise HttpError(err.status, err.error, dict(err.headers)) from err


def streaming_response(
    chunks: Iterable[bytes],
    content_type: str,
    headers: dict[str, str] | None = None,
    lease: StreamLease | None = None,
) -> Response:
    body: Iterable[bytes] = _flushing(chunks)
    if lease is not None:
        # Outermost, so the slot is freed however the body ends, even if it never started.
        body = lease.guard(body)
    response = Response(body, mimetype=None, content_type=content_type)
    response.headers.update({**SECURITY_HEADERS, "Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"})
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flushing(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Skips empty chunks (an empty write could end a chunked response) and closes the source
    when the client goes away."""
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            if chunk:
                yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
