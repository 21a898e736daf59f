"""Process shutdown as open streams see it.

On SIGTERM (Knative scale-down, rollouts) gunicorn's gthread worker stops accepting and then
waits `graceful_timeout` for open requests before it exits; a log stream would be cut mid-line
at the end of that wait. Setting `SHUTDOWN` when the signal arrives lets every stream end at
once, at a line boundary, telling its client how to continue.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.http.server_hooks import patch_once

SHUTDOWN = threading.Event()


def install_gunicorn_hook() -> bool:
    """Wraps the gthread worker's SIGTERM/SIGINT handlers. Must run before the worker starts
    (module import time: functions-framework loads the function source before forking)."""
    try:
        from gunicorn.workers.gthread import ThreadWorker
    except ImportError:
        return False
    original_exit = ThreadWorker.handle_exit
    original_quit = ThreadWorker.handle_quit

    def handle_exit(self: Any, sig: int, frame: Any) -> None:
        SHUTDOWN.set()
        original_exit(self, sig, frame)

    def handle_quit(self: Any, sig: int, frame: Any) -> None:
        SHUTDOWN.set()
        original_quit(self, sig, frame)

    def patch() -> None:
        ThreadWorker.handle_exit = handle_exit  # type: ignore[method-assign]
        ThreadWorker.handle_quit = handle_quit  # type: ignore[method-assign]

    return patch_once(ThreadWorker, "_tpl_shutdown_hook", patch)
