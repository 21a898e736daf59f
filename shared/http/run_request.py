"""One request for a run, parsed once: path → namespace and run, query options, the caller.

`parse_run_request` checks, in this order, the path (404, and names against Kubernetes naming
rules: 400), the credentials and the namespace grant (401/403/429/503), then the options (400),
before any Kubernetes API call; the function hands the typed `RunRequest` on.
"""

from __future__ import annotations

import ipaddress
import select
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit

from flask import Request

from shared.auth import Principal, StreamLease, StreamLimitExceeded
from shared.auth.oidc import looks_like_jwt
from shared.config import Settings
from shared.http.observe import note_caller, note_run
from shared.http.query import Args, Headers
from shared.http.responses import HttpError
from shared.http.service import Service
from shared.kube.names import namespace_problem, object_name_problem
from shared.metrics import AUTH_FAILURES, BACKOFFS
from shared.runs.model import Obj, labels_of

Q = TypeVar("Q")


@dataclass(frozen=True)
class RunRef:
    namespace: str
    name: str

    @property
    def what(self) -> str:
        # No name: the run is found by the query's eventid= or sha=.
        return f"PipelineRun {self.namespace}/{self.name}" if self.name else f"PipelineRuns in {self.namespace}"


@dataclass(frozen=True)
class RunRequest(Generic[Q]):
    """What a function needs of one `/logs` or `/status` request, validated and authorized."""

    run: RunRef
    query: Q
    principal: Principal
    # True once the client has closed its connection (checked without blocking).
    client_gone: Callable[[], bool]


def parse_run_request(
    request: Request, svc: Service, endpoint_name: str, parse_query: Callable[[Args, Settings, Headers], Q]
) -> RunRequest[Q]:
    by_selector = "eventid" in request.args or "sha" in request.args
    ref = run_ref(request, endpoint_name, svc.settings.namespace, by_selector)
    note_run(request, ref.namespace, ref.name)
    principal = authorize(request, svc, ref.namespace)
    query = parse_query(Args(request.args.items(multi=True)), svc.settings, request.headers)
    return RunRequest(ref, query, principal, client_gone_check(request))


def run_ref(request: Request, endpoint_name: str, default_namespace: str, by_selector: bool = False) -> RunRef:
    """`/<endpoint>/<run>` or `/<endpoint>/<namespace>/<run>`, names checked before any API call;
    with `by_selector` (`?eventid=`, `?sha=`), `/<endpoint>` or `/<endpoint>/<namespace>`."""
    parts = raw_path_segments(request)
    if by_selector:
        if not parts or parts[0] != endpoint_name or len(parts) not in (1, 2):
            raise HttpError(404, f"with eventid= or sha=, use /{endpoint_name}?… or /{endpoint_name}/<namespace>?…")
        namespace = parts[1] if len(parts) == 2 else default_namespace
        problem = namespace_problem(namespace)
        if problem:
            raise HttpError(400, f"invalid namespace: {problem}")
        return RunRef(namespace, "")
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


def authenticated(request: Request, svc: Service) -> Principal:
    """The caller, whoever it is (401/429/503 otherwise)."""
    header = request.headers.get("Authorization")
    decision = svc.authenticator.authenticate(header, client_address(request, svc))
    if not decision.ok or decision.principal is None:
        _refused(header, decision.status)
        raise HttpError(decision.status, decision.error, dict(decision.headers))
    note_caller(request, decision.principal.name, decision.principal.kind)
    return decision.principal


def authorize(request: Request, svc: Service, namespace: str) -> Principal:
    principal = authenticated(request, svc)
    header = request.headers.get("Authorization")
    if not principal.may_read(namespace):
        # Same answer whether or not the run exists: no probing of other namespaces.
        _refused(header, 403)
        raise HttpError(403, f"not allowed to read runs in namespace {namespace!r}")
    return principal


def _refused(header: str | None, status: int) -> None:
    scheme, _, value = (header or "").strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and looks_like_jwt(value.strip()):
        scheme = "oidc"
    AUTH_FAILURES.labels(scheme if scheme in ("basic", "bearer", "oidc") else "none", str(status)).inc()
    if status == 429:
        BACKOFFS.labels("auth").inc()


def check_run_grant(principal: Principal, run: Obj, ref: RunRef) -> None:
    """403 unless the run carries the labels the caller is confined to (OIDC rules' `run_labels`)."""
    if not principal.may_read_run(labels_of(run)):
        raise HttpError(403, f"not allowed to read {ref.what}: it lacks the labels your token's rule requires")


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


def held_while_waiting(svc: Service, principal: Principal, wait: float) -> AbstractContextManager[object]:
    """A stream slot for a request that will wait (`?wait=`): it holds a worker thread as a stream
    does, so it counts against the same cap. Nothing to hold without a wait."""
    return admit_stream(svc, principal) if wait > 0 else nullcontext()


def admit_stream(svc: Service, principal: Principal) -> StreamLease:
    """A slot for one more log stream of `principal`; 429 when it has too many open."""
    try:
        return svc.stream_limiter.acquire(principal)
    except StreamLimitExceeded as err:
        BACKOFFS.labels("streams").inc()
        raise HttpError(err.status, err.error, dict(err.headers)) from err
