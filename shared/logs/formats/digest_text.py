"""The failure digest as lines of text, for the text-like formats (text, GitLab, GitHub).

No line starts with `[`, so the digest never reads as a `[task : step] line` of the log."""

from __future__ import annotations

from typing import Any

from shared.logs.controls import neutralised_text
from shared.logs.formats.tails import Tails


def with_tails(status: dict[str, Any], tails: Tails) -> dict[str, Any]:
    """The status body with the last lines of each failed step in its digest."""
    digest = status.get("digest")
    if not isinstance(digest, dict) or tails.lines <= 0:
        return status
    tasks = []
    for task in digest.get("failedTasks") or []:
        steps = [{**step, "lastLines": tails.last(task.get("pod", ""), step.get("step", ""))} for step in task["steps"]]
        tasks.append({**task, "steps": steps})
    return {**status, "digest": {**digest, "failedTasks": tasks}}


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    if seconds < 60:
        return f" after {seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f" after {minutes}m{rest:02d}s"


def digest_lines(name: str, digest: dict[str, Any]) -> list[str]:
    """What a person reads first: the run's failure, then each failed task and step with its last
    lines, then the skipped tasks."""
    head = f"Failure digest: PipelineRun {name} {digest.get('outcome')}{duration(digest.get('durationSeconds'))}"
    out = [head, f"  {digest.get('reason')}: {digest.get('message')}"]
    for task in digest.get("failedTasks") or []:
        retries = f", {task['retries']} retries" if task.get("retries") else ""
        out.append(
            f"  FAILED task {task['task']}{duration(task.get('durationSeconds'))}{retries}: "
            f"{task.get('reason')}: {task.get('message')}"
        )
        for step in task.get("steps") or []:
            code = f"exit code {step['exitCode']}" if step.get("exitCode") is not None else "never started"
            why = f" ({step['reason']})" if step.get("reason") else ""
            message = f": {step['message']}" if step.get("message") else ""
            out.append(f"    step {step['step']}: {code}{why}{duration(step.get('durationSeconds'))}{message}")
            lines = step.get("lastLines") or []
            if lines:
                out.append(f"      last {len(lines)} lines:")
                out.extend(f"      | {line}" for line in lines)
    for skipped in digest.get("skippedTasks") or []:
        out.append(f"  SKIPPED task {skipped['task']}: {skipped.get('reason')}")
    # As text mode shows step output and its own status line: a control moves nothing here
    # either, be it in a step's last lines or in a message a step wrote (its termination message).
    return [neutralised_text(line) for line in out]
