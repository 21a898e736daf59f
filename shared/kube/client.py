"""Kubernetes API access: raw JSON reads, watches and pod log streams.

Built on the official client's configuration, auth and connection pool, but objects stay plain
dicts: the run model reads a handful of fields, and deserialising full V1Pod models on every
watch event would cost milliseconds each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shared.config import Settings
from shared.kube.errors import (
    Forbidden,
    Gone,
    KubeConfigError,
    KubeError,
    NotFound,
    Unreachable,
    error_from,
)
from shared.kube.reads import Reads
from shared.metrics import kube_request

log = logging.getLogger(__name__)

# The errors are part of this adapter's surface: callers catch them from here or from `errors`.
__all__ = [
    "PIPELINERUNS",
    "PODS",
    "SECRETS",
    "TASKRUNS",
    "Forbidden",
    "Gone",
    "Kube",
    "KubeConfigError",
    "KubeError",
    "NotFound",
    "Resource",
    "Unreachable",
    "WatchStream",
    "interrupt",
    "load_api_client",
]

TEKTON_GROUP = "tekton.dev"
TEKTON_VERSION = "v1"

# Read timeout of plain GET/LIST calls; watches and log follows set their own.
REQUEST_TIMEOUT = (5.0, 30.0)


@dataclass(frozen=True)
class Resource:
    """A namespaced collection: `/api/v1/namespaces/{ns}/pods` or a Tekton CRD's."""

    prefix: str
    plural: str

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        path = f"{self.prefix}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if sub is not None:
            path += f"/{sub}"
        return path


PIPELINERUNS = Resource(f"/apis/{TEKTON_GROUP}/{TEKTON_VERSION}", "pipelineruns")
TASKRUNS = Resource(f"/apis/{TEKTON_GROUP}/{TEKTON_VERSION}", "taskruns")
PODS = Resource("/api/v1", "pods")
SECRETS = Resource("/api/v1", "secrets")


def load_api_client(settings: Settings) -> client.ApiClient:
    """An ApiClient from `KUBECONFIG` if set, else the in-cluster ServiceAccount."""
    configuration = client.Configuration()
    if settings.kubeconfig:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # Every open log stream and watch holds a connection; a small pool would make urllib3
    # open and discard connections under load.
    configuration.connection_pool_maxsize = settings.kube_connections
    configuration.retries = False
    return client.ApiClient(configuration)


class Kube:
    """The few Kubernetes reads the listener makes, returning plain dicts."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._reads = Reads(api_client)

    # -- plumbing ---------------------------------------------------------------------------------
    def _open(
        self,
        path: str,
        query: dict[str, Any],
        timeout: Any,
        method: str = "GET",
        body: Any = None,
        content_type: str = "",
    ) -> urllib3.HTTPResponse:
        with kube_request(method, path, query) as measured:  # verb, outcome, latency (shared/metrics)
            raw = self._request(path, query, timeout, method, body, content_type)
            measured["outcome"] = "ok"
        return raw

    def _request(
        self, path: str, query: dict[str, Any], timeout: Any, method: str, body: Any, content_type: str
    ) -> urllib3.HTTPResponse:
        params = [(k, v) for k, v in query.items() if v is not None]
        try:
            if method == "GET":
                raw = self._reads.get(path, params, timeout)
            else:
                raw = self._write(method, path, params, body, content_type, timeout)
        except ApiException as err:  # raised for transport errors (status 0)
            raise Unreachable(str(err.reason)) from err
        except urllib3.exceptions.SSLError as err:  # the detail the client's path gives it
            raise Unreachable(f"{type(err).__name__}\n{err}") from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise Unreachable(type(err).__name__) from err
        if not 200 <= raw.status <= 299:
            body = raw.data
            raw.release_conn()
            raise error_from(raw.status, body)
        return raw

    def _write(
        self, method: str, path: str, params: list[tuple[str, Any]], body: Any, content_type: str, timeout: Any
    ) -> urllib3.HTTPResponse:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self._api.call_api(*request, _request_timeout=timeout).response

    def get(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        return _json(self._open(path, query or {}, REQUEST_TIMEOUT))

    def send(self, method: str, path: str, body: Any, content_type: str = "application/json") -> dict[str, Any]:
        """One write (POST, PUT, PATCH with `content_type`); the answer's JSON. The few writers
        (notify's delivery record and Lease, TokenReviews) have their own RBAC rules."""
        return _json(self._open(path, {}, REQUEST_TIMEOUT, method, body, content_type))

    # -- reads ------------------------------------------------------------------------------------
    def get_object(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        return self.get(resource.path(namespace, name))

    def list_objects(
        self,
        resource: Resource,
        namespace: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Items and the list's resourceVersion (the point a watch continues from)."""
        body = self.get(
            resource.path(namespace),
            {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit},
        )
        return body.get("items") or [], body.get("metadata", {}).get("resourceVersion", "")

    def open_watch(
        self,
        resource: Resource,
        namespace: str,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream:
        """An open watch; iterate it for (type, object) until the server ends it."""
        raw = self._open(
            resource.path(namespace),
            {
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "timeoutSeconds": timeout_seconds,
            },
            (5.0, timeout_seconds + 30.0),
        )
        return WatchStream(raw)

    def pod_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        follow: bool = True,
        timestamps: bool = True,
        since_time: str | None = None,
        read_timeout: float = 300.0,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> urllib3.HTTPResponse:
        """An open `pods/log` response; iterate `.stream()` for chunks as they arrive."""
        return self._open(
            PODS.path(namespace, pod, "log"),
            {
                "container": container,
                "follow": "true" if follow else None,
                "timestamps": "true" if timestamps else None,
                "sinceTime": since_time,
                "tailLines": str(tail_lines) if tail_lines is not None else None,
                "limitBytes": str(limit_bytes) if limit_bytes is not None else None,
            },
            (5.0, read_timeout),
        )


class WatchStream:
    """Events of one watch request; raises `Gone` (410) and other `KubeError`s in-band."""

    def __init__(self, response: urllib3.HTTPResponse) -> None:
        self.response = response

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for line in _lines(self.response):
            event = json.loads(line)
            kind, obj = event.get("type", ""), event.get("object") or {}
            if kind == "ERROR":
                raise error_from(int(obj.get("code") or 500), json.dumps(obj).encode())
            yield kind, obj

    def close(self) -> None:
        # Closed before it is released: a half-read connection never goes back to the pool.
        self.response.close()
        self.response.release_conn()


def interrupt(response: Any) -> None:
    """Ends a streaming response from another thread, also while the API is silent: the socket is
    shut down, so a read blocked on it returns at once."""
    try:
        response.shutdown()
    except Exception:  # noqa: S110 - already closed or released: nothing left to interrupt
        pass


def _json(raw: urllib3.HTTPResponse) -> dict[str, Any]:
    """The whole answer's JSON; its connection goes back to the pool."""
    try:
        return json.loads(raw.data)
    finally:
        raw.release_conn()


def _lines(raw: urllib3.HTTPResponse) -> Iterator[bytes]:
    buf = b""
    for chunk in raw.stream(64 * 1024, decode_content=True):
        buf += chunk
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line, buf = buf[:end], buf[end + 1 :]
            if line.strip():
                yield line
    if buf.strip():
        yield buf
