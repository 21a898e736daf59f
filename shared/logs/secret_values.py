"""Which Secret values a run's steps can see, and the masker that hides them in streamed logs.

`SecretMaskers` (one per process) answers, for a pod, a `PodSecrets`: the values of the Secrets
the pod references (`secret_refs`), each kept current by a watch (`secret_watch`), expanded into
the forms a step may print them in (`secret_forms`). Its streams switch to a new masker as soon as
a Secret changes, so a rotated value is masked from the next chunk on.

What happens when the values cannot be read (RBAC refuses Secrets, a referenced Secret is
missing, the API fails, or a pod references the listener's own Secret) is the `MASKING` setting:
`required` (the default) fails closed with `Unreadable` (`/logs` answers 503, a later attempt's
lines are withheld with a notice); `optional` masks what could be read and logs what could not;
`off` masks nothing and reads no Secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from shared.kube.client import PODS, TASKRUNS, Kube
from shared.logs.masking import MaskingStream, SecretMasker
from shared.logs.secret_forms import forms
from shared.logs.secret_watch import READ_TIMEOUT, SecretWatches, Unreadable, WatchedSecret
from shared.runs.model import PIPELINE_RUN_LABEL, Obj, name_of, owned_children, uid_of
from shared.runs.watch import RunWatch

log = logging.getLogger(__name__)

__all__ = ["PodSecrets", "SecretMaskers", "Unreadable", "secret_refs"]

MODES = ("required", "optional", "off")
CACHED_MASKERS = 16  # compiled maskers kept for reuse: followers of one run share them

# Secret name -> keys the pod uses (None: every key).
Refs = dict[str, set[str] | None]


def secret_refs(pod: Obj) -> Refs:
    """Secrets a pod's containers read: env `secretKeyRef`, `envFrom.secretRef`, secret and
    projected volumes (Tekton workspaces backed by Secrets become such volumes)."""
    refs: Refs = {}

    def use(name: Any, key: Any = None) -> None:
        if not isinstance(name, str) or not name:
            return
        if key is None:
            refs[name] = None
        elif refs.get(name, set()) is not None:
            refs.setdefault(name, set()).add(str(key))  # type: ignore[union-attr]

    spec = pod.get("spec") or {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef")) or {}
            use(ref.get("name"), ref.get("key"))
        for source in container.get("envFrom") or []:
            use(((source.get("secretRef")) or {}).get("name"))
    for volume in spec.get("volumes") or []:
        use(((volume.get("secret")) or {}).get("secretName"))
        for source in ((volume.get("projected")) or {}).get("sources") or []:
            use(((source.get("secret")) or {}).get("name"))
    return refs


class SecretMaskers:
    """Builds a `PodSecrets` per pod from the Secrets it references; see the module docstring."""

    def __init__(self, kube: Kube, mode: str = "required", refused: frozenset[str] = frozenset()) -> None:
        if mode not in MODES:
            raise ValueError(f"masking mode must be one of {MODES}")
        self.kube = kube
        self.mode = mode
        self.watches = SecretWatches(kube, refused)
        self._lock = threading.Lock()
        self._maskers: OrderedDict[tuple[Any, ...], SecretMasker] = OrderedDict()

    def for_pod(self, namespace: str, pod: Obj, timeout: float = READ_TIMEOUT) -> PodSecrets | None:
        """The pod's Secret values (None: nothing to mask). Raises `Unreadable` in `required` mode
        when they cannot be read; the caller closes the result."""
        if self.mode == "off":
            return None
        refs = secret_refs(pod)
        if not refs:
            return None
        held: list[tuple[WatchedSecret, frozenset[str] | None]] = []
        started = time.monotonic()
        try:
            # Every watch starts before any is waited for: their first LISTs overlap, and the
            # whole pod waits `timeout` at most, not `timeout` per Secret.
            for name, keys in sorted(refs.items()):
                try:
                    secret = self.watches.acquire(namespace, name)
                except Unreadable as err:
                    self._unreadable(err)
                    continue
                held.append((secret, None if keys is None else frozenset(keys)))
            for secret, _ in held:
                try:
                    secret.wait_read(timeout, started)
                except Unreadable as err:
                    self._unreadable(err)
        except BaseException:
            for secret, _ in held:
                self.watches.release(secret)
            raise
        return PodSecrets(self, held)

    def check_run(self, pipelinerun: Obj, watch: RunWatch | None = None) -> None:
        """Raises `Unreadable` if the values of a Secret that one of the run's own pods references
        cannot be read (`required` mode): for answering 503 before a stream starts. `watch`: the
        run's shared watch, if a follower holds one (`RunWatchRegistry.peek`)."""
        if self.mode != "required":
            return
        namespace = pipelinerun["metadata"]["namespace"]
        for pod in self._own_pods(pipelinerun, watch).values():
            secrets = self.for_pod(namespace, pod)
            if secrets is not None:
                secrets.close()

    def _own_pods(self, pipelinerun: Obj, watch: RunWatch | None) -> dict[str, Obj]:
        """The pods the run owns (a pod that merely carries its label cannot hold its logs
        hostage): from its shared watch when that has them for this run, else listed."""
        if watch is not None and not watch.stopped and not watch.reconnecting():
            with watch.cond:
                if (
                    watch.error is None
                    and {"taskruns", "pods"} <= watch.synced
                    and uid_of(watch.pipelinerun) == uid_of(pipelinerun)
                ):
                    return watch.pods
        namespace, selector = pipelinerun["metadata"]["namespace"], f"{PIPELINE_RUN_LABEL}={name_of(pipelinerun)}"
        taskruns, _ = self.kube.list_objects(TASKRUNS, namespace, selector)
        pods, _ = self.kube.list_objects(PODS, namespace, selector)
        _, own = owned_children(pipelinerun, {name_of(t): t for t in taskruns}, {name_of(p): p for p in pods})
        return own

    def _unreadable(self, err: Unreadable) -> None:
        if self.mode == "required":
            raise err
        log.warning("masking without some values (MASKING=optional): %s", err)

    def masker(self, key: tuple[Any, ...], values: list[bytes]) -> SecretMasker:
        """The compiled masker for `values`, shared by every pod whose Secrets are at `key`."""
        with self._lock:
            masker = self._maskers.get(key)
            if masker is not None:
                self._maskers.move_to_end(key)
                return masker
        masker = SecretMasker([form for value in values for form in forms(value)])
        with self._lock:
            self._maskers[key] = masker
            while len(self._maskers) > CACHED_MASKERS:
                self._maskers.popitem(last=False)
        return masker

    def close(self) -> None:
        self.watches.close()


