"""A function's Knative Service from service.yaml as the plain Pod Knative's revision controller
would run for it, for a real node without Knative (issue 17, the in-cluster test).

Kept from service.yaml's own template: labels, serviceAccountName, the container's env (Secret
references included), resources, probes, securityContext, volumeMounts and volumes. Done as
Knative's BuildPodSpec/makeServingContainer do: the container port renamed `user-port`, `PORT`,
`K_SERVICE`, `K_CONFIGURATION` and `K_REVISION` added to the env, the probes' port filled in,
`terminationGracePeriodSeconds` set to the revision's `timeoutSeconds`, service links off (the
config-defaults default). Left out: the Knative-only fields and the queue-proxy sidecar, so here
the kubelet runs the readiness probe itself (queue-proxy would) and nothing caps concurrency.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.test_manifests import knative_services

# Revision spec fields that are Knative's own, not a PodSpec's.
KNATIVE_ONLY_FIELDS = ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds")
USER_PORT_NAME = "user-port"


def knative_pod(function: str, image: str, name: str | None = None) -> dict[str, Any]:
    ksvc = knative_services()[function]
    service = ksvc["metadata"]["name"]
    revision = f"{service}-00001"
    template = copy.deepcopy(ksvc["spec"]["template"])
    spec = {key: value for key, value in template["spec"].items() if key not in KNATIVE_ONLY_FIELDS}
    [box] = spec["containers"]
    [port] = box["ports"]
    user_port = port["containerPort"]
    box["image"] = image
    box["imagePullPolicy"] = "Never"  # imported into the node's containerd, never pulled
    box["ports"] = [{"name": USER_PORT_NAME, "containerPort": user_port, "protocol": "TCP"}]
    box["env"] = [
        *box.get("env", []),
        {"name": "PORT", "value": str(user_port)},
        {"name": "K_REVISION", "value": revision},
        {"name": "K_CONFIGURATION", "value": service},
        {"name": "K_SERVICE", "value": service},
    ]
    for probe in ("readinessProbe", "livenessProbe"):
        box[probe]["httpGet"]["port"] = user_port
    spec["terminationGracePeriodSeconds"] = template["spec"]["timeoutSeconds"]
    spec["enableServiceLinks"] = False
    labels = {
        **template["metadata"].get("labels", {}),
        "serving.knative.dev/service": service,
        "serving.knative.dev/configuration": service,
        "serving.knative.dev/revision": revision,
    }
    metadata = {
        "name": name or f"{revision}-deployment-0",
        "labels": labels,
        "annotations": dict(template["metadata"].get("annotations", {})),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
