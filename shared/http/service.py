"""Process-wide objects every function shares: settings, credentials, the Kubernetes client.

Created on first use, so a function that never talks to Kubernetes (`/health`) never loads a
kubeconfig, and a cold start pays only for what its first request needs.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from shared.auth import Authenticator, StreamLimiter
from shared.config import Settings
from shared.http.shutdown import SHUTDOWN
from shared.kube.client import PIPELINERUNS, Kube, KubeConfigError, KubeError, load_api_client
from shared.logs.secret_values import SecretMaskers
from shared.runs.watch import RunWatchRegistry

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._authenticator: Authenticator | None = None
        self.stream_limiter = StreamLimiter.from_settings(settings.streams)
        # Set when the process is asked to stop: open streams end cleanly at a line boundary.
        self.shutdown = SHUTDOWN
        self._lock = threading.Lock()
        self._kube: Kube | None = None
        self._registry: RunWatchRegistry | None = None
        self._maskers: SecretMaskers | None = None
        self._readiness: tuple[float, str | None] = (0.0, "not checked yet")

    @property
    def authenticator(self) -> Authenticator:
        # Built on first use: `health` authenticates only a probe that brings credentials, so its
        # pods (given none) do not log at every start that credentials are missing.
        with self._lock:
            if self._authenticator is None:
                self._authenticator = Authenticator.from_settings(self.settings.auth)
            return self._authenticator

    @property
    def kube(self) -> Kube:
        with self._lock:
            if self._kube is None:
                try:
                    self._kube = Kube(load_api_client(self.settings))
                except Exception as err:  # missing/broken kubeconfig, no in-cluster token
                    log.error("cannot configure the Kubernetes client: %s", type(err).__name__)
                    raise KubeConfigError(type(err).__name__) from err
            return self._kube

    @property
    def maskers(self) -> SecretMaskers | None:
        """Secret masking as MASKING says (required, optional), None when it is off."""
        mode = self.settings.masking_mode
        if mode == "off":
            return None
        kube = self.kube
        with self._lock:
            if self._maskers is None:
                self._maskers = SecretMaskers(kube, mode, self.settings.own_secret_names)
            return self._maskers

    @property
    def registry(self) -> RunWatchRegistry:
        kube = self.kube
        with self._lock:
            if self._registry is None:
                self._registry = RunWatchRegistry(kube)
            return self._registry

    def kubernetes_problem(self) -> str | None:
        """None if the API answers and our account may list runs in NAMESPACE; cached briefly so
        frequent probes do not turn into API load."""
        checked_at, problem = self._readiness
        if time.monotonic() - checked_at < self.settings.readiness_cache_seconds:
            return problem
        try:
            self.kube.list_objects(PIPELINERUNS, self.settings.namespace, limit=1)
            problem = None
        except KubeError as err:
            problem = f"{err.reason}: {err.detail}" if err.detail else err.reason
        except Exception as err:  # a broken kubeconfig or missing in-cluster token
            problem = f"cannot configure the Kubernetes client: {type(err).__name__}"
        self._readiness = (time.monotonic(), problem)
        return problem


@functools.cache
def service() -> Service:
    return Service(Settings.from_env())
