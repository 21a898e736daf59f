"""Deployment artifacts (issue 4): service.yaml, func.yaml, the Dockerfile.

- Every document of service.yaml goes through a server-side dry-run on the sandbox apiserver
  with the real Knative Serving and Gateway API CRDs; kube-apiserver 1.20 prunes unknown fields
  silently, so what came back is compared with what was sent and any pruned field fails.
- The rules Knative's admission webhook would enforce (absent from the sandbox) are checked here.
- The shipped Role is bound, for real, to a ServiceAccount token; real requests prove what it
  may and may not do.
- func.yaml files are validated against the `func` CLI's schema and kept in step with service.yaml.
- The Dockerfile's CMD and ENV are parsed and functions-framework is started with exactly them
  (plus each Knative Service's env) against a throwaway function file.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.sandbox.cluster import NODE_NAME, Cluster, Identity, collection_path, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVICE_YAML = ROOT / "service.yaml"
# The Role an operator adds for masking: the wide one or the one naming the Secrets (docs/security.md).
MASKING_RBAC = [ROOT / "deploy" / "secret-masking-rbac.yaml", ROOT / "deploy" / "secret-masking-rbac-named.yaml"]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
FUNC_SCHEMA = ROOT / "tests" / "fixtures" / "func" / "func_yaml-schema.json"
FUNC_YAMLS = {
    "logs": ROOT / "func.yaml",
    "health": ROOT / "deploy" / "func" / "health" / "func.yaml",
    "status": ROOT / "deploy" / "func" / "status" / "func.yaml",
    "notify": ROOT / "deploy" / "func" / "notify" / "func.yaml",
}
FUNCTIONS = ("health", "logs", "status", "notify")
SERVICE_ACCOUNT = "tekton-pipeline-listener"
SERVICE_ACCOUNTS = {
    "logs": SERVICE_ACCOUNT,
    "status": "tekton-listener-status",
    "health": "tekton-listener-health",
    "notify": "tekton-listener-notify",
}
CREDENTIALS_SECRET = "tekton-pipeline-listener-credentials"
# Knative's default `max-revision-timeout-seconds` (config-defaults).
MAX_REVISION_TIMEOUT_SECONDS = 600
# Names Knative reserves in a container's env (its webhook rejects them).
KNATIVE_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
# Every annotation key Knative Serving reads on a revision template, per domain. Annotation maps
# are free-form, so a misspelt key is never pruned: it must be caught here.
KNATIVE_TEMPLATE_ANNOTATIONS = {
    "autoscaling.knative.dev/class",
    "autoscaling.knative.dev/metric",
    "autoscaling.knative.dev/target",
    "autoscaling.knative.dev/target-utilization-percentage",
    "autoscaling.knative.dev/target-burst-capacity",
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/max-scale",
    "autoscaling.knative.dev/initial-scale",
    "autoscaling.knative.dev/activation-scale",
    "autoscaling.knative.dev/scale-down-delay",
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
    "autoscaling.knative.dev/window",
    "autoscaling.knative.dev/panic-window-percentage",
    "autoscaling.knative.dev/panic-threshold-percentage",
    "autoscaling.knative.dev/metric-aggregation-algorithm",
    "serving.knative.dev/progress-deadline",
    "serving.knative.dev/rollout-duration",
}
KNATIVE_SERVICE_LABELS = {"networking.knative.dev/visibility", "serving.knative.dev/visibility"}
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")


# -- loading ------------------------------------------------------------------------------------
def service_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(SERVICE_YAML.read_text()) if doc]


def masking_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of each masking RBAC manifest."""
    return [(path.name, doc) for path in MASKING_RBAC for doc in yaml.safe_load_all(path.read_text()) if doc]


def knative_services() -> dict[str, dict[str, Any]]:
    """The Knative Services of service.yaml by function (their FUNCTION_TARGET)."""
    out = {}
    for doc in service_documents():
        if doc["apiVersion"] == "serving.knative.dev/v1" and doc["kind"] == "Service":
            out[container_env(doc)["FUNCTION_TARGET"]] = doc
    return out


def container(ksvc: dict[str, Any]) -> dict[str, Any]:
    containers = ksvc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{ksvc['metadata']['name']}: one container per function"
    return containers[0]


def container_env(ksvc: dict[str, Any]) -> dict[str, str]:
    """Literal env values; a secretKeyRef shows as `secret:<name>:<key>`."""
    env = {}
    for item in container(ksvc).get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"secret:{ref['name']}:{ref['key']}"
    return env


def doc_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# -- the pruning check --------------------------------------------------------------------------
def pruned_fields(sent: Any, returned: Any, path: str = "") -> list[str]:
    """Paths of what was sent but did not come back unchanged.

    Only fields the server added (defaults, metadata such as uid or creationTimestamp) are
    ignored: every sent key must be present with an equal value, every sent list must come
    back with the same length and equal items.
    """
    if isinstance(sent, dict):
        if not isinstance(returned, dict):
            return [f"{path or '.'}: sent an object, got {returned!r}"]
        problems = []
        for key, value in sent.items():
            where = f"{path}.{key}"
            if key not in returned:
                problems.append(f"{where}: pruned")
            else:
                problems.extend(pruned_fields(value, returned[key], where))
        return problems
    if isinstance(sent, list):
        if not isinstance(returned, list) or len(returned) != len(sent):
            return [f"{path}: sent {len(sent)} items, got {returned!r}"]
        problems = []
        for index, (item, back) in enumerate(zip(sent, returned, strict=True)):
            problems.extend(pruned_fields(item, back, f"{path}[{index}]"))
        return problems
    if sent != returned or type(sent) is not type(returned):
        return [f"{path}: sent {sent!r}, got {returned!r}"]
    return []


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if doc["kind"] not in ("ClusterRoleBinding", "ClusterRole"):  # cluster-scoped: no namespace
        doc["metadata"]["namespace"] = namespace
    return doc


