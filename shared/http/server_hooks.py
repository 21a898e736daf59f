"""Requests gunicorn rejects before any function sees them (a header over 8190 bytes, malformed
request lines) get a JSON error with the security headers, like every other error, instead of
gunicorn's HTML page."""

from __future__ import annotations

import json
import socket
from typing import Any

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


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
    if getattr(util, "_tpl_json_errors", False):
        return True

    def write_error(sock: socket.socket, status_int: int, reason: str, mesg: Any) -> None:
        util.write_nonblock(sock, json_error_page(int(status_int), str(reason)))

    util.write_error = write_error
    util._tpl_json_errors = True  # type: ignore[attr-defined]
    return True
