"""Finding a PipelineRun, waiting for one that does not exist yet, or for one to finish.

Both waits are list-watches with a field selector on the run's name, no polling: waiting for a run
to appear is one LIST and one WATCH, waiting for one in hand to finish a WATCH from its version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing

from shared.kube.client import PIPELINERUNS, TASKRUNS, Kube, NotFound
from shared.kube.listwatch import Listed, ListWatch, Update
from shared.kube.retry import retrying
from shared.runs.model import PIPELINE_RUN_LABEL, Obj, is_done, owned_by, uid_of

# A waiting watch is renewed this often; a departed client or a shutdown interrupts it sooner.
WATCH_SLICE = 30
# How often a wait checks whether its client is still there.
GONE_CHECK_SECONDS = 0.5


def find_pipelinerun(
    kube: Kube,
    namespace: str,
    name: str,
    wait_seconds: float,
    stop: threading.Event | None = None,
    client_gone: Callable[[], bool] | None = None,
) -> Obj:
    """The run, waiting up to `wait_seconds` for it to be created; raises NotFound after that (or
    once the client has gone: nobody is left to answer). A transient failure of the first GET (a
    5xx of an apiserver under load, a cut connection) is tried again twice, as any break is."""
    try:
        return retrying(lambda: kube.get_object(PIPELINERUNS, namespace, name), stop=stop)
    except NotFound:
        if wait_seconds <= 0:
            raise
    found = _watch_until(kube, namespace, name, wait_seconds, lambda obj: True, stop, client_gone)
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
    # Watched from the version in hand: no LIST for what the caller has just read.
    since = str(meta.get("resourceVersion") or "")
    done = _watch_until(kube, meta["namespace"], meta["name"], wait_seconds, is_done, stop, client_gone, since)
    if done is not None:
        return done
    return kube.get_object(PIPELINERUNS, meta["namespace"], meta["name"])


def taskruns_of(kube: Kube, pipelinerun: Obj) -> list[Obj]:
    """The run's TaskRuns: listed by the label Tekton puts on them (one LIST), kept only if the
    run owns them (a label is no proof: see `runs.model.owned_by`)."""
    meta = pipelinerun["metadata"]
    taskruns, _ = kube.list_objects(TASKRUNS, meta["namespace"], f"{PIPELINE_RUN_LABEL}={meta['name']}")
    return [tr for tr in taskruns if owned_by(tr, "PipelineRun", {uid_of(pipelinerun)})]


def waiting_updates(
    kube: Kube,
    namespace: str,
    what: str,
    seconds: float,
    stop: threading.Event | None,
    client_gone: Callable[[], bool] | None = None,
    labels: str | None = None,
    fields: str | None = None,
    since: str = "",
) -> Iterator[Update]:
    """PipelineRuns of `namespace` for a request that waits for one, for up to `seconds`: one LIST
    (none when the caller has listed already: `since`, its resourceVersion) and one WATCH,
    renewed every `WATCH_SLICE`. Refusals end the wait at once: a lookup has no
    earlier success that would make them transient. A watchdog ends it as soon as the client has
    gone or the process stops (see `_watchdog`)."""
    ended = threading.Event()  # this wait's own stop: set by the watchdog, never the shared `stop`
    listwatch = ListWatch(
        kube,
        PIPELINERUNS,
        namespace,
        labels=labels,
        fields=fields,
        stop=ended,
        refusal_grace=0.0,
        watch_seconds=WATCH_SLICE,
        what=what,
    )
    done = threading.Event()
    watchdog = threading.Thread(
        target=_watchdog, args=(listwatch, ended, done, stop, client_gone), name=f"wait {what}", daemon=True
    )
    watchdog.start()
    try:
        yield from listwatch.updates(time.monotonic() + seconds, since=since)
    finally:
        done.set()


def _watch_until(
    kube: Kube,
    namespace: str,
    name: str,
    seconds: float,
    predicate: Callable[[Obj], bool],
    stop: threading.Event | None,
    client_gone: Callable[[], bool] | None = None,
    since: str = "",
) -> Obj | None:
    what = f"PipelineRun {namespace}/{name}"
    fields = f"metadata.name={name}"
    updates = waiting_updates(kube, namespace, what, seconds, stop, client_gone, fields=fields, since=since)
    with closing(updates):
        for update in updates:
            if isinstance(update, Listed):
                found = [item for item in update.items if predicate(item)]
                if found:
                    return found[0]
            elif update.type in ("ADDED", "MODIFIED") and predicate(update.obj):
                return update.obj
    return None


def _watchdog(
    listwatch: ListWatch,
    ended: threading.Event,
    done: threading.Event,
    stop: threading.Event | None,
    client_gone: Callable[[], bool] | None,
) -> None:
    """Ends a wait whose client left or whose process stops: the watch blocks in a socket read
    that only another thread can cut, and until it is cut the request holds a worker thread and
    the client's socket sits in CLOSE_WAIT."""
    while not done.wait(GONE_CHECK_SECONDS):
        if (stop is not None and stop.is_set()) or (client_gone is not None and client_gone()):
            ended.set()
            listwatch.interrupt()
            return
