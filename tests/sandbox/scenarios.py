"""Declarative Tekton run scenarios for the simulator, and a registry of named factories.

A `Scenario` is a pipeline (tasks, finally tasks) plus how the run behaves: what each step
logs, its exit code, its pace, where it pauses, and run-level events (cancel, timeout, late
appearance, pods deleted). `SCENARIOS[name](**knobs)` builds one; knobs are keyword-only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .objects import StepSpec

Lines = Sequence[bytes] | Callable[[], Iterable[bytes]]


@dataclass
class Step:
    """One step. `lines` are written to its container one by one, each followed by a newline.

    `lines` is a sequence or a zero-argument callable returning an iterable (a generator
    function), so a scenario can be replayed. Items must not contain b"\\n".
    """

    name: str
    lines: Lines = ()
    exit_code: int | Sequence[int] = 0  # per attempt; the last value repeats
    interval: float = 0.0  # seconds between lines
    hold: threading.Event | None = None  # after the lines, wait for this before terminating
    forever: bool = False  # after the lines, keep running until cancelled / timed out
    final_newline: bool = True  # False: the last line is written without its newline
    image: str = "alpine:3.20"
    script: str | None = None
    command: list[str] = field(default_factory=list)
    on_error: str | None = None  # "continue": a failure does not stop the task
    image_pull_error: bool = False  # the image cannot be pulled: the container never starts
    env: list[dict] = field(default_factory=list)  # e.g. secretKeyRef entries, as in a Task step
    # On the real node: a busybox sh snippet that prints the output itself (large logs), instead
    # of a script that prints `lines`; `lines` stays what a reader must receive.
    real_script: str | None = None
    # On the real node: the container exits 1 after `lines` once, the kubelet restarts it (the
    # pod gets restartPolicy OnFailure) and the new instance prints these, then exits as usual.
    restart_lines: Lines | None = None

    def exit_for(self, attempt: int) -> int:
        if isinstance(self.exit_code, int):
            return self.exit_code
        codes = list(self.exit_code)
        return codes[min(attempt, len(codes) - 1)]

    def iter_lines(self) -> Iterator[bytes]:
        source = self.lines() if callable(self.lines) else self.lines
        yield from source

    def iter_restart_lines(self) -> Iterator[bytes]:
        source = self.restart_lines() if callable(self.restart_lines) else (self.restart_lines or ())
        yield from source

    def spec(self) -> StepSpec:
        if self.script is None and not self.command:
            return StepSpec(
                self.name,
                self.image,
                script=f"#!/bin/sh\necho running {self.name}\n",
                on_error=self.on_error,
                env=list(self.env),
            )
        return StepSpec(
            self.name, self.image, self.script, list(self.command), on_error=self.on_error, env=list(self.env)
        )


@dataclass
class Sidecar:
    name: str
    image: str = "redis:7.2"
    lines: Sequence[bytes] = ()  # written when the sidecar starts


@dataclass
class Task:
    """A pipeline task, run as one TaskRun (and one pod per attempt)."""

    name: str
    steps: list[Step]
    run_after: list[str] = field(default_factory=list)
    sidecars: list[Sidecar] = field(default_factory=list)
    retries: int = 0
    when_false: bool = False  # a `when` that evaluates to false: the task is skipped
    labels: dict[str, str] = field(default_factory=dict)

    def when(self) -> list[dict[str, object]]:
        return [{"input": "false", "operator": "in", "values": ["true"]}] if self.when_false else []


@dataclass
class Scenario:
    """A PipelineRun and how it plays out."""

    kind: str
    tasks: list[Task]
    finally_tasks: list[Task] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    pipeline_timeout: float = 3600.0  # `timeouts.pipeline`; the simulator enforces it
    cancel_after: float | None = None  # request `spec.status: Cancelled` this long after start
    appear_after: float = 0.0  # the PipelineRun is created this long after `play`
    never: bool = False  # nothing is ever created
    delete_pods: bool = False  # delete each TaskRun's pod (and its logs) once it finished
    tick: float = 0.03  # pause between a pod's state changes, as a kubelet's sync would
    max_duration: float = 120.0  # a bound on the whole play; past it the run errors


# -- line generators -------------------------------------------------------------------------------
def numbered(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix} line {i + 1}/{count}".encode() for i in range(count)]


def large_lines(total_bytes: int, long_line: int = 20 * 1024) -> Callable[[], Iterator[bytes]]:
    """A generator function: ~`total_bytes` of output with long lines and non-UTF-8 bytes."""

    def generate() -> Iterator[bytes]:
        written, i = 0, 0
        specials = [
            b"latin-1 caf\xe9 na\xefve",  # not UTF-8
            b"invalid \xff\xfe\xfd bytes",
            "utf-8 multibyte: \u00fc \u20ac \U0001f600".encode(),
            b"carriage\rreturn and\ttab",
        ]
        while written < total_bytes:
            if i % 97 == 0:
                line = b"L%08d " % i + (b"0123456789abcdef" * (long_line // 16 + 1))[:long_line]
            elif i % 13 == 0:
                line = b"S%08d " % i + specials[(i // 13) % len(specials)]
            else:
                line = b"N%08d " % i + b"x" * (i % 150)
            written += len(line) + 1
            i += 1
            yield line
        yield b"last line without a trailing newline"

    return generate


# -- factories -------------------------------------------------------------------------------------
def success(*, lines: int = 5, interval: float = 0.05) -> Scenario:
    """Parallel and sequential tasks: `checkout` -> (`unit`, `lint`) -> `package`."""
    return Scenario(
        "success",
        tasks=[
            Task("checkout", [Step("clone", numbered("clone", lines), interval=interval)]),
            Task(
                "unit",
                [Step("install", numbered("install", lines), interval=interval), Step("test", numbered("test", lines))],
                run_after=["checkout"],
            ),
            Task("lint", [Step("lint", numbered("lint", lines), interval=interval)], run_after=["checkout"]),
            Task("package", [Step("build", numbered("build", lines), interval=interval)], run_after=["unit", "lint"]),
        ],
    )


def failure(*, lines: int = 4, exit_code: int = 2, interval: float = 0.01) -> Scenario:
    """Fixture 02 without the retry: `build` exits non-zero, `package` is skipped, `publish` too."""
    return Scenario(
        "failure",
        tasks=[
            Task(
                "compile",
                [
                    Step("build", numbered("build", lines), exit_code=exit_code, interval=interval),
                    Step("package", numbered("package", lines)),
                ],
            ),
            Task("publish", [Step("push", numbered("push", lines))], run_after=["compile"]),
        ],
        finally_tasks=[Task("cleanup", [Step("rm", [b"cleanup"])])],
    )


def retries(*, lines: int = 3, retries: int = 1, succeed_last: bool = False, interval: float = 0.01) -> Scenario:
    """Fixture 02: `compile` fails on every attempt (or succeeds on the last), retried `retries` times."""
    codes = [2] * retries + [0 if succeed_last else 2]
    return Scenario(
        "retries",
        tasks=[
            Task(
                "compile",
                [
                    Step("build", numbered("build", lines), exit_code=codes, interval=interval),
                    Step("package", numbered("package", lines)),
                ],
                retries=retries,
            ),
            Task("publish", [Step("push", numbered("push", lines))], run_after=["compile"]),
        ],
        finally_tasks=[Task("cleanup", [Step("rm", [b"cleanup"])])],
    )


def when_skipped(*, lines: int = 3) -> Scenario:
    """Fixture 01's `deploy`: skipped by a `when`; the PipelineRun ends `Completed`."""
    return Scenario(
        "when-skipped",
        tasks=[
            Task("test", [Step("pytest", numbered("pytest", lines))]),
            Task("deploy", [Step("deploy", [b"deploying"])], run_after=["test"], when_false=True),
        ],
    )


