"""`format=github`: GitHub Actions workflow commands: a `::group::` per step, `::error` annotations
for the failed steps, the failure digest.

A step's output is not trusted to hold workflow commands (`::add-mask::`, `##[error]` anywhere in a
line, `::stop-commands::`…): the stream stops command processing at once with
`::stop-commands::<token>` and resumes it, with `::<token>::`, only around its own commands. The
token is random per stream, or the client's (`stop_commands=<token>`), so the streams of one CI job
that resumes after cuts share one token and a stream cut while commands were stopped does not
leave the next one's commands unread.
"""

from __future__ import annotations

import secrets

from shared.logs.controls import neutralised_text
from shared.logs.events import Event, RunStarted
from shared.logs.formats.framed import FramedWriter, Section


def escape_data(value: str) -> str:
    """GitHub's escaping of a command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """GitHub's escaping of a command's property value."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


class GitHubWriter(FramedWriter):
    def __init__(self, *args: object, token: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.token = token or secrets.token_hex(16)

    def commands(self, lines: list[str]) -> list[str]:
        """Our own commands, with processing resumed around them."""
        return [f"::{self.token}::", *lines, f"::stop-commands::{self.token}"] if lines else []

    def write(self, event: Event) -> bytes:
        if isinstance(event, RunStarted):
            return self.inner.write(event) + self.line(f"::stop-commands::{self.token}")
        return super().write(event)

    def before_last_line(self) -> list[str]:
        # The job's later output is read with commands on again; the stream's last line stays the
        # run's status (or the cut's), which a client looks for, and holds no step output.
        return [f"::{self.token}::"]

    def open_section(self, section: Section, is_step: bool) -> list[str]:
        return self.commands([f"::group::{escape_data(section.title)}"]) if is_step else []

    def close_section(self, section: Section, is_step: bool) -> list[str]:
        return self.commands(["::endgroup::"]) if is_step else []

    def run_failed(self, status: dict) -> list[str]:
        errors = []
        digest = status.get("digest") or {}
        for task in digest.get("failedTasks") or []:
            steps = task.get("steps") or []
            for step in steps:
                code = f"exit code {step['exitCode']}" if step.get("exitCode") is not None else "never started"
                title = f"Tekton {task['task']} : {step['step']} failed ({code})"
                last = step.get("lastLines") or []
                errors.append(_error(title, "\n".join([f"{task.get('reason')}: {task.get('message')}", *last[-5:]])))
            if not steps:
                title = f"Tekton {task['task']} {task.get('outcome')}"
                errors.append(_error(title, f"{task.get('reason')}: {task.get('message')}"))
        if not errors:
            title = f"Tekton PipelineRun {status.get('name')} {digest.get('outcome')}"
            errors.append(_error(title, f"{digest.get('reason')}: {digest.get('message')}"))
        return self.commands(errors)


def _error(title: str, message: str) -> str:
    """An `::error` annotation. Its message holds what steps printed and what the API says: a
    control in any of it is shown as text, as in the log (`shared.logs.controls`)."""
    return f"::error title={escape_property(title)}::{escape_data(neutralised_text(message))}"
