"""Secret masking attacked over HTTP: a real apiserver, the simulator writing the steps' logs.

Each test is one way a step's secret used to reach a CI log: Secrets the listener may not read
(masking silently off), a Secret deleted after the pod started, an apiserver failing, a value
rotated during a live stream, the listener's own credentials, re-encoded values, values cut
across the pieces of a long line, and a certificate bundle big enough to make masking crawl.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from shared.logs.lines import MAX_LINE
from tests.apiserver_proxy import ApiserverProxy
from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import Scenario, Step, Task
from tests.sandbox.simulator import Simulator
from tests.support import Listener, env_ref, grant_listener, grant_secret_reads, put_secret, secret_scenario, wait_for

TOKEN = b"glpat-Attack3r-Z9y8X7w6"


def _run(sim: Simulator, namespace: str, lines: list[bytes], secret: str = "", key: str = "token") -> str:
    return sim.play(secret_scenario(lines, secret, key), namespace).wait(60).name


def _setup(cluster: Cluster, sim: Simulator, namespace: str, masking_role: bool = True) -> str:
    """The shipped Role (and the masking Role), the Secret `deploy-token`, a run that printed it."""
    grant_listener(cluster, namespace)
    if masking_role:
        grant_secret_reads(cluster, namespace)
    put_secret(cluster, namespace, "deploy-token", {"token": TOKEN})
    return _run(sim, namespace, [b"token " + TOKEN])


def _refused(listener: Listener, path: str, *why: str) -> None:
    status, headers, body = listener.get(path)
    assert status == 503, body[:300]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error.startswith("masking values could not be read"), error
    for word in why:
        assert word in error, error
    assert TOKEN not in body


def test_secrets_the_listener_may_not_read_fail_closed(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = _setup(cluster, sim, namespace, masking_role=False)  # the shipped Role: no Secrets
    with Listener(cluster) as listener:
        _refused(listener, f"/logs/{namespace}/{run}", "deploy-token", "403")


def test_a_secret_deleted_after_the_pod_started_fails_closed(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = _setup(cluster, sim, namespace)
    cluster.api("DELETE", f"/api/v1/namespaces/{namespace}/secrets/deploy-token")
    with Listener(cluster) as listener:
        _refused(listener, f"/logs/{namespace}/{run}", "deploy-token", "not found")


def test_an_apiserver_failing_on_secrets_fails_closed(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = _setup(cluster, sim, namespace)
    with ApiserverProxy(cluster) as proxy:
        proxy.failing = lambda path: "/secrets" in path
        kubeconfig = proxy.kubeconfig(cluster.workdir / f"proxied-{uuid.uuid4().hex[:8]}", cluster.listener)
        with Listener(cluster, KUBECONFIG=str(kubeconfig)) as listener:
            _refused(listener, f"/logs/{namespace}/{run}", "deploy-token")
            assert proxy.failed, "the listener never asked for the Secret"
            proxy.failing = lambda path: False  # the apiserver recovers: masked logs again
            status, _, body = listener.get(f"/logs/{namespace}/{run}")
            assert status == 200 and b"[deploy : push] token ***\n" in body and TOKEN not in body


def test_failing_open_is_an_explicit_setting(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    run = _setup(cluster, sim, namespace, masking_role=False)
    with Listener(cluster, MASKING="optional") as listener:
        status, _, body = listener.get(f"/logs/{namespace}/{run}")
    assert status == 200 and TOKEN in body


def test_the_listeners_own_secrets_are_never_read(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    put_secret(cluster, namespace, "tekton-pipeline-listener-credentials", {"password": TOKEN})
    own = {"app.kubernetes.io/name": "tekton-pipeline-listener"}
    put_secret(cluster, namespace, "listener-oidc", {"token": TOKEN}, own)
    by_name = _run(sim, namespace, [b"pw " + TOKEN], "tekton-pipeline-listener-credentials", "password")
    by_label = _run(sim, namespace, [b"pw " + TOKEN], "listener-oidc")
    with Listener(cluster) as listener:
        _refused(listener, f"/logs/{namespace}/{by_name}", "tekton-pipeline-listener-credentials", "listener's own")
        _refused(listener, f"/logs/{namespace}/{by_label}", "listener-oidc", "listener's own")


def test_a_role_naming_the_secrets_masks_them_and_the_apiserver_refuses_the_rest(
    cluster: Cluster, sim: Simulator, namespace: str
) -> None:
    """deploy/secret-masking-rbac-named.yaml, nothing else granting Secrets: the apiserver admits the
    listener's list and watch of a listed Secret (by field selector) and refuses every other Secret
    of the namespace, the listener's own credentials among them; the wide Role would not, unless
    they live in another namespace."""
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace, names=["deploy-token"])
    own = "tekton-pipeline-listener-credentials"
    put_secret(cluster, namespace, "deploy-token", {"token": TOKEN})
    put_secret(cluster, namespace, own, {"password": b"listener-Pa55word-own"})
    put_secret(cluster, namespace, "other-team-token", {"token": b"other-T0ken-not-listed"})
    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    sa = cluster.listener

    def by_name(name: str, watch: bool = False) -> str:  # the requests shared/logs/secret_watch.py sends
        return f"{secrets}?fieldSelector=metadata.name%3D{name}" + ("&watch=true&timeoutSeconds=1" if watch else "")

    cluster.wait_allowed(sa, by_name("deploy-token"), "the named Role")
    for path in (by_name("deploy-token"), by_name("deploy-token", watch=True), f"{secrets}/deploy-token"):
        status, body = cluster.raw("GET", path, sa, timeout=15)
        assert status == 200 and '"deploy-token"' in body, f"{path}: {status} {body[:300]}"
    refused = [f"{secrets}/{name}" for name in (own, "other-team-token")]
    refused += [by_name(name, watch) for name in (own, "other-team-token") for watch in (False, True)]
    refused += [
        secrets,
        f"{secrets}?watch=true&timeoutSeconds=1",
        f"{secrets}?fieldSelector=metadata.name%21%3Ddeploy-token",  # not an exact name: no resourceName
        f"{secrets}?labelSelector=app.kubernetes.io%2Fname%3Dtekton-pipeline-listener",
    ]
    for path in refused:
        status, body = cluster.raw("GET", path, sa, timeout=15)
        assert status == 403, f"{path}: expected 403, got {status} {body[:300]}"

    masked = _run(sim, namespace, [b"token " + TOKEN])
    unlisted = _run(sim, namespace, [b"token other-T0ken-not-listed"], "other-team-token")
    with Listener(cluster) as listener:
        status, _, body = listener.get(f"/logs/{namespace}/{masked}")
        assert status == 200 and b"[deploy : push] token ***\n" in body and TOKEN not in body
        _refused(listener, f"/logs/{namespace}/{unlisted}", "other-team-token", "403")

    # The contrast: the wide Role hands the same account the credentials living beside the runs.
    wide = f"t-{uuid.uuid4().hex[:10]}"
    cluster.ensure_namespace(wide)
    grant_secret_reads(cluster, wide)
    put_secret(cluster, wide, own, {"password": b"listener-Pa55word-own"})
    cluster.wait_allowed(sa, f"/api/v1/namespaces/{wide}/secrets/{own}", "the wide Role")
    # Unless they live in a namespace of their own, where no Role grants Secrets.
    home = f"t-{uuid.uuid4().hex[:10]}"
    cluster.ensure_namespace(home)
    put_secret(cluster, home, own, {"password": b"listener-Pa55word-own"})
    assert cluster.raw("GET", f"/api/v1/namespaces/{home}/secrets/{own}", sa)[0] == 403


def test_encoded_forms_of_a_value_are_masked(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    password = b"p@ss/w+rd:Z9y8X7"
    put_secret(cluster, namespace, "deploy-token", {"token": password})
    lines = [
        b"Authorization: Basic " + base64.b64encode(b"ci-user:" + password),
        b"clone https://ci:" + quote(password, safe="").encode() + b"@git.example/repo.git",
        b"urlsafe " + base64.urlsafe_b64encode(b"xy" + password),
    ]
    run = _run(sim, namespace, lines)
    with Listener(cluster) as listener:
        status, _, body = listener.get(f"/logs/{namespace}/{run}")
    assert status == 200
    assert b"@git.example/repo.git" in body and body.count(b"***") == 3, body
    for line in lines:
        assert line.split(b" ")[-1] not in body


def test_values_cut_across_the_pieces_of_a_long_line_are_masked(
    cluster: Cluster, sim: Simulator, namespace: str
) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    put_secret(cluster, namespace, "deploy-token", {"token": TOKEN})
    # A value every 4001 bytes across 3 MiB: wherever the pieces are cut, values straddle the cuts.
    filler = b"x" * (4001 - len(TOKEN))
    line = (filler + TOKEN) * (3 * MAX_LINE // 4001)
    run = _run(sim, namespace, [line, b"after"])
    with Listener(cluster) as listener:
        status, _, body = listener.get(f"/logs/{namespace}/{run}", timeout=120)
    assert status == 200 and b"[deploy : push] after\n" in body
    content = body.replace(b"\n[deploy : push] ", b"")  # the pieces joined again
    assert content.count(b"***") == 3 * MAX_LINE // 4001
    assert TOKEN[:8] not in body and TOKEN[-8:] not in body


def test_a_certificate_bundle_is_masked_in_every_form(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    body_lines = [base64.b64encode(uuid.uuid4().bytes * 3) for _ in range(3000)]
    pem = b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(body_lines) + b"\n-----END CERTIFICATE-----\n"
    put_secret(cluster, namespace, "ca-bundle", {"ca.crt": pem})
    printed = [*pem.splitlines(), b"b64 " + base64.b64encode(pem)]
    run = _run(sim, namespace, printed, "ca-bundle", "ca.crt")
    with Listener(cluster) as listener:
        status, _, body = listener.get(f"/logs/{namespace}/{run}", timeout=120)
    assert status == 200
    assert body.count(b"[deploy : push] ***\n") == len(pem.splitlines())
    assert not any(line in body for line in body_lines)
    assert base64.b64encode(pem)[8:40] not in body


def test_a_value_rotated_during_a_live_stream_is_masked_at_once(
    cluster: Cluster, sim: Simulator, namespace: str
) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    old, new = TOKEN, b"glpat-R0tated-Q1w2E3r4"
    put_secret(cluster, namespace, "deploy-token", {"token": old})
    hold = threading.Event()
    env = [env_ref("TOKEN", "deploy-token", "token")]
    steps = [Step("before", [b"old " + old], env=env, hold=hold), Step("after", [b"new " + new], env=env)]
    run = sim.play(Scenario("rotating", tasks=[Task("deploy", steps)]), namespace)
    pool = ThreadPoolExecutor(1)
    try:
        with Listener(cluster) as listener:
            lines = listener.stream(f"/logs/{namespace}/{run.name}?wait=30", timeout=120)
            received = [next(line for line in lines if b"[deploy : before]" in line)]
            assert received[0].lstrip(b"\r") == b"[deploy : before] old ***\n"  # after the first-byte heartbeat
            put_secret(cluster, namespace, "deploy-token", {"token": new})
            # Another run of the same Secret, read while the stream is open, shows when the listener
            # has taken up the new value; then the held step goes on and prints it.
            probe = _run(sim, namespace, [b"probe " + new])
            wait_for(lambda: b"probe ***" in listener.get(f"/logs/{namespace}/{probe}")[2], "the rotated value")
            hold.set()
            rest = pool.submit(lambda: b"".join(lines)).result(timeout=120)
    finally:
        hold.set()
        pool.shutdown()
    assert b"[deploy : after] new ***\n" in rest
    assert new not in rest and old not in rest