def with_finally(*, lines: int = 3, fail: bool = False) -> Scenario:
    """A DAG then `finally` tasks, which start once every DAG task is done."""
    return Scenario(
        "finally",
        tasks=[
            Task("build", [Step("make", numbered("make", lines), exit_code=1 if fail else 0)]),
            Task("test", [Step("pytest", numbered("pytest", lines))], run_after=["build"]),
        ],
        finally_tasks=[
            Task("notify", [Step("send", [b"pipeline finished"])]),
            Task("report", [Step("summary", numbered("summary", lines))]),
        ],
    )


def timeout(*, pipeline_timeout: float = 1.5, lines: int = 3) -> Scenario:
    """Fixture 05: `timeouts.pipeline` elapses while a step runs; PipelineRunTimeout."""
    return Scenario(
        "timeout",
        tasks=[
            Task("e2e", [Step("run-suite", numbered("suite", lines), forever=True, command=["sleep", "3600"])]),
            Task("after", [Step("x", [b"never"])], run_after=["e2e"]),
        ],
        pipeline_timeout=pipeline_timeout,
    )


def cancelled(*, cancel_after: float | None = 1.0, lines: int = 3) -> Scenario:
    """Fixture 04: the run is cancelled while `long` runs (`cancel_after=None`: only `run.cancel()`)."""
    return Scenario(
        "cancelled",
        tasks=[
            Task("long", [Step("work", numbered("work", lines), forever=True, command=["sleep", "3600"])]),
            Task("after-long", [Step("x", [b"never"], command=["true"])], run_after=["long"]),
        ],
        cancel_after=cancel_after,
    )


