"""Responses every function sends: JSON bodies and errors with the security headers, streams.

Every error is `{"error": "<what was wrong>", "status": <code>}`; `HttpError` raised anywhere in a
handler becomes one (see `endpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response

from shared.auth import StreamLease
from shared.http.server_hooks import SECURITY_HEADERS
from shared.kube.errors import Forbidden, KubeConfigError, KubeError, NotFound, Unreachable


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the JSON error body (e.g. a 409's candidates)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body) + "\n", status=status, mimetype="application/json")
    for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[key] = value
    return response


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> Response:
    # json.dumps escapes anything a caller put in the message; the body is never HTML.
    return json_response({**(extra or {}), "error": message, "status": status}, status, headers)


def kube_error(err: KubeError, what: str) -> HttpError:
    """Maps a Kubernetes failure to a response that names the cause but not internals."""
    if isinstance(err, NotFound):
        return HttpError(404, f"{what} not found")
    if isinstance(err, Forbidden):
        # 403 like a namespace the caller may not read: the answer is "not here", whoever refused.
        return HttpError(403, f"the listener's service account may not read {what}: Kubernetes RBAC denied it")
    if isinstance(err, KubeConfigError):
        return HttpError(503, "the listener cannot configure its Kubernetes client; see its log", {"Retry-After": "30"})
    if isinstance(err, Unreachable):
        return HttpError(503, "the Kubernetes API is unreachable", {"Retry-After": "5"})
    return HttpError(502, f"the Kubernetes API failed the request ({err.status} {err.reason})")


@contextmanager
def kube_errors_answered(what: str) -> Iterator[None]:
    """Kubernetes failures inside the block become the HttpError that names `what`."""
    try:
        yield
    except KubeError as err:
        raise kube_error(err, what) from err


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
