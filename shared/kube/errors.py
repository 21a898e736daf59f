"""What a Kubernetes request can fail with; plain exceptions, so callers need not load the client."""

from __future__ import annotations

import json


class KubeError(Exception):
    """The Kubernetes API refused or failed a request; `reason` is safe to show to callers."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}: {detail}" if detail else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


class NotFound(KubeError):
    pass


class Gone(KubeError):
    """A watch's resourceVersion is too old (410): list again."""


class Forbidden(KubeError):
    pass


class KubeConfigError(KubeError):
    """No usable kubeconfig or in-cluster ServiceAccount token."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Kubernetes client not configured", detail)


class Unreachable(KubeError):
    def __init__(self, detail: str) -> None:
        super().__init__(0, "Kubernetes API unreachable", detail)


def error_from(status: int, body: bytes | None) -> KubeError:
    message = ""
    try:
        message = json.loads(body or b"{}").get("message", "")
    except (ValueError, AttributeError):
        message = (body or b"")[:300].decode("utf-8", "replace")
    if status == 404:
        return NotFound(status, "not found", message)
    if status == 410:
        return Gone(status, "resource version too old", message)
    if status in (401, 403):
        return Forbidden(status, "forbidden", message)
    return KubeError(status, "request failed", message)
