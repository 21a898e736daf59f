"""Files the service reads again when they change (AUTH_FILE, OIDC_CONFIG, NOTIFY_CONFIG), and how
often it looks.

Kubernetes updates a Secret or ConfigMap volume by writing a new timestamped directory and
swapping the `..data` symlink atomically; the mounted path is a symlink through `..data`.
`os.stat` follows the symlinks, so the swap shows up as a new inode (and real path); editors that
rewrite in place show up as a new size or mtime.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileState:
    """What identifies one version of the file cheaply (no read)."""

    realpath: str
    device: int
    inode: int
    size: int
    mtime_ns: int


class WatchedFile:
    """A file and the version last loaded; subclasses `load` it and call `mark` as they do."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.state: FileState | None = None

    def current_state(self) -> FileState | None:
        try:
            st = os.stat(self.path)
            realpath = os.path.realpath(self.path)
        except OSError:
            return None
        return FileState(realpath, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        return self.current_state() != self.state

    def mark(self) -> FileState | None:
        """Remembers the version about to be read as the one loaded."""
        self.state = self.current_state()
        return self.state


class ReloadGate:
    """Requests look for a change at most once per `interval`, and only one at a time: the others
    go on with what they have instead of queueing. A check that fails is logged; the last loaded
    version stays in use."""

    def __init__(self, what: str, interval: float, clock: Callable[[], float]) -> None:
        self._what = what
        self._interval = interval
        self._clock = clock
        self._checked = clock()
        self._lock = threading.Lock()

    def maybe(self, check: Callable[[], object]) -> None:
        if self._clock() - self._checked < self._interval:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = self._clock()
            check()
        except Exception:  # a broken reload must not take requests down
            log.exception("reloading %s failed; keeping the previous version", self._what)
        finally:
            self._lock.release()

    def now(self, check: Callable[[], bool]) -> bool:
        """Runs `check` at once (waiting for a check under way); its answer."""
        with self._lock:
            self._checked = self._clock()
            return check()
