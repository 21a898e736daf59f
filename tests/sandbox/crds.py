"""CRDs from `tests/fixtures`, adapted so kube-apiserver 1.20 accepts them.

Adaptations (see tests/fixtures/README.md): no conversion webhook (Tekton's webhook is absent),
only the storage version served, no `default: ""` (1.20 rejects it; a list-map key that had one
becomes required instead), no `x-kubernetes-validations` (CEL arrived in 1.25).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TEKTON_CRDS = ["300-pipeline.yaml", "300-task.yaml", "300-pipelinerun.yaml", "300-taskrun.yaml"]


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _adapt_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_adapt_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "x-kubernetes-validations":
            continue
        if key == "default" and value == "":
            continue
        out[key] = _adapt_schema(value)
    # This apiserver build reads any "" in a custom resource as null and rejects it, so the
    # `podName: ""` Tekton writes while a TaskRun awaits its retry cannot be stored; the
    # simulator omits podName then, which needs it optional (additive, for the run simulator).
    if "podName" in out.get("required", []):
        out["required"] = [name for name in out["required"] if name != "podName"]
        if not out["required"]:
            del out["required"]
    keys = out.get("x-kubernetes-list-map-keys")
    items = out.get("items")
    if keys and isinstance(items, dict):
        required = list(items.get("required", []))
        for name in keys:
            if name not in required:
                required.append(name)
        items["required"] = required
    return out


def adapt_crd(crd: dict[str, Any]) -> dict[str, Any]:
    crd = copy.deepcopy(crd)
    spec = crd["spec"]
    spec.pop("conversion", None)
    spec["conversion"] = {"strategy": "None"}
    versions = [v for v in spec["versions"] if v.get("storage")]
    for version in versions:
        version["served"] = True
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is not None:
            version["schema"]["openAPIV3Schema"] = _adapt_schema(schema)
    spec["versions"] = versions
    return crd


def tekton_crds() -> list[dict[str, Any]]:
    return [adapt_crd(doc) for name in TEKTON_CRDS for doc in load_documents(FIXTURES / "tekton" / "crds" / name)]


def extra_crds() -> list[dict[str, Any]]:
    """Knative Serving and Gateway API CRDs, for manifest tests."""
    paths = [FIXTURES / "knative" / "serving-service-crd.yaml", *sorted((FIXTURES / "gateway-api").glob("*-crd.yaml"))]
    return [
        adapt_crd(doc)
        for path in paths
        for doc in load_documents(path)
        if doc.get("kind") == "CustomResourceDefinition"
    ]
