"""Which Secret values a run's steps can see, for masking them in streamed logs.

Masking is on only where the operator grants the extra RBAC (`get` on `secrets` in the pipelines'
namespace): without it the first read is refused, masking stays off for that namespace, and the
log says so once.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from functools import partial
from typing import Any

from shared.kube.client import SECRETS, Forbidden, Kube, KubeError, NotFound
from shared.kube.retry import retrying
from shared.logs.masking import SecretMasker
from shared.logs.secret_forms import forms
from shared.runs.model import Obj

log = logging.getLogger(__name__)

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
    """Builds a masker per pod from the Secrets it references; remembers refused namespaces."""

    def __init__(self, kube: Kube, enabled: bool = True) -> None:
        self.kube = kube
        self.enabled = enabled
        self._denied: set[str] = set()
        self._lock = threading.Lock()

    def for_pod(self, namespace: str, pod: Obj) -> SecretMasker | None:
        if not self.enabled or namespace in self._denied:
            return None
        values: list[bytes] = []
        for name, keys in secret_refs(pod).items():
            try:
                # A transient failure is retried briefly: a skipped Secret is a value left unmasked.
                secret = retrying(partial(self.kube.get_object, SECRETS, namespace, name))
            except Forbidden:
                with self._lock:
                    if namespace not in self._denied:
                        self._denied.add(namespace)
                        log.info("secret masking is off in namespace %s: no RBAC to read Secrets", namespace)
                return None
            except NotFound:
                continue
            except KubeError as err:
                log.warning("cannot read a Secret referenced by pod %s (%s); not masking it", namespace, err.reason)
                continue
            for key, encoded in (secret.get("data") or {}).items():
                if keys is None or key in keys:
                    try:
                        values.extend(forms(base64.b64decode(encoded)))
                    except (binascii.Error, ValueError):
                        continue
        masker = SecretMasker(values)
        return masker if masker else None