def dry_run_create(cluster: Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    """POSTs `doc` with ?dryRun=All as admin; fails on a rejection, returns the server's object."""
    path = collection_path(doc) + "?dryRun=All"
    status, text = cluster.raw("POST", path, cluster.admin, doc)
    assert status in (200, 201), f"{doc_id(doc)} rejected: {status} {text[:2000]}"
    return json.loads(text)


def test_service_yaml_covers_every_piece() -> None:
    docs = service_documents()
    kinds = sorted(doc_id(doc) for doc in docs)
    assert kinds == sorted(
        [
            "ServiceAccount/tekton-pipeline-listener",
            "Role/tekton-pipeline-listener",
            "RoleBinding/tekton-pipeline-listener",
            "ServiceAccount/tekton-listener-status",
            "Role/tekton-listener-status",
            "RoleBinding/tekton-listener-status",
            "ServiceAccount/tekton-listener-health",
            "NetworkPolicy/tekton-listener-health",
            "NetworkPolicy/tekton-listener-logs",
            "NetworkPolicy/tekton-listener-status",
            "ServiceAccount/tekton-listener-notify",
            "Role/tekton-listener-notify",
            "RoleBinding/tekton-listener-notify",
            "ClusterRoleBinding/tekton-listener-notify-token-review",
            "NetworkPolicy/tekton-listener-notify",
            "Service/tekton-listener-health",
            "Service/tekton-listener-logs",
            "Service/tekton-listener-status",
            "Service/tekton-listener-notify",
            "HTTPRoute/tekton-pipeline-listener",
        ]
    )
    for doc in docs:
        assert "namespace" not in doc["metadata"], f"{doc_id(doc)}: no hard-coded namespace"
        assert doc["kind"] != "Secret", "credentials are referenced, never shipped"
    assert sorted(knative_services()) == sorted(FUNCTIONS)


@pytest.mark.parametrize("doc", service_documents(), ids=doc_id)
def test_every_document_survives_server_side_dry_run_unpruned(
    cluster: Cluster, namespace: str, doc: dict[str, Any]
) -> None:
    sent = in_namespace(doc, namespace)
    returned = dry_run_create(cluster, sent)
    assert pruned_fields(sent, returned) == []
    # A dry run persists nothing.
    name = doc["metadata"]["name"]
    status, _ = cluster.raw("GET", f"{collection_path(sent)}/{name}", cluster.admin)
    assert status == 404


@pytest.mark.parametrize(("file", "doc"), masking_documents(), ids=lambda v: v if isinstance(v, str) else doc_id(v))
def test_masking_rbac_survives_server_side_dry_run_unpruned(
    cluster: Cluster, namespace: str, file: str, doc: dict[str, Any]
) -> None:
    """A misspelt `resourceNames` would be pruned in silence, and the named Role would grant every Secret."""
    sent = in_namespace(doc, namespace)
    assert pruned_fields(sent, dry_run_create(cluster, sent)) == [], file


def test_masking_rbac_grants_reads_of_secrets_only_the_named_role_of_listed_ones() -> None:
    by_file: dict[str, list[dict[str, Any]]] = {}
    for file, doc in masking_documents():
        by_file.setdefault(file, []).append(doc)
    assert sorted(by_file) == sorted(path.name for path in MASKING_RBAC)
    rules = {}
    for file, docs in by_file.items():
        # The same names in both files: applying one replaces the other.
        assert [doc_id(d) for d in docs] == [
            "Role/tekton-pipeline-listener-secret-masking",
            "RoleBinding/tekton-pipeline-listener-secret-masking",
        ], file
        role, binding = docs
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": doc_id(role)[5:]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT}], file
        (rules[file],) = role["rules"]
        assert {k: v for k, v in rules[file].items() if k != "resourceNames"} == {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "list", "watch"],
        }, file
    assert "resourceNames" not in rules["secret-masking-rbac.yaml"]
    names = rules["secret-masking-rbac-named.yaml"]["resourceNames"]
    assert names and all(isinstance(n, str) and n for n in names)
    assert CREDENTIALS_SECRET not in names, "the listener's own Secret is never granted"


