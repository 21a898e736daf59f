"""The last lines of each failed step, for `/status`'s failure digest (and a resumed stream's):
`pods/log?tailLines=N`, masked like the stream. A pod that is gone or a log that cannot be read
leaves the list empty."""

from __future__ import annotations

from typing import Any

from shared.kube.client import PODS, Kube
from shared.kube.errors import KubeError
from shared.logs.masking import SecretMasker
from shared.logs.secret_values import SecretMaskers, Unreadable
from shared.runs.model import STEP_PREFIX, Obj, name_of

MAX_BYTES = 256 * 1024  # of one step's tail: a few very long lines must not fill the answer
READ_TIMEOUT = 10.0


def with_last_lines(
    kube: Kube, maskers: SecretMaskers | None, namespace: str, digest: dict[str, Any], lines: int
) -> dict[str, Any]:
    if lines <= 0:
        return digest
    tasks = []
    for task in digest.get("failedTasks") or []:
        steps = task.get("steps") or []
        pod = _pod(kube, namespace, str(task.get("pod") or "")) if steps else None
        tasks.append({**task, "steps": _steps(kube, maskers, namespace, pod, steps, lines)})
    return {**digest, "failedTasks": tasks}


def step_tail(
    kube: Kube, maskers: SecretMaskers | None, namespace: str, pod_name: str, step: str, lines: int
) -> list[str]:
    """One step's last lines, for a stream's digest when the stream did not see them."""
    pod = _pod(kube, namespace, pod_name)
    return _steps(kube, maskers, namespace, pod, [{"step": step}], lines)[0]["lastLines"]


def _pod(kube: Kube, namespace: str, name: str) -> Obj | None:
    """The pod, or None if it has no name, is gone or cannot be read."""
    if not name:
        return None
    try:
        return kube.get_object(PODS, namespace, name)
    except KubeError:
        return None


def _steps(
    kube: Kube, maskers: SecretMaskers | None, namespace: str, pod: Obj | None, steps: list[dict], lines: int
) -> list[dict[str, Any]]:
    if pod is None:
        return [{**step, "lastLines": []} for step in steps]
    try:
        secrets = maskers.for_pod(namespace, pod) if maskers is not None else None
    except Unreadable:
        # MASKING=required and the values cannot be read: no lines rather than unmasked ones.
        return [{**step, "lastLines": []} for step in steps]
    try:
        masker = secrets.masker() if secrets is not None else None
        name = name_of(pod)
        return [{**step, "lastLines": _tail(kube, namespace, name, step["step"], lines, masker)} for step in steps]
    finally:
        if secrets is not None:
            secrets.close()


def _tail(kube: Kube, namespace: str, pod: str, step: str, lines: int, masker: SecretMasker | None) -> list[str]:
    try:
        response = kube.pod_log(
            namespace,
            pod,
            STEP_PREFIX + step,
            follow=False,
            timestamps=False,
            read_timeout=READ_TIMEOUT,
            tail_lines=lines,
        )
    except KubeError:
        return []
    try:
        data = response.read(MAX_BYTES)
    except Exception:  # a connection that breaks mid-read: the digest goes out without these lines
        return []
    finally:
        response.release_conn()
    if masker is not None:
        data = masker.mask(data)
    rows = data.split(b"\n")
    if rows and rows[-1] == b"":
        rows.pop()
    return [row.decode("utf-8", "replace") for row in rows[-lines:]]
