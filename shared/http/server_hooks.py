"""Requests gunicorn rejects before any function sees them (a request line over 4094 bytes, a
header over 8190 bytes, malformed request lines) get a JSON error with the security headers, like
every other error, instead of gunicorn's HTML page.

functions-framework starts gunicorn with `limit_request_line: 0` (unlimited: gunicorn then buffers
up to 1 MiB of request line, and reads what the socket holds, before answering 414);
`install_request_limits` restores bounded limits in every server the functions run in (the
`functions-framework` CLI of the image and of `func`, and `python -m shared.http.router`), and
adds the `RESERVED_THREADS` that streams and waits never take."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from shared.config import Env, StreamSettings, load

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


# The longest request line any function accepts is a 1024-character path and a 2048-character
# query (shared.http.endpoint); gunicorn's own defaults are these two values.
LIMIT_REQUEST_LINE = 4094
# `Authorization` is refused over 4096 characters; OIDC tokens and proxies' headers fit in this.
LIMIT_REQUEST_FIELD_SIZE = 8190
LIMIT_REQUEST_FIELDS = 100
REQUEST_LIMITS = {
    "limit_request_line": LIMIT_REQUEST_LINE,
    "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
    "limit_request_fields": LIMIT_REQUEST_FIELDS,
}


def patch_once(owner: Any, marker: str, patch: Callable[[], None]) -> bool:
    """Runs `patch` (which replaces attributes of `owner`) unless `owner` is marked as patched."""
    if not getattr(owner, marker, False):
        patch()
        setattr(owner, marker, True)
    return True


def install_request_limits() -> bool:
    """Makes functions-framework's gunicorn application set `REQUEST_LIMITS` after its own options.
    Must run before the server starts: at import of a function source, which functions-framework
    loads before it builds the server."""
    try:
        from functions_framework._http.gunicorn import GunicornApplication
    except ImportError:
        return False
    original = GunicornApplication.load_config

    def load_config(self: Any) -> None:
        original(self)
        for key, value in REQUEST_LIMITS.items():
            self.cfg.set(key, value)
        # Threads no stream or wait may take (shared.auth.streams): /status and probes find them.
        self.cfg.set("threads", self.cfg.threads + load(StreamSettings, Env()).reserved_threads)

    def patch() -> None:
        GunicornApplication.load_config = load_config  # type: ignore[method-assign]

    return patch_once(GunicornApplication, "_tpl_request_limits", patch)


def json_error_page(status: int, reason: str) -> bytes:
    body = json.dumps({"error": reason.lower() or "bad request", "status": status}).encode() + b"\n"
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def install_error_pages() -> bool:
    """Replaces gunicorn.util.write_error, which workers look up at call time. The message
    gunicorn would add (it can echo parts of the bad request) is left out on purpose."""
    try:
        from gunicorn import util
    except ImportError:
        return False

    def write_error(sock: socket.socket, status_int: int, reason: str, mesg: Any) -> None:
        util.write_nonblock(sock, json_error_page(int(status_int), str(reason)))

    def patch() -> None:
        util.write_error = write_error

    return patch_once(util, "_tpl_json_errors", patch)
