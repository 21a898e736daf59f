"""Finding a PipelineRun, waiting for one that does not exist yet, or for one to finish.

Both waits are watches with a field selector on the run's name: one LIST and one WATCH, no polling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.kube.client import PIPELINERUNS, Forbidden, Gone, Kube, KubeError, NotFound
from shared.runs.model import Obj, is_done

# A waiting watch is renewed this often, so a departed client or a shutdown is noticed.
WATCH_SLICE = 30
MAX_BACKOFF = 5.0


def find_pipelinerun(
    kube: Kube, namespace: str, name: str, wait_seconds: float, stop: threading.Event | None = None
) -> Obj:
    """The run, waiting up to `wait_seconds` for it to be created; raises NotFound after that."""
    try:
        return kube.get_object(PIPELINERUNS, namespace, name)
    except NotFound:
        if wait_seconds <= 0:
            raise
    found = _watch_until(kube, namespace, name, wait_seconds, lambda obj: True, stop)
    if found is None:
        raise NotFound(404, "not found", f"pipelineruns.tekton.dev {name!r} not found after {wait_seconds:g}s")
    return found


def wait_until_done(
    kube: Kube,
    pipelinerun: Obj,
    wait_seconds: float,
    stop: threading.Event | None = None,
    client_gone: Callable[[], bool] | None = None,
) -> Obj:
    """The run once it has finished, or as it is when `wait_seconds` have passed."""
    if is_done(pipelinerun) or wait_seconds <= 0:
        return pipelinerun
    meta = pipelinerun["metadata"]
    done = _watch_until(kube, meta["namespace"], meta["name"], wait_seconds, is_done, stop, client_gone)
    if done is not None:
        return done
    return kube.get_object(PIPELINERUNS, meta["namespace"], meta["name"])


def _watch_until(
    kube: Kube,
    namespace: str,
    name: str,
    seconds: float,
    predicate: Callable[[Obj], bool],
    stop: threading.Event | None,
    client_gone: Callable[[], bool] | None = None,
) -> Obj | None:
    deadline = time.monotonic() + seconds
    selector = f"metadata.name={name}"
    version = ""
    backoff = 0.2
    while (remaining := deadline - time.monotonic()) > 0:
        if (stop is not None and stop.is_set()) or (client_gone is not None and client_gone()):
            return None
        try:
            if not version:
                items, version = kube.list_objects(PIPELINERUNS, namespace, field_selector=selector)
                for item in items:
                    if predicate(item):
                        return item
            stream = kube.open_watch(
                PIPELINERUNS,
                namespace,
                version,
                field_selector=selector,
                timeout_seconds=max(1, min(WATCH_SLICE, int(remaining + 0.999))),
            )
        except (NotFound, Forbidden):
            raise
        except KubeError:
            # Unreachable or 5xx: an apiserver restarting; wait within the caller's bound.
            if _pause(backoff, deadline, stop):
                return None
            backoff = min(backoff * 2, MAX_BACKOFF)
            continue
        try:
            for event, obj in stream:
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event in ("ADDED", "MODIFIED") and predicate(obj):
                    return obj
                if time.monotonic() >= deadline:
                    break
            backoff = 0.2
        except Gone:
            version = ""
        except (NotFound, Forbidden):
            raise
        except Exception:  # a cut watch: urllib3/OSError types or an in-band 5xx
            if _pause(backoff, deadline, stop):
                return None
            backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            stream.response.close()
            stream.close()
    return None


def _pause(seconds: float, deadline: float, stop: threading.Event | None) -> bool:
    """Sleeps (bounded by `deadline`); True if the wait should end now."""
    seconds = min(seconds, max(0.0, deadline - time.monotonic()))
    if stop is not None:
        return stop.wait(seconds)
    time.sleep(seconds)
    return False