def pod_deleted(*, lines: int = 3) -> Scenario:
    """The run succeeds, then its pods are deleted: the logs are gone."""
    return Scenario(
        "pod-deleted",
        tasks=[
            Task("build", [Step("make", numbered("make", lines))]),
            Task("test", [Step("pytest", numbered("pytest", lines))], run_after=["build"]),
        ],
        delete_pods=True,
    )


def late(*, appear_after: float = 2.0, lines: int = 3) -> Scenario:
    """The PipelineRun is created `appear_after` seconds after `play`."""
    return Scenario("late", tasks=[Task("build", [Step("make", numbered("make", lines))])], appear_after=appear_after)


def never() -> Scenario:
    """Nothing is ever created."""
    return Scenario("never", tasks=[], never=True)


def large_output(*, size: int = 32 * 1024 * 1024, long_line: int = 20 * 1024) -> Scenario:
    """Tens of MB: lines over 16 KiB, non-UTF-8 bytes, a last line without a newline."""
    return Scenario(
        "large-output",
        tasks=[
            Task(
                "dump",
                [
                    Step("head", [b"starting dump"]),
                    Step("dump", large_lines(size, long_line), final_newline=False),
                ],
            )
        ],
    )


def sidecar(*, lines: int = 3) -> Scenario:
    """Fixture 01's `unit-tests`: a `redis` sidecar, stopped with the nop image after the steps."""
    return Scenario(
        "sidecar",
        tasks=[
            Task(
                "unit-tests",
                [Step("install", numbered("install", lines)), Step("pytest", numbered("pytest", lines))],
                sidecars=[Sidecar("redis", lines=[b"Ready to accept connections tcp"])],
            )
        ],
    )


def image_pull_failure(*, lines: int = 3, image: str = "registry.invalid/no/such-image:1.0") -> Scenario:
    """A step image cannot be pulled: TaskRunImagePullFailed, its pod deleted, the pipeline fails."""
    return Scenario(
        "image-pull-failure",
        tasks=[
            Task("fetch", [Step("clone", numbered("clone", lines))]),
            Task(
                "build",
                [Step("compile", [b"never"], image=image, image_pull_error=True), Step("after", [b"never"])],
                run_after=["fetch"],
            ),
            Task("deploy", [Step("apply", [b"never"])], run_after=["build"]),
        ],
    )


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "success": success,
    "failure": failure,
    "retries": retries,
    "when-skipped": when_skipped,
    "finally": with_finally,
    "timeout": timeout,
    "cancelled": cancelled,
    "pod-deleted": pod_deleted,
    "late": late,
    "never": never,
    "large-output": large_output,
    "sidecar": sidecar,
    "image-pull-failure": image_pull_failure,
}
