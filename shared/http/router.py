"""All functions behind one port, routed by path exactly like the production ingress.

`python -m shared.http.router` serves /health*, /logs/*, /status/* (and /notify when present) from
the same function sources the Knative Services run, with functions-framework's own gunicorn
settings, so `make run` and the tests see what CI jobs see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from functions_framework import create_app

from shared.config import Env, Settings, load
from shared.http.server_hooks import SECURITY_HEADERS

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"

# (path prefix, function) in match order; a prefix matches itself and anything under it. The
# readiness probe is the logs function's, as the kubelet of a logs pod sees it: the health
# function holds no Kubernetes token, so its own readiness cannot prove the API answers.
ROUTES = [("/health/readiness", "logs"), ("/health", "health"), ("/logs", "logs"), ("/status", "status")]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_function(name: str, signature_type: str = "http") -> WsgiApp:
    return create_app(target=name, source=str(FUNCTIONS / name / "main.py"), signature_type=signature_type)


class Router:
    def __init__(self, apps: dict[str, WsgiApp]) -> None:
        self.apps = apps

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix, name in ROUTES:
            if (path == prefix or path.startswith(prefix + "/")) and name in self.apps:
                return self.apps[name](environ, start_response)
        body = json.dumps({"error": "no such path; use /health, /logs/<run> or /status/<run>", "status": 404})
        start_response("404 Not Found", [("Content-Type", "application/json"), *SECURITY_HEADERS.items()])
        return [body.encode() + b"\n"]


def build() -> Router:
    return Router({name: load_function(name) for name in dict.fromkeys(name for _, name in ROUTES)})


def main() -> None:
    from functions_framework._http.gunicorn import GunicornApplication

    env = Env()
    GunicornApplication(build(), env.text("HOST", "127.0.0.1"), load(Settings, env).port, False).run()


if __name__ == "__main__":
    main()
