"""Collecting the Secret values a pod can see, with and without the extra RBAC."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.config import Settings
from shared.kube.client import Kube, load_api_client
from shared.logs.secret_values import SecretMaskers, Unreadable, secret_refs
from shared.logs.secret_watch import READ_TIMEOUT
from shared.runs.watch import RunWatch
from tests.apiserver_proxy import ApiserverProxy
from tests.sandbox.cluster import Cluster
from tests.sandbox.simulator import Simulator
from tests.support import Listener, env_ref, grant_listener, grant_secret_reads, put_secret, secret_scenario

POD = {
    "spec": {
        "initContainers": [{"name": "prepare", "env": [env_ref("A", "s1", "a")]}],
        "containers": [
            {
                "name": "step-x",
                "env": [
                    env_ref("B", "s1", "b"),
                    {"name": "C", "value": "plain"},
                ],
                "envFrom": [{"secretRef": {"name": "s2"}}, {"configMapRef": {"name": "cm"}}],
            },
        ],
        "volumes": [
            {"name": "ws", "secret": {"secretName": "s3"}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "s4"}}, {"configMap": {"name": "cm"}}]}},
            {"name": "e", "emptyDir": {}},
        ],
    }
}


def test_secret_refs_cover_env_envfrom_and_volumes() -> None:
    assert secret_refs(POD) == {"s1": {"a", "b"}, "s2": None, "s3": None, "s4": None}


def test_whole_secret_reference_wins_over_single_keys() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [env_ref("X", "s", "k")],
                    "envFrom": [{"secretRef": {"name": "s"}}],
                }
            ]
        }
    }
    assert secret_refs(pod) == {"s": None}


def _kube(cluster: Cluster, tmp_path: Path) -> Kube:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", cluster.listener)
    return Kube(load_api_client(Settings(kubeconfig=str(kubeconfig))))


def test_masking_needs_the_extra_rbac(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    grant_listener(cluster, namespace)
    put_secret(
        cluster, namespace, "s1", {"a": b"token-aaaa-1111", "b": b"token-bbbb-2222", "unused": b"not-referenced"}
    )
    put_secret(cluster, namespace, "s2", {"pem": b"-----BEGIN KEY-----\nMIIEsecretline\n-----END KEY-----"})
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "step-x",
                    "env": [env_ref("B", "s1", "b")],
                    "envFrom": [{"secretRef": {"name": "s2"}}],
                }
            ]
        }
    }
    # The shipped Role cannot read Secrets: masking required (the default) refuses to go on;
    # only an explicit MASKING=optional goes on without the values.
    maskers = [SecretMaskers(_kube(cluster, tmp_path), mode) for mode in ("required", "optional", "required")]
    try:
        with pytest.raises(Unreadable, match="403"):
            maskers[0].for_pod(namespace, pod)
        optional = maskers[1].for_pod(namespace, pod)
        assert optional is not None and not optional.masker()

        grant_secret_reads(cluster, namespace)
        secrets = maskers[2].for_pod(namespace, pod)
        assert secrets is not None
        masker = secrets.masker()
        assert masker.mask(b"auth token-bbbb-2222 ok") == b"auth *** ok"
        assert masker.mask(b"key MIIEsecretline") == b"key ***"
        # Only what the pod references is masked.
        assert masker.mask(b"token-aaaa-1111 not-referenced") == b"token-aaaa-1111 not-referenced"
    finally:
        for each in maskers:
            each.close()


def test_a_pods_secret_watches_start_together(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """Every Secret's watch is started before any is waited for: the proxy holds each Secret's
    first LIST until all of them have asked. Started one after another, the first wait would end
    unread (Unreadable) long before the others asked."""
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    names = [f"s{k}" for k in range(4)]
    for k, name in enumerate(names):
        put_secret(cluster, namespace, name, {"v": f"value-{k}-xxxx".encode()})
    pod = {"spec": {"containers": [{"name": "step-x", "envFrom": [{"secretRef": {"name": n}} for n in names]}]}}
    together = threading.Barrier(len(names), timeout=4 * READ_TIMEOUT)
    asked: set[str] = set()
    lock = threading.Lock()

    def hold_first_lists(path: str) -> None:
        url = urlsplit(path)
        query = parse_qs(url.query)
        if not url.path.endswith("/secrets") or "watch" in query:
            return
        with lock:
            first = query.get("fieldSelector", [""])[0] not in asked
            asked.add(query.get("fieldSelector", [""])[0])
        if first:
            together.wait()  # BrokenBarrierError (the others never came) fails the LIST, and the test

    with ApiserverProxy(cluster) as proxy:
        proxy.before = hold_first_lists
        kubeconfig = proxy.kubeconfig(tmp_path / "proxied", cluster.listener)
        maskers = SecretMaskers(Kube(load_api_client(Settings(kubeconfig=str(kubeconfig)))))
        try:
            secrets = maskers.for_pod(namespace, pod, timeout=READ_TIMEOUT)
            assert secrets is not None
            assert secrets.masker().mask(b"value-0-xxxx value-3-xxxx") == b"*** ***"
            assert len(asked) == len(names)
            secrets.close()
        finally:
            maskers.close()


def test_secret_values_are_masked_in_streamed_logs(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    grant_listener(cluster, namespace)
    put_secret(cluster, namespace, "deploy-token", {"token": b"glpat-Zz9Yy8Xx7Ww6"})
    scenario = secret_scenario([b"using token glpat-Zz9Yy8Xx7Ww6 now", b"plain line"])
    run = sim.play(scenario, namespace).wait(60)
    with Listener(cluster, MASKING="optional") as plain:
        _, _, body = plain.get(f"/logs/{namespace}/{run.name}")
        assert b"glpat-Zz9Yy8Xx7Ww6" in body  # no RBAC for Secrets, masking optional: unmasked
    grant_secret_reads(cluster, namespace)
    with Listener(cluster) as masking:
        _, _, body = masking.get(f"/logs/{namespace}/{run.name}")
        assert b"[deploy : push] using token *** now\n" in body
        assert b"glpat-Zz9Yy8Xx7Ww6" not in body and b"[deploy : push] plain line\n" in body


class _ListingKube:
    """Records the LISTs asked of it and answers each with nothing."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def list_objects(self, resource: object, namespace: str, selector: str | None = None) -> tuple[list, str]:
        self.listed.append(f"{resource} {namespace} {selector}")
        return [], "1"


def test_the_check_before_a_stream_reads_the_pods_of_the_followers_watch() -> None:
    """The fail-closed check takes a run's pods from the watch its followers share (no LIST per
    request); from a watch of another run of that name (another uid) it lists them."""
    run = {"metadata": {"namespace": "ns", "name": "r", "uid": "u-1"}}
    pod = {"spec": {"containers": [{"name": "step-x", "env": [env_ref("T", "own", "t")]}]}}
    kube = _ListingKube()
    maskers = SecretMaskers(kube, "required", refused=frozenset({"own"}))  # type: ignore[arg-type]
    watch = RunWatch(kube, "ns", "r", run)  # type: ignore[arg-type]
    watch.synced |= {"pipelinerun", "taskruns", "pods"}
    watch.pods = {"r-pod": pod}
    with pytest.raises(Unreadable, match="own"):
        maskers.check_run(run, watch)
    assert kube.listed == []
    watch.pipelinerun = {"metadata": {"namespace": "ns", "name": "r", "uid": "u-0"}}
    maskers.check_run(run, watch)  # listed: nothing owned, nothing to read
    assert len(kube.listed) == 2, kube.listed
