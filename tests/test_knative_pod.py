"""tests/knative_pod.py: the Pod each function would run as under Knative, accepted unpruned by a
real apiserver and carrying service.yaml's own pod spec."""

from __future__ import annotations

import pytest

from tests.knative_pod import KNATIVE_ONLY_FIELDS, USER_PORT_NAME, knative_pod
from tests.sandbox.cluster import Cluster
from tests.test_manifests import (
    FUNCTIONS,
    container,
    container_env,
    dry_run_create,
    in_namespace,
    knative_services,
    pruned_fields,
)

IMAGE = "localhost/tekton-pipeline-listener:0123456789abcdef"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_pod_is_accepted_unpruned_by_the_apiserver(cluster: Cluster, namespace: str, function: str) -> None:
    pod = in_namespace(knative_pod(function, IMAGE), namespace)
    returned = dry_run_create(cluster, pod)
    assert pruned_fields(pod, returned) == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_pod_keeps_the_services_spec_and_adds_what_knative_adds(function: str) -> None:
    ksvc = knative_services()[function]
    template = ksvc["spec"]["template"]["spec"]
    pod = knative_pod(function, IMAGE)
    spec = pod["spec"]
    [box] = spec["containers"]
    original = container(ksvc)
    assert box["image"] == IMAGE
    assert box["securityContext"] == original["securityContext"]
    assert box["volumeMounts"] == original["volumeMounts"] and spec["volumes"] == template["volumes"]
    assert box["resources"] == original["resources"]
    assert spec["serviceAccountName"] == template["serviceAccountName"]
    env = {item["name"]: item.get("value") for item in box["env"]}
    assert env["PORT"] == "8080" and env["K_SERVICE"] == ksvc["metadata"]["name"]
    # Secret references stay references: the Pod needs the credentials Secret, as the Service does.
    secrets = {item["name"]: item["valueFrom"]["secretKeyRef"]["name"] for item in box["env"] if "valueFrom" in item}
    assert {key for key, value in container_env(ksvc).items() if value.startswith("secret:")} == set(secrets)
    assert box["ports"] == [{"name": USER_PORT_NAME, "containerPort": 8080, "protocol": "TCP"}]
    assert box["livenessProbe"]["httpGet"] == {"path": "/health/liveness", "port": 8080}
    assert spec["terminationGracePeriodSeconds"] == template["timeoutSeconds"]
    assert not set(KNATIVE_ONLY_FIELDS) & spec.keys()
    # service.yaml itself is left as it was.
    assert "port" not in container(knative_services()[function])["livenessProbe"]["httpGet"]
