"""The retry policy and the resumable list-watch every watcher of Kubernetes objects uses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.kube.client import Kube, Resource, load_api_client
from shared.kube.errors import Forbidden, KubeError, NotFound, Unreachable
from shared.kube.listwatch import Changed, Listed, ListWatch
from shared.kube.retry import MAX_BACKOFF, Backoff, backoff_delay, retrying
from tests.sandbox.cluster import Cluster

CONFIGMAPS = Resource("/api/v1", "configmaps")


def test_backoff_doubles_up_to_the_cap_and_starts_again_after_progress() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, MAX_BACKOFF, MAX_BACKOFF]
    assert [backoff_delay(n, 0.5, 2.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    backoff = Backoff(first=0.01, cap=0.04)
    assert [backoff.next_delay() for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    backoff.reset()
    assert backoff.next_delay() == 0.01


def test_backoff_wait_ends_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert Backoff(stop, first=30.0).wait() is True
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("error", "attempts", "calls", "succeeds"),
    [
        (Unreachable("connection refused"), 3, 3, True),  # fails twice, then answers
        (KubeError(503, "request failed"), 2, 2, False),  # still failing when attempts run out
        (Forbidden(403, "forbidden"), 5, 1, False),  # a refusal is not retried
    ],
)
def test_retrying_repeats_transient_failures_only(error: KubeError, attempts: int, calls: int, succeeds: bool) -> None:
    made: list[int] = []

    def call() -> str:
        made.append(1)
        if len(made) < 3:
            raise error
        return "ok"

    if succeeds:
        assert retrying(call, attempts=attempts) == "ok"
    else:
        with pytest.raises(type(error)):
            retrying(call, attempts=attempts)
    assert len(made) == calls


def _admin_kube(cluster: Cluster, tmp_path: Path) -> Kube:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", cluster.admin)
    return Kube(load_api_client(Settings(kubeconfig=str(kubeconfig))))


def _configmap(cluster: Cluster, namespace: str, name: str, value: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "lw"}},
            "data": {"v": value},
        }
    )


def test_listwatch_lists_then_follows_changes(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    _configmap(cluster, namespace, "first", "1")
    listwatch = ListWatch(_admin_kube(cluster, tmp_path), CONFIGMAPS, namespace, labels="app=lw")
    updates = listwatch.updates(deadline=time.monotonic() + 30)
    listed = next(updates)
    assert isinstance(listed, Listed)
    assert [item["metadata"]["name"] for item in listed.items] == ["first"]
    _configmap(cluster, namespace, "second", "2")
    changed = next(updates)
    assert isinstance(changed, Changed)
    assert (changed.type, changed.obj["metadata"]["name"]) == ("ADDED", "second")
    updates.close()


def test_listwatch_stops_at_once_on_a_silent_watch(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    stop = threading.Event()
    listwatch = ListWatch(_admin_kube(cluster, tmp_path), CONFIGMAPS, namespace, labels="app=none", stop=stop)
    seen: list[object] = []
    listed = threading.Event()

    def consume() -> None:
        for update in listwatch.updates():
            seen.append(update)
            listed.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert listed.wait(10)
    opened_by = time.monotonic() + 10
    while not listwatch.watching and time.monotonic() < opened_by:  # nothing will arrive on it
        threading.Event().wait(0.01)
    assert listwatch.watching
    stopped_at = time.monotonic()
    stop.set()
    listwatch.interrupt()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 1.0
    assert len(seen) == 1 and isinstance(seen[0], Listed) and seen[0].items == []


def test_listwatch_refusal_before_any_list_is_raised(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "nobody", cluster.nobody)
    kube = Kube(load_api_client(Settings(kubeconfig=str(kubeconfig))))
    with pytest.raises(Forbidden):
        next(ListWatch(kube, CONFIGMAPS, namespace).updates())


def test_listwatch_since_a_callers_list_watches_from_its_version(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """A caller that has listed already: no second list, and what changed between its list and
    the watch is an event, not lost."""
    kube = _admin_kube(cluster, tmp_path)
    _configmap(cluster, namespace, "before", "1")
    items, version = kube.list_objects(CONFIGMAPS, namespace, "app=lw")
    assert [item["metadata"]["name"] for item in items] == ["before"]
    _configmap(cluster, namespace, "between", "2")
    updates = ListWatch(kube, CONFIGMAPS, namespace, labels="app=lw").updates(time.monotonic() + 30, since=version)
    first = next(updates)
    assert isinstance(first, Changed) and (first.type, first.obj["metadata"]["name"]) == ("ADDED", "between")
    updates.close()


def test_listwatch_since_a_version_too_old_lists_again(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """A restarted apiserver's watch cache begins at the revision it started at: a version before
    that is answered 410, and the list-watch lists again instead of losing what it missed."""
    _configmap(cluster, namespace, "present", "1")
    cluster.restart_apiserver()
    updates = ListWatch(_admin_kube(cluster, tmp_path), CONFIGMAPS, namespace, labels="app=lw").updates(
        time.monotonic() + 30, since="1"
    )
    first = next(updates)  # the apiserver answers 410 for a version it no longer has
    assert isinstance(first, Listed) and [item["metadata"]["name"] for item in first.items] == ["present"]
    updates.close()


def test_a_run_lookup_rides_over_a_transient_failure_of_its_first_get() -> None:
    """A kube-apiserver under load answers a GET with 500 now and then (seen in a CI run: `/logs`
    of a run that existed answered 502). The lookup's GET is retried like any break; a 404 is
    not a break, and a lasting 5xx is still reported."""
    from shared.runs.lookup import find_pipelinerun

    class Flaky:
        def __init__(self, failures: list[KubeError]) -> None:
            self.failures = failures
            self.calls = 0

        def get_object(self, resource: Resource, namespace: str, name: str) -> dict:
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)
            return {"metadata": {"namespace": namespace, "name": name}}

    flaky = Flaky([KubeError(500, "request failed")])
    assert find_pipelinerun(flaky, "ns", "run", 0)["metadata"]["name"] == "run"  # type: ignore[arg-type]
    assert flaky.calls == 2
    lasting = Flaky([KubeError(500, "request failed")] * 3)
    with pytest.raises(KubeError):
        find_pipelinerun(lasting, "ns", "run", 0)  # type: ignore[arg-type]
    assert lasting.calls == 3
    gone = Flaky([NotFound(404, "not found")])
    with pytest.raises(NotFound):
        find_pipelinerun(gone, "ns", "run", 0)  # type: ignore[arg-type]
    assert gone.calls == 1