class PodSecrets:
    """One pod's Secret values, current as they are watched; `stream()` masks a log with them."""

    def __init__(self, maskers: SecretMaskers, secrets: list[tuple[WatchedSecret, frozenset[str] | None]]) -> None:
        self._maskers = maskers
        self._secrets = secrets
        self._key: tuple[Any, ...] | None = None
        self._changes = -1  # SecretWatches.changes when the masker was last checked
        self._masker: SecretMasker | None = None
        self._closed = False

    def masker(self) -> SecretMasker:
        """The masker for the values known now (cheap when nothing changed since the last call)."""
        changes = self._maskers.watches.changes[0]
        if changes == self._changes and self._masker is not None:
            return self._masker
        self._changes = changes
        key = tuple((id(secret), secret.version, keys) for secret, keys in self._secrets)
        if key != self._key or self._masker is None:
            values: list[bytes] = []
            for secret, keys in self._secrets:
                with secret.cond:
                    for name, seen in secret.values.items():
                        if keys is None or name in keys:
                            values.extend(seen)
            self._masker, self._key = self._maskers.masker(key, sorted(set(values))), key
        return self._masker

    def stream(self) -> LiveMaskingStream:
        return LiveMaskingStream(self)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for secret, _ in self._secrets:
                self._maskers.watches.release(secret)


class LiveMaskingStream:
    """A `MaskingStream` that takes up a new masker when a Secret changes, keeping what it holds."""

    def __init__(self, secrets: PodSecrets) -> None:
        self._secrets = secrets
        self._masker = secrets.masker()
        self._stream: MaskingStream[bytes] = self._masker.stream()

    @property
    def held(self) -> int:
        return self._stream.held

    def feed(self, chunk: bytes) -> bytes:
        masker = self._secrets.masker()
        if masker is not self._masker:
            self._masker, self._stream = masker, self._stream.moved_to(masker)
        return self._stream.feed(chunk)

    def flush(self) -> bytes:
        return self._stream.flush()
