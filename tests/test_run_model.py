"""The run model and status mapping on objects Tekton v1.15.0's reconcilers wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.runs.model import attempts_of, pod_containers, succeeded_condition
from shared.runs.status import HTTP_CODES, Outcome, outcome_of, run_status

BUNDLES = Path(__file__).parent / "fixtures" / "tekton" / "runs" / "bundles"


def bundle(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads((BUNDLES / f"{name}.final.json").read_text())
    return {(i["object"]["kind"], i["object"]["metadata"]["name"]): i["object"] for i in data["items"]}


@pytest.mark.parametrize(
    ("scenario", "run", "outcome", "code"),
    [
        ("01-pipelinerun-success", "build-and-test-run-x7k2p", Outcome.SUCCEEDED, 200),
        ("02-pipelinerun-failed-with-retry", "release-run-9fz4q", Outcome.FAILED, 422),
        ("04-pipelinerun-cancelled", "nightly-run-h5c2n", Outcome.CANCELLED, 422),
        ("05-pipelinerun-timeout", "e2e-run-p3w8x", Outcome.TIMED_OUT, 422),
    ],
)
def test_final_pipelinerun_outcomes(scenario: str, run: str, outcome: Outcome, code: int) -> None:
    obj = bundle(scenario)[("PipelineRun", run)]
    assert outcome_of(obj) is outcome
    assert HTTP_CODES[outcome] == code
    body = run_status(obj)
    cond = succeeded_condition(obj)
    assert cond is not None
    # The seed's four fields, taken from the Succeeded condition.
    assert {k: body[k] for k in ("message", "reason", "type", "status")} == {
        "message": cond.message,
        "reason": cond.reason,
        "type": "Succeeded",
        "status": cond.status,
    }
    assert body["name"] == run and body["outcome"] == str(outcome)


def test_succeeded_condition_is_found_by_type_not_position() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Succeeded", "status": "False", "reason": "Failed", "message": "boom"},
                {"type": "TrustedResourcesVerified", "status": "True", "reason": "ok", "message": "ok"},
            ]
        }
    }
    assert outcome_of(obj) is Outcome.FAILED


@pytest.mark.parametrize(
    ("conditions", "outcome"),
    [
        (None, Outcome.PENDING),
        ([], Outcome.PENDING),
        ([{"type": "Succeeded", "status": "Unknown", "reason": "Running"}], Outcome.RUNNING),
        ([{"type": "Succeeded", "status": "Unknown", "reason": "PipelineRunPending"}], Outcome.PENDING),
        ([{"type": "Succeeded", "status": "True", "reason": "Completed"}], Outcome.SUCCEEDED),
        ([{"type": "Succeeded", "status": "False", "reason": "StepFailed"}], Outcome.FAILED),
        ([{"type": "Succeeded", "status": "False", "reason": "CouldntGetPipeline"}], Outcome.FAILED),
        ([{"type": "Succeeded", "status": "False", "reason": "Cancelled"}], Outcome.CANCELLED),
        ([{"type": "Succeeded", "status": "False", "reason": "PipelineRunTimeout"}], Outcome.TIMED_OUT),
    ],
)
def test_outcome_mapping(conditions: list | None, outcome: Outcome) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "r"}, "status": {"conditions": conditions} if conditions else {}}
    assert outcome_of(obj) is outcome
    body = run_status(obj)  # a run without conditions is reported, never a crash
    assert body["outcome"] == str(outcome)


def test_running_and_failed_codes_differ_and_only_success_is_2xx() -> None:
    assert HTTP_CODES[Outcome.RUNNING] != HTTP_CODES[Outcome.FAILED]
    assert [o for o, c in HTTP_CODES.items() if 200 <= c < 300] == [Outcome.SUCCEEDED]


def test_step_containers_follow_pod_spec_order_not_status_order() -> None:
    pod = bundle("01-pipelinerun-success")[("Pod", "build-and-test-run-x7k2p-unit-tests-pod")]
    # containerStatuses are name-sorted (sidecar first); the spec order is the step order.
    assert pod["status"]["containerStatuses"][0]["name"] == "sidecar-redis"
    assert [c.name for c in pod_containers(pod)] == ["install", "pytest"]
    assert [c.name for c in pod_containers(pod, sidecars=True)] == ["install", "pytest", "redis"]
    assert all(c.state == "terminated" for c in pod_containers(pod))


def test_ten_steps_sort_in_spec_order() -> None:
    names = [f"step-{i}" for i in range(1, 12)]
    pod = {
        "spec": {"containers": [{"name": n} for n in names]},
        "status": {"containerStatuses": [{"name": n, "state": {"running": {}}} for n in sorted(names)]},
    }
    assert [c.container for c in pod_containers(pod)] == names


def test_retry_attempts_come_from_retries_status() -> None:
    objs = bundle("02-pipelinerun-failed-with-retry")
    taskrun = objs[("TaskRun", "release-run-9fz4q-compile")]
    attempts = attempts_of(taskrun)
    assert [a.pod for a in attempts] == ["release-run-9fz4q-compile-pod", "release-run-9fz4q-compile-pod-retry1"]
    assert [a.index for a in attempts] == [0, 1]
    assert {a.task for a in attempts} == {"compile"}


def test_task_summaries_include_skipped_tasks() -> None:
    objs = bundle("01-pipelinerun-success")
    run = objs[("PipelineRun", "build-and-test-run-x7k2p")]
    taskruns = [o for (kind, _), o in objs.items() if kind == "TaskRun"]
    tasks = {t["name"]: t for t in run_status(run, taskruns)["tasks"]}
    assert tasks["deploy"]["outcome"] == "skipped"
    assert tasks["fetch-source"]["outcome"] == "succeeded"
    assert tasks["notify"]["outcome"] == "succeeded"


@pytest.mark.parametrize(
    ("policy", "exit_code", "phase", "restarting"),
    [
        ("Never", 1, "Running", False),  # Tekton's pods: a step never runs twice
        ("OnFailure", 1, "Running", True),
        ("OnFailure", 0, "Running", False),
        ("Always", 0, "Running", True),
        ("Always", 1, "Failed", False),  # the pod has ended: nothing restarts
    ],
)
def test_a_terminated_container_the_kubelet_starts_again(
    policy: str, exit_code: int, phase: str, restarting: bool
) -> None:
    pod = {
        "spec": {"restartPolicy": policy, "containers": [{"name": "step-a"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "step-a",
                    "restartCount": 2,
                    "state": {"terminated": {"exitCode": exit_code, "finishedAt": "2026-12-03T08:00:00Z"}},
                }
            ],
        },
    }
    (container,) = pod_containers(pod)
    assert container.restarting is restarting
    assert (container.restarts, container.finished_at) == (2, "2026-12-03T08:00:00Z")
