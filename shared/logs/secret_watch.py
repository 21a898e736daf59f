"""Secrets kept current by list-watches, one per referenced Secret, shared by every stream.

A Secret is watched by name (`fieldSelector=metadata.name=…`), so the listener reads only the
Secrets that runs' pods reference, never the whole namespace. Every value a Secret has held since
it was first read stays known: a step's environment keeps the value it started with after the
Secret is rotated (and a volume sees the new one), so both are masked. A watch nobody uses is
kept for `LINGER` seconds, so a resumed or repeated request finds it ready.

The first read either succeeds within `READ_TIMEOUT` or the Secret is `Unreadable` (refused,
missing, the API failing): masking fails closed. The listener's own Secrets are refused by name
(before any read) and by label (after it, the values dropped).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass, field

from shared.kube.client import SECRETS, Kube, KubeError
from shared.kube.listwatch import Changed, Listed, ListWatch
from shared.runs.model import Obj

log = logging.getLogger(__name__)

LINGER = 30.0
READ_TIMEOUT = 5.0
# Objects carrying this label belong to the listener itself (service.yaml labels everything it ships).
OWN_LABEL = ("app.kubernetes.io/name", "tekton-pipeline-listener")


class Unreadable(Exception):
    """The values to mask cannot be read; the message names the Secret and why, never a value."""


@dataclass(eq=False)
class WatchedSecret:
    namespace: str
    name: str
    cond: threading.Condition = field(default_factory=threading.Condition)
    # key -> every value it held since the watch began (decoded)
    values: dict[str, set[bytes]] = field(default_factory=dict)
    read: bool = False  # listed at least once, and it existed
    problem: str = ""  # why it cannot be read (empty: no problem known)
    version: int = 0  # bumped on every change of `values`, `read` or `problem` (only then)
    changes: list[int] = field(default_factory=lambda: [0])  # shared by all: bumped with any version
    _retrying: bool = False  # the problem is a transient one the watch retries
    users: int = 0
    idle_since: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    listwatch: ListWatch | None = None

    def wait_read(self, timeout: float, started: float | None = None) -> None:
        """Returns once the values are known, at most `timeout` s after `started` (monotonic;
        default now); raises `Unreadable` otherwise."""
        started = time.monotonic() if started is None else started
        with self.cond:
            left = max(started + timeout - time.monotonic(), 0.0)
            self.cond.wait_for(lambda: self.read or (self.problem and not self._retrying), left)
            if not self.read:
                why = self.problem or f"not read within {timeout:g} s"
                raise Unreadable(f"Secret {self.namespace}/{self.name} could not be read ({why})")

    def _update(self, obj: Obj | None) -> None:
        with self.cond:
            if obj is None:
                if not self.read:
                    self._set_problem("404: not found", retrying=False)
                return  # deleted after being read: the pods that used it still hold its values
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(OWN_LABEL[0]) == OWN_LABEL[1]:
                self.values.clear()
                self.read = False
                self._set_problem(f"it is the listener's own (label {OWN_LABEL[0]}={OWN_LABEL[1]}): refused", False)
                return
            known = sum(map(len, self.values.values()))
            for key, encoded in (obj.get("data") or {}).items():
                try:
                    self.values.setdefault(str(key), set()).add(base64.b64decode(encoded, validate=True))
                except (binascii.Error, ValueError, TypeError):
                    continue
            # An update that brings no new value (a relist, a change of labels or annotations)
            # is no change: every stream would build its masker again for nothing.
            if not self.read or self.problem or sum(map(len, self.values.values())) != known:
                self.read, self.problem = True, ""
                self._bump()

    def _set_problem(self, problem: str, retrying: bool) -> None:
        # Called with self.cond held.
        self.problem, self._retrying = problem, retrying
        self._bump()

    def _bump(self) -> None:
        # Called with self.cond held.
        self.version += 1
        self.changes[0] += 1
        self.cond.notify_all()


class SecretWatches:
    """The process's watched Secrets, by (namespace, name), with reference counts."""

    def __init__(self, kube: Kube, refused: frozenset[str] = frozenset()) -> None:
        self.kube = kube
        self.refused = refused
        self._lock = threading.Lock()
        self._secrets: dict[tuple[str, str], WatchedSecret] = {}
        self.changes = [0]  # bumped on any change of any watched Secret: a cheap "anything new?"
        self._janitor: threading.Thread | None = None  # ends idle watches when no request comes
        self._closed = threading.Event()

    def acquire(self, namespace: str, name: str) -> WatchedSecret:
        if name in self.refused:
            raise Unreadable(f"Secret {namespace}/{name} is the listener's own: refused")
        with self._lock:
            self._expire()
            secret = self._secrets.get((namespace, name))
            if secret is None or secret.stop.is_set():
                secret = WatchedSecret(namespace, name, changes=self.changes)
                self._secrets[(namespace, name)] = secret
                self._start(secret)
                if self._janitor is None:
                    self._janitor = threading.Thread(target=self._sweep, name="secret-watch-janitor", daemon=True)
                    self._janitor.start()
            secret.users += 1
            return secret

    def release(self, secret: WatchedSecret) -> None:
        with self._lock:
            secret.users -= 1
            if secret.users <= 0:
                secret.idle_since = time.monotonic()
            self._expire()

    def _sweep(self) -> None:
        while not self._closed.wait(LINGER / 2):
            with self._lock:
                self._expire()
                if not self._secrets:
                    self._janitor = None
                    return

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for secret in self._secrets.values():
                self._stop(secret)
            self._secrets.clear()

    def _expire(self) -> None:
        # Called with self._lock held.
        now = time.monotonic()
        for key, secret in list(self._secrets.items()):
            if secret.users <= 0 and now - secret.idle_since >= LINGER:
                self._stop(secret)
                del self._secrets[key]

    @staticmethod
    def _stop(secret: WatchedSecret) -> None:
        secret.stop.set()
        if secret.listwatch is not None:
            secret.listwatch.interrupt()

    def _start(self, secret: WatchedSecret) -> None:
        def broke() -> None:
            with secret.cond:
                if not secret.read:
                    secret._set_problem("the Kubernetes API failed; retrying", retrying=True)

        secret.listwatch = ListWatch(
            self.kube,
            SECRETS,
            secret.namespace,
            fields=f"metadata.name={secret.name}",
            stop=secret.stop,
            on_break=broke,
            what=f"Secret {secret.namespace}/{secret.name}",
        )
        name = f"watch-secret-{secret.name}"
        threading.Thread(target=self._run, args=(secret,), name=name, daemon=True).start()

    def _run(self, secret: WatchedSecret) -> None:
        assert secret.listwatch is not None
        try:
            for update in secret.listwatch.updates():
                if isinstance(update, Listed):
                    secret._update(update.items[0] if update.items else None)
                elif isinstance(update, Changed):
                    secret._update(None if update.type == "DELETED" else update.obj)
        except KubeError as err:
            log.warning("cannot watch Secret %s/%s: %s %s", secret.namespace, secret.name, err.status, err.reason)
            with secret.cond:
                secret._set_problem(f"{err.status}: {err.reason}", retrying=False)
        except Exception:
            log.exception("watch of Secret %s/%s failed", secret.namespace, secret.name)
            with secret.cond:
                secret._set_problem("the watch failed", retrying=False)
        finally:
            secret.stop.set()