def test_negative_control_pruning_check_catches_misspelt_fields(cluster: Cluster, namespace: str) -> None:
    ksvc = in_namespace(knative_services()["logs"], namespace)
    ksvc["spec"]["template"]["spec"]["containerConcurency"] = 5  # misspelt
    container(ksvc)["readinessProbe"]["httpget"] = {"path": "/health/readiness"}  # wrong case
    ksvc["metadata"]["label"] = {"a": "b"}  # ObjectMeta has `labels`
    route = in_namespace(next(d for d in service_documents() if d["kind"] == "HTTPRoute"), namespace)
    route["spec"]["rules"][1]["timeout"] = {"request": "0s"}  # `timeouts`

    ksvc_problems = pruned_fields(ksvc, dry_run_create(cluster, ksvc))
    route_problems = pruned_fields(route, dry_run_create(cluster, route))

    assert sorted(ksvc_problems) == [
        ".metadata.label: pruned",
        ".spec.template.spec.containerConcurency: pruned",
        ".spec.template.spec.containers[0].readinessProbe.httpget: pruned",
    ]
    assert route_problems == [".spec.rules[1].timeout: pruned"]


def test_pruning_check_compares_values_and_lists() -> None:
    assert pruned_fields({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x", "c": 1}], "d": 2}) == []
    assert pruned_fields({"a": [1, 2]}, {"a": [1]}) == [".a: sent 2 items, got [1]"]
    assert pruned_fields({"a": {"b": "1"}}, {"a": {"b": 1}}) == [".a.b: sent '1', got 1"]
    assert pruned_fields({"a": {"b": 1}}, {"a": {}}) == [".a.b: pruned"]


# -- what Knative's webhook (absent from the sandbox) would check, and our own rules ------------
@pytest.mark.parametrize("function", FUNCTIONS)
def test_knative_service_rules(function: str) -> None:
    ksvc = knative_services()[function]
    name = ksvc["metadata"]["name"]
    labels = ksvc["metadata"]["labels"]
    assert labels["networking.knative.dev/visibility"] == "cluster-local"
    for key in labels:
        if "knative.dev/" in key:
            assert key in KNATIVE_SERVICE_LABELS, f"{name}: unknown Knative label {key}"

    template = ksvc["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    for key in annotations:
        if "knative.dev/" in key:
            assert key in KNATIVE_TEMPLATE_ANNOTATIONS, f"{name}: unknown Knative annotation {key}"
        assert isinstance(annotations[key], str)
    assert annotations["autoscaling.knative.dev/min-scale"] == "0", "scale to zero"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/metric"] in {"concurrency", "rps"}
    assert DURATION.match(annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"])

    spec = template["spec"]
    # One ServiceAccount per function (the logs one keeps the project's name).
    assert spec["serviceAccountName"] == SERVICE_ACCOUNTS[function]
    timeout = spec["timeoutSeconds"]
    assert 0 < timeout <= MAX_REVISION_TIMEOUT_SECONDS
    assert 0 < spec["responseStartTimeoutSeconds"] <= timeout
    assert 0 < spec["idleTimeoutSeconds"] <= timeout

    env = container_env(ksvc)
    threads = int(env["THREADS"])
    concurrency = spec["containerConcurrency"]
    assert 0 < concurrency < threads, f"{name}: probes need a free thread beyond containerConcurrency"
    if annotations["autoscaling.knative.dev/metric"] == "concurrency":
        assert float(annotations["autoscaling.knative.dev/target"]) <= concurrency
    assert not KNATIVE_RESERVED_ENV & env.keys(), f"{name}: Knative reserves {KNATIVE_RESERVED_ENV}"
    assert env["FUNCTION_SOURCE"] == f"/app/functions/{function}/main.py"
    assert env["FUNCTION_SIGNATURE_TYPE"] == ("cloudevent" if function == "notify" else "http")
    assert env["CLOUD_RUN_TIMEOUT_SECONDS"] == "0", "no per-request timeout inside gunicorn"
    assert env["NAMESPACE"] == "tekton-pipelines"
    if function in {"logs", "status"}:
        assert env["AUTH_USERNAME"] == f"secret:{CREDENTIALS_SECRET}:username"
        assert env["AUTH_PASSWORD"] == f"secret:{CREDENTIALS_SECRET}:password"

    box = container(ksvc)
    assert box["ports"] == [{"name": "http1", "containerPort": 8080}]
    for probe, path in (("livenessProbe", "/health/liveness"), ("readinessProbe", "/health/readiness")):
        assert box[probe]["httpGet"] == {"path": path}, "Knative fills in the port"
    assert box["securityContext"]["runAsNonRoot"] is True
    assert box["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("function", FUNCTIONS)
def test_container_runs_least_privileged_with_only_tmp_writable(function: str) -> None:
    ksvc = knative_services()[function]
    security = container(ksvc)["securityContext"]
    assert security == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The one writable path the image needs (gunicorn's heartbeat files and control socket under
    # HOME=/tmp; tests/test_image_container.py runs the image read-only with exactly this).
    assert dockerfile_env()["HOME"] == "/tmp"
    assert container(ksvc)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    [volume] = ksvc["spec"]["template"]["spec"]["volumes"]
    assert volume["name"] == "tmp" and volume["emptyDir"]["medium"] == "Memory"
    # A memory-backed emptyDir counts against the container's memory limit: keep it small.
    assert volume["emptyDir"]["sizeLimit"] == "16Mi"


def test_one_image_for_every_function() -> None:
    images = {container(ksvc)["image"] for ksvc in knative_services().values()}
    assert len(images) == 1


def test_logs_has_room_for_long_streams() -> None:
    spec = knative_services()["logs"]["spec"]["template"]["spec"]
    assert spec["timeoutSeconds"] == MAX_REVISION_TIMEOUT_SECONDS
    assert spec["idleTimeoutSeconds"] == spec["timeoutSeconds"], "a silent step must not cut the stream"
    assert knative_services()["health"]["spec"]["template"]["spec"]["timeoutSeconds"] < spec["timeoutSeconds"]


@pytest.mark.parametrize("function", ["logs", "status"])
def test_a_wait_ends_with_an_answer_not_a_cut(function: str) -> None:
    """`?wait=` sends nothing until the run exists (logs) or is done (status): every Knative
    timeout must let the longest allowed wait finish, within the platform's cap (issue 15)."""
    from shared.config import MAX_WAIT_BOUND, Settings

    ksvc = knative_services()[function]
    spec = ksvc["spec"]["template"]["spec"]
    longest = Settings.from_env({k: v for k, v in container_env(ksvc).items() if not v.startswith("secret:")})
    assert longest.max_wait_seconds <= MAX_WAIT_BOUND <= MAX_REVISION_TIMEOUT_SECONDS
    for timeout in ("timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"):
        assert spec[timeout] >= longest.max_wait_seconds + 5, (function, timeout)
    # Waits cannot take every request slot queue-proxy gives a status instance (logs serves no
    # short requests; its probes bypass queue-proxy's concurrency limit).
    from shared.auth import StreamLimiter

    limiter = StreamLimiter.from_settings(longest.streams)
    capacity = min(n for n in (limiter.total, limiter.capacity) if n)
    if function == "status":
        assert spec["containerConcurrency"] - capacity >= 2, capacity


def test_http_route_paths_rewrites_and_timeouts() -> None:
    route = next(doc for doc in service_documents() if doc["kind"] == "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    ksvcs = {ksvc["metadata"]["name"]: ksvc for ksvc in knative_services().values()}
    routed = {}
    for rule in route["spec"]["rules"]:
        [match] = rule["matches"]
        assert match["path"]["type"] == "PathPrefix"
        [backend] = rule["backendRefs"]
        assert backend["kind"] == "Service" and backend["port"] == 80
        ksvc = ksvcs[backend["name"]]
        [rewrite] = [f["urlRewrite"] for f in rule["filters"] if f["type"] == "URLRewrite"]
        namespace = container_env(ksvc)["NAMESPACE"]
        assert rewrite == {"hostname": f"{backend['name']}.{namespace}.svc.cluster.local"}
        assert rule["timeouts"] == {"request": "0s", "backendRequest": "0s"}, "no 15 s route timeout"
        routed[match["path"]["value"]] = container_env(ksvc)["FUNCTION_TARGET"]
    assert routed == {"/health": "health", "/logs/": "logs", "/status/": "status"}


def test_notify_trigger_points_at_the_notify_service() -> None:
    [trigger] = [d for d in yaml.safe_load_all((ROOT / "deploy" / "notify-trigger.yaml").read_text()) if d]
    assert trigger["apiVersion"] == "eventing.knative.dev/v1" and trigger["kind"] == "Trigger"
    assert "namespace" not in trigger["metadata"]
    assert trigger["spec"]["broker"] == "default"
    assert trigger["spec"]["filters"] == [{"prefix": {"type": "dev.tekton.event.pipelinerun."}}]
    assert trigger["spec"]["subscriber"]["ref"] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": knative_services()["notify"]["metadata"]["name"],
    }


# -- func.yaml ----------------------------------------------------------------------------------
class _NoTimestampLoader(yaml.SafeLoader):
    """YAML as the schema sees it (JSON): timestamps stay strings."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_func_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_NoTimestampLoader)  # noqa: S506 - a SafeLoader subclass


def func_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(FUNC_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_func_yaml_is_valid_against_the_func_schema(function: str) -> None:
    func = load_func_yaml(FUNC_YAMLS[function])
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in func_validator().iter_errors(func)]
    assert errors == []


def test_negative_control_func_schema_rejects_unknown_and_mistyped_fields() -> None:
    func = load_func_yaml(FUNC_YAMLS["logs"])
    func["deploy"]["options"]["scale"]["minScale"] = 0
    func["deploy"]["options"]["resources"]["limits"]["concurrency"] = "12"
    messages = sorted(error.message for error in func_validator().iter_errors(func))
    assert len(messages) == 2, messages
    assert any("minScale" in m for m in messages) and any("'12' is not of type 'integer'" in m for m in messages)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_func_yaml_matches_the_knative_service(function: str) -> None:
    func = load_func_yaml(FUNC_YAMLS[function])
    ksvc = knative_services()[function]
    annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
    spec = ksvc["spec"]["template"]["spec"]
    assert func["name"] == ksvc["metadata"]["name"]
    assert func["image"] == container(ksvc)["image"]
    assert func["invoke"] == ("cloudevent" if function == "notify" else "http")
    assert func["deploy"]["serviceAccountName"] == spec["serviceAccountName"]
    env = {item["name"]: item["value"] for item in func["run"]["envs"]}
    secret = re.compile(r"^\{\{ secret:([^:]+):([^ ]+) \}\}$")
    translated = {
        name: (f"secret:{m.group(1)}:{m.group(2)}" if (m := secret.match(value)) else value)
        for name, value in env.items()
    }
    assert translated == container_env(ksvc)
    scale = func["deploy"]["options"]["scale"]
    assert scale["min"] == int(annotations["autoscaling.knative.dev/min-scale"])
    assert scale["max"] == int(annotations["autoscaling.knative.dev/max-scale"])
    assert scale["metric"] == annotations["autoscaling.knative.dev/metric"]
    assert scale["target"] == float(annotations["autoscaling.knative.dev/target"])
    if "autoscaling.knative.dev/target-utilization-percentage" in annotations:
        assert scale["utilization"] == float(annotations["autoscaling.knative.dev/target-utilization-percentage"])
    limits = func["deploy"]["options"]["resources"]["limits"]
    assert limits["concurrency"] == spec["containerConcurrency"]
    box = container(ksvc)
    assert limits["memory"] == box["resources"]["limits"]["memory"]
    assert func["deploy"]["options"]["resources"]["requests"] == box["resources"]["requests"]
    labels = {item["key"]: item["value"] for item in func["deploy"]["labels"]}
    assert labels == ksvc["metadata"]["labels"]
    assert func["deploy"]["healthEndpoints"] == {"liveness": "/health/liveness", "readiness": "/health/readiness"}
    volumes = {v["name"]: v["emptyDir"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in box["volumeMounts"]}
    assert {v["path"]: v["emptyDir"] for v in func["run"]["volumes"]} == mounts


# -- RBAC: the shipped Role, bound for real -----------------------------------------------------
RUNS_NS = "ci-runs"
OTHER_NS = "other-runs"


# Tokens for the other functions' ServiceAccounts, as their pods would hold them (health's has
# none mounted; a token made for it anyway shows its account can do nothing either).
FUNCTION_TOKENS = {
    name: Identity.service_account(RUNS_NS, account) for name, account in SERVICE_ACCOUNTS.items() if name != "logs"
}


@pytest.fixture(scope="module")
def rbac() -> Iterator[tuple[Cluster, Identity]]:
    """A sandbox of its own, with a token for each ServiceAccount of service.yaml in RUNS_NS."""
    identity = Identity.service_account(RUNS_NS, SERVICE_ACCOUNT)
    with Cluster.start(extra_identities=[identity, *FUNCTION_TOKENS.values()]) as running:
        for ns in (RUNS_NS, OTHER_NS):
            running.ensure_namespace(ns)
        yield running, identity


def _pipelinerun(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": "build-and-test"}},
    }


def _pod_with_log(cluster: Cluster, namespace: str, name: str, text: bytes) -> None:
    cluster.api(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"nodeName": NODE_NAME, "containers": [{"name": "step-build", "image": "busybox"}]},
        },
    )
    cluster.store.add_pod(namespace, name, ["step-build"])
    cluster.store.start(namespace, name, "step-build")
    cluster.store.write(namespace, name, "step-build", text)


def test_one_service_account_per_function_with_only_what_it_needs() -> None:
    docs = service_documents()
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    bound = {d["subjects"][0]["name"]: d["roleRef"]["name"] for d in docs if d["kind"] == "RoleBinding"}
    assert len(set(SERVICE_ACCOUNTS.values())) == len(FUNCTIONS) and set(SERVICE_ACCOUNTS.values()) <= set(accounts)
    # health talks to no API: no Role, and no token in its pods to steal.
    assert accounts[SERVICE_ACCOUNTS["health"]]["automountServiceAccountToken"] is False
    assert SERVICE_ACCOUNTS["health"] not in bound
    for name in ("logs", "status", "notify"):
        assert accounts[SERVICE_ACCOUNTS[name]]["automountServiceAccountToken"] is True
    granted = {
        account: {(r, v) for rule in roles[role]["rules"] for r in rule["resources"] for v in rule["verbs"]}
        for account, role in bound.items()
    }
    for account, grants in granted.items():
        assert not any("*" in item or r == "secrets" for item in grants for r in item), account
    status = granted[SERVICE_ACCOUNTS["status"]]
    runs = {("pipelineruns", verb) for verb in ("get", "list", "watch")}
    assert status == runs | {("taskruns", "list")}
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    assert not {g for g in granted[SERVICE_ACCOUNTS["logs"]] if g[1] in writes}


def test_a_network_policy_per_service() -> None:
    policies = {
        d["spec"]["podSelector"]["matchLabels"]["serving.knative.dev/service"]: d
        for d in service_documents()
        if d["kind"] == "NetworkPolicy"
    }
    for function, ksvc in knative_services().items():
        policy = policies[ksvc["metadata"]["name"]]
        assert "Ingress" in policy["spec"]["policyTypes"], function
        if function != "notify":  # notify's own policy (its ingress) comes with its event authentication
            assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], function
            ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
            assert 8012 in ports, f"{function}: queue-proxy's port must stay reachable"
    health = policies["tekton-listener-health"]["spec"]["egress"]
    assert {p["port"] for rule in health for p in rule["ports"]} == {53}, "health reaches nothing but DNS"


def test_shipped_role_grants_exactly_read_access_to_runs_pods_and_logs(rbac: tuple[Cluster, Identity]) -> None:
    cluster, sa = rbac
    runs = f"/apis/tekton.dev/v1/namespaces/{RUNS_NS}"
    pods = f"/api/v1/namespaces/{RUNS_NS}/pods"

    # Before the binding the token can do nothing: what follows is the Role's doing.
    assert cluster.raw("GET", f"{runs}/pipelineruns", sa)[0] == 403

    for doc in service_documents():
        if doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
            cluster.apply(in_namespace(doc, RUNS_NS))
    cluster.api("POST", f"{runs}/pipelineruns", _pipelinerun("app-run-1"))
    cluster.api("POST", f"/apis/tekton.dev/v1/namespaces/{OTHER_NS}/pipelineruns", _pipelinerun("app-run-2"))
    _pod_with_log(cluster, RUNS_NS, "app-run-1-build-pod", b"hello from step-build\n")
    _pod_with_log(cluster, OTHER_NS, "app-run-2-build-pod", b"secret-ish output\n")
    cluster.api(
        "POST",
        f"/api/v1/namespaces/{RUNS_NS}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-token"}, "stringData": {"t": "x"}},
    )

    cluster.wait_allowed(sa, f"{runs}/pipelineruns", "the RoleBinding")

    allowed = {
        "list pipelineruns": ("GET", f"{runs}/pipelineruns"),
        "get pipelinerun": ("GET", f"{runs}/pipelineruns/app-run-1"),
        "list taskruns": ("GET", f"{runs}/taskruns"),
        "get taskrun (absent: 404, not 403)": ("GET", f"{runs}/taskruns/nope"),
        "list pods": ("GET", pods),
        "get pod": ("GET", f"{pods}/app-run-1-build-pod"),
    }
    for what, (method, path) in allowed.items():
        status, body = cluster.raw(method, path, sa)
        assert status == (404 if "absent" in what else 200), f"{what}: {status} {body[:300]}"

    for what, path in {
        "watch pipelineruns": f"{runs}/pipelineruns?watch=1&timeoutSeconds=1",
        "watch taskruns": f"{runs}/taskruns?watch=1&timeoutSeconds=1",
        "watch pods": f"{pods}?watch=1&timeoutSeconds=1",
    }.items():
        status, body = cluster.raw("GET", path, sa, timeout=15)
        assert status == 200, f"{what}: {status} {body[:300]}"
    status, body = cluster.raw("GET", f"{runs}/pipelineruns?watch=1&timeoutSeconds=1", sa, timeout=15)
    assert '"type":"ADDED"' in body and "app-run-1" in body

    status, body = cluster.raw("GET", f"{pods}/app-run-1-build-pod/log?container=step-build", sa)
    assert (status, body) == (200, "hello from step-build\n")

    denied = {
        "list secrets": ("GET", f"/api/v1/namespaces/{RUNS_NS}/secrets", None),
        "get secret": ("GET", f"/api/v1/namespaces/{RUNS_NS}/secrets/git-token", None),
        "list configmaps": ("GET", f"/api/v1/namespaces/{RUNS_NS}/configmaps", None),
        "create pipelinerun": ("POST", f"{runs}/pipelineruns", _pipelinerun("sneaky")),
        "delete pipelinerun": ("DELETE", f"{runs}/pipelineruns/app-run-1", None),
        "patch taskrun": ("PATCH", f"{runs}/taskruns/x", {"metadata": {"labels": {"a": "b"}}}),
        "delete pod": ("DELETE", f"{pods}/app-run-1-build-pod", None),
        "exec into pod": ("POST", f"{pods}/app-run-1-build-pod/exec?command=sh&stdout=1", None),
        "list tasks": ("GET", f"{runs}/tasks", None),
        "other namespace: list pipelineruns": ("GET", f"/apis/tekton.dev/v1/namespaces/{OTHER_NS}/pipelineruns", None),
        "other namespace: get pipelinerun": (
            "GET",
            f"/apis/tekton.dev/v1/namespaces/{OTHER_NS}/pipelineruns/app-run-2",
            None,
        ),
        "other namespace: list pods": ("GET", f"/api/v1/namespaces/{OTHER_NS}/pods", None),
        "other namespace: pod log": (
            "GET",
            f"/api/v1/namespaces/{OTHER_NS}/pods/app-run-2-build-pod/log?container=step-build",
            None,
        ),
        "cluster-wide pipelineruns": ("GET", "/apis/tekton.dev/v1/pipelineruns", None),
        "cluster-wide pods": ("GET", "/api/v1/pods", None),
        "list namespaces": ("GET", "/api/v1/namespaces", None),
    }
    for what, (method, path, body) in denied.items():
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        status, text = cluster.raw(method, path, sa, body, content_type)
        assert status == 403, f"{what}: expected 403, got {status} {text[:300]}"
    # The denied writes left everything in place.
    assert cluster.raw("GET", f"{runs}/pipelineruns/app-run-1", cluster.admin)[0] == 200
    assert cluster.raw("GET", f"{pods}/app-run-1-build-pod", cluster.admin)[0] == 200


# -- Dockerfile ---------------------------------------------------------------------------------
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    stages: list[list[tuple[str, str]]] = []
    for entry in logical:
        instruction, _, args = entry.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args.strip()))
    return stages


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_stages()[-1]:
        if instruction == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"use ENV key=value: {item}"
                env[key] = value
    return env


def dockerfile_cmd() -> list[str]:
    [cmd] = [args for instruction, args in dockerfile_stages()[-1] if instruction == "CMD"]
    parsed = json.loads(cmd)  # exec form: PID 1 is functions-framework, SIGTERM reaches gunicorn
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed)
    return parsed


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    args = dict(arg.split("=", 1) for arg in dockerfile_preamble_args(text))
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    build, final = stages[0], stages[-1]
    # The project comes as its wheel, built on the host where a C compiler is (image/wheelhouse.py).
    assert any(i == "COPY" and a.startswith("build/wheels ") for i, a in build)
    project = r"pip install --no-deps /wheels/tekton_pipeline_listener-\*\.whl"
    assert any(i == "RUN" and re.search(project, a) for i, a in build)
    assert any(i == "COPY" and a.startswith("--from=build /opt/venv") for i, a in final)
    runs = " ".join(a for i, a in final if i == "RUN")
    for tool in ("pip install", "apt-get install", "gcc", "build-essential"):
        assert tool not in runs, f"no build tools in the final stage: {tool}"
    [user] = [a for i, a in final if i == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (runAsNonRoot can verify it)"
    env = dockerfile_env()
    assert env["FUNCTION_TARGET"] and env["FUNCTION_SOURCE"] == f"/app/functions/{env['FUNCTION_TARGET']}/main.py"
    assert env["FUNCTION_SIGNATURE_TYPE"] == "http"
    assert int(env["THREADS"]) >= 2
    assert env["CLOUD_RUN_TIMEOUT_SECONDS"] == "0"
    assert dockerfile_cmd()[0] == "functions-framework"
    # Every COPY source from the context survives .dockerignore.
    ignore = DOCKERIGNORE.read_text().split()
    for stage in stages:
        for instruction, argument in stage:
            if instruction == "COPY" and not argument.startswith("--from"):
                *sources, _ = argument.split()
                for source in sources:
                    assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, source


def dockerfile_preamble_args(text: str) -> list[str]:
    """`name=default` of the ARGs before the first FROM (the ones FROM lines can use)."""
    out = []
    for line in text.splitlines():
        if line.startswith("FROM"):
            break
        if line.startswith("ARG "):
            out.append(line[4:].strip())
    return out


THROWAWAY = '''
"""A stand-in function for the image's command line; not the product's functions."""

import time
from pathlib import Path

import flask

CONTROL = Path({control!r})


def _released(name):
    return (CONTROL / "release-all").exists() or (CONTROL / f"release-{{name}}").exists()


def _stream(name):
    yield b"start\\n"
    deadline = time.monotonic() + 60
    tick = 0
    while time.monotonic() < deadline:
        if _released(name):
            yield b"end\\n"
            return
        yield f"tick {{tick}}\\n".encode()
        tick += 1
        time.sleep(0.05)
    yield b"deadline\\n"


def logs(request):
    if request.path in ("/health/liveness", "/health/readiness"):
        return "ok\\n"
    return flask.Response(_stream(request.path.rsplit("/", 1)[-1]), mimetype="text/plain")


health = logs


# A CloudEvents function only gets POST routes from functions-framework; the probes' GET routes
# are added to the app that functions-framework loads this module in.
for _probe in ("/health/liveness", "/health/readiness"):
    flask.current_app.add_url_rule(_probe, _probe, lambda: "ok\\n", methods=["GET"])


def notify(cloud_event):
    (CONTROL / f"event-{{cloud_event['id']}}").write_text(cloud_event["type"])
'''


class Server:
    """functions-framework started with the image's CMD and env; stopped (by pid) on exit."""

    def __init__(self, tmp: Path, overrides: dict[str, str]) -> None:
        self.control = tmp / "control"
        self.control.mkdir(parents=True)
        source = tmp / "function.py"
        source.write_text(textwrap.dedent(THROWAWAY.format(control=str(self.control))))
        self.port = free_port()
        env = {key: value for key, value in dockerfile_env().items() if key != "PATH"}
        env.update(overrides)
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "PORT": str(self.port),  # Knative sets it from containerPort
                "FUNCTION_SOURCE": str(source),
                "GUNICORN_LOG_LEVEL": "info",
            }
        )
        self.env = env
        self.log = tmp / "server.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                dockerfile_cmd(), env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"functions-framework exited: {self.log.read_text()[-3000:]}"
            try:
                if self.get("/health/readiness", timeout=2) == (200, "ok\n"):
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not serving on PORT: {self.log.read_text()[-3000:]}"
            time.sleep(0.1)

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def open_stream(self, name: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", f"/logs/stream/{name}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.readline() == b"start\n"
        return conn, resp

    def release(self, name: str = "all") -> None:
        (self.control / f"release-{name}").touch()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start(overrides: dict[str, str]) -> Server:
        server = Server(tmp_path / f"s{len(servers)}", overrides)
        servers.append(server)
        return server

    yield lambda overrides=None: start(overrides or {})
    for server in servers:
        server.stop()


def ksvc_literal_env(function: str) -> dict[str, str]:
    """A Knative Service's env as its container gets it; Secret values replaced by test values."""
    return {
        key: ("test-" + value.rsplit(":", 1)[-1] if value.startswith("secret:") else value)
        for key, value in container_env(knative_services()[function]).items()
    }


def read_until(resp: http.client.HTTPResponse, marker: bytes) -> list[bytes]:
    lines = []
    while True:
        line = resp.readline()
        assert line, f"stream ended before {marker!r}: {lines[-5:]}"
        lines.append(line)
        if line == marker:
            return lines


def test_image_command_serves_on_port_with_dockerfile_defaults(serve: Any) -> None:
    server = serve()
    assert server.env["FUNCTION_TARGET"] == "health"
    assert server.get("/health/liveness") == (200, "ok\n")
    # The gthread worker with the Dockerfile's THREADS, from the gunicorn log at info level.
    log = server.log.read_text()
    assert f"Listening at: http://0.0.0.0:{server.port}" in log
    assert "Using worker: gthread" in log


def test_logs_probes_answer_while_container_concurrency_streams_are_open(serve: Any) -> None:
    env = ksvc_literal_env("logs")
    server = serve(env)
    concurrency = knative_services()["logs"]["spec"]["template"]["spec"]["containerConcurrency"]
    threads = int(env["THREADS"])

    streams = [server.open_stream(f"s{index}") for index in range(concurrency)]
    for _ in range(3):
        assert server.get("/health/liveness", timeout=2) == (200, "ok\n")
        assert server.get("/health/readiness", timeout=2) == (200, "ok\n")

    # Control: fill the remaining threads and a probe cannot get one; the check can fail.
    extra = [server.open_stream(f"x{index}") for index in range(threads - concurrency)]
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        server.get("/health/readiness", timeout=1.5)
    server.release("x0")
    read_until(extra[0][1], b"end\n")
    assert server.get("/health/readiness", timeout=5) == (200, "ok\n")

    server.release()
    for conn, resp in streams + extra[1:]:
        read_until(resp, b"end\n")
        assert resp.read() == b""
        conn.close()


def test_stream_keeps_flowing_across_graceful_shutdown(serve: Any) -> None:
    server = serve(ksvc_literal_env("logs"))
    conn, resp = server.open_stream("draining")
    assert resp.readline().startswith(b"tick ")

    os.kill(server.proc.pid, signal.SIGTERM)  # what the kubelet sends to the container's PID 1
    # New connections are refused once the worker stops accepting; the open stream carries on.
    deadline = time.monotonic() + 10
    while True:
        try:
            server.get("/health/liveness", timeout=1)
        except OSError:
            break
        assert time.monotonic() < deadline, "still accepting new requests after SIGTERM"
        time.sleep(0.05)
    before = [resp.readline() for _ in range(5)]
    assert all(line.startswith(b"tick ") for line in before), before
    assert server.proc.poll() is None, "the server must wait for the open stream"

    server.release("draining")
    read_until(resp, b"end\n")
    assert resp.read() == b"", "the stream ends with a clean chunked terminator"
    conn.close()
    assert server.proc.wait(30) == 0


def test_notify_command_line_serves_cloudevents_and_probes(serve: Any) -> None:
    server = serve(ksvc_literal_env("notify"))
    assert server.env["FUNCTION_SIGNATURE_TYPE"] == "cloudevent"
    assert server.get("/health/readiness") == (200, "ok\n")
    event_id = uuid.uuid4().hex
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/",
        data=json.dumps({"pipelineRun": {"metadata": {"name": "app-run-1"}}}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": "/apis///namespaces/ci/pipelineruns/app-run-1",
            "ce-type": "dev.tekton.event.pipelinerun.successful.v1",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    assert (server.control / f"event-{event_id}").read_text() == "dev.tekton.event.pipelinerun.successful.v1"


def test_credentials_secret_is_documented_not_shipped() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert f"kubectl create secret generic {CREDENTIALS_SECRET}" in docs
    assert "kind: Secret" not in SERVICE_YAML.read_text()


def test_each_function_token_reaches_only_its_own_objects(rbac: tuple[Cluster, Identity]) -> None:
    """A stolen status token reads no logs, pods or Secrets; health's account reads nothing.
    (After the shipped-Role test, which needs the sandbox without bindings first.)"""
    cluster, _ = rbac
    for doc in service_documents():
        if doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
            cluster.apply(in_namespace(doc, RUNS_NS))
    runs = f"/apis/tekton.dev/v1/namespaces/{RUNS_NS}"
    pods = f"/api/v1/namespaces/{RUNS_NS}/pods"
    status_sa, health_sa = FUNCTION_TOKENS["status"], FUNCTION_TOKENS["health"]
    cluster.wait_allowed(status_sa, f"{runs}/pipelineruns", "the status RoleBinding")
    assert cluster.raw("GET", f"{runs}/taskruns", status_sa)[0] == 200
    for path in (pods, f"{pods}/any/log", f"/api/v1/namespaces/{RUNS_NS}/secrets", f"{runs}/taskruns/x"):
        assert cluster.raw("GET", path, status_sa)[0] == 403, path
    for path in (f"{runs}/pipelineruns", pods, f"/api/v1/namespaces/{RUNS_NS}/secrets"):
        assert cluster.raw("GET", path, health_sa)[0] == 403, path
