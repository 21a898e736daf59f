"""The live page of a run: `/logs/<run>` asked with `Accept: text/html` answers a static page that
follows the run as server-sent events (`/logs/<run>?format=sse`) in the browser; its script and
style are served by the logs function itself at `/logs/_assets/<file>` (no CDN), behind the same
authentication. The page holds no state: a reloaded page, a reconnect after a cut or a listener
that scaled to zero and back all continue from the stream's cursors.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote, urlencode

from flask import Request, Response

from shared.http.responses import HttpError
from shared.http.run_request import authenticated, raw_path_segments
from shared.http.server_hooks import SECURITY_HEADERS
from shared.http.service import Service

ASSETS_PATH = "/logs/_assets"
ASSET_TYPES = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
# The page may load its own script and style and open its own event stream; nothing else.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def asset_response(request: Request, svc: Service, assets: Path) -> Response | None:
    """The answer to `/logs/_assets/<file>`, or None for any other path."""
    parts = raw_path_segments(request)
    if parts[:2] != ["logs", "_assets"]:
        return None
    authenticated(request, svc)
    name = parts[2] if len(parts) == 3 else ""
    if name not in ASSET_TYPES:
        raise HttpError(404, "no such asset")
    response = Response((assets / name).read_bytes(), content_type=ASSET_TYPES[name])
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def page_response(assets: Path, namespace: str, name: str, tasks: frozenset[str], steps: frozenset[str]) -> Response:
    path = f"/logs/{quote(namespace)}/{quote(name)}"
    filters = [("task", t) for t in sorted(tasks)] + [("step", s) for s in sorted(steps)]
    stream = f"{path}?{urlencode([('format', 'sse'), *filters])}"
    plain = f"{path}?{urlencode([('format', 'text'), *filters])}"
    text = (assets / "page.html").read_text(encoding="utf-8")
    body = text.format(
        title=html.escape(f"{namespace}/{name}"),
        run=html.escape(name),
        assets=ASSETS_PATH,
        stream=html.escape(stream),
        plain=html.escape(plain),
    )
    response = Response(body, content_type="text/html; charset=utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response
