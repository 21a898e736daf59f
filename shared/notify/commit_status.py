"""Commit statuses on GitLab and GitHub: one sender each.

GitLab:  POST {GITLAB_URL}/api/v4/projects/:id/statuses/:sha   PRIVATE-TOKEN
         state pending|running|success|failed|canceled, name, target_url, description (<=255)
         400 "Cannot transition status via :run from :running" = already in that state: done.
GitHub:  POST {GITHUB_API_URL}/repos/{owner}/{repo}/statuses/{sha}   Authorization: Bearer,
         Accept: application/vnd.github+json, X-GitHub-Api-Version: 2022-11-28
         state pending|success|failure|error, context, target_url, description (<=140)

State mapping (rank from `events`, reasons from the run model's `outcome`):
    rank 0-1 (queued, started, pending/resolving)  GitLab pending   GitHub pending
    rank 2-3 (running, stopping, finally)          GitLab running   GitHub pending
    successful                                     GitLab success   GitHub success
    failed: Failed, PipelineRunTimeout (a task's
            StepFailed, TaskRunTimeout)            GitLab failed    GitHub failure
    failed: cancelled reasons                      GitLab canceled  GitHub error
    failed: any other reason (validation, ...)     GitLab failed    GitHub error
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from shared.notify.config import DEFAULT_GITHUB_API_URL, DEFAULT_GITLAB_URL
from shared.notify.events import STATES, RunEvent
from shared.notify.protocol import (
    USER_AGENT,
    HttpRequest,
    HttpResponse,
    PostingSender,
    Verdict,
    description,
    post_json,
    truncate,
)
from shared.notify.target import Target, TargetContext
from shared.runs.outcome import CODE_FAILURE_REASONS

log = logging.getLogger(__name__)

GITHUB_API_VERSION = "2022-11-28"
GITHUB_DESCRIPTION_MAX = 140
GITLAB_DESCRIPTION_MAX = 255
GITLAB_TERMINAL = frozenset({"success", "failed", "canceled", "skipped"})
GITHUB_TERMINAL = frozenset({"success", "failure", "error"})
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# The run's code-failure reasons, and a TaskRun's when one of its steps exited non-zero (per-task statuses).
CODE_FAILURES = CODE_FAILURE_REASONS | {"StepFailed"}


class CommitStatusSender(PostingSender):
    """What GitLab and GitHub statuses share: every state by default, a token, the terminal check."""

    kind = forge = ""
    default_states = frozenset(STATES)
    # The setting that names the project or repository, the Target field it goes to, the token's
    # variable. The config file's section is named like the kind (`gitlab:`, `github:`).
    setting = place = token_variable = ""
    # Keys of a status in the commit's list: its name, its state; and the terminal states.
    name_key = state_key = ""
    terminal: frozenset[str] = frozenset()

    def targets(self, ctx: TargetContext) -> list[Target]:
        where = ctx.value(self.setting)
        if not where or not ctx.sha:
            return []
        base = self.base_url(ctx).rstrip("/")
        variable = self.token_variable
        token = ctx.secret(variable, getattr(ctx.config, self.kind).get("token_file"))
        error = self.problem(where) or ("" if token else f"no {self.forge} token ({variable} or {variable}_FILE)")
        key = f"{base}|{where}|{ctx.sha}|{ctx.context}"
        return [ctx.commit_target(self, key, base, token, error, **{self.place: where})]

    def base_url(self, ctx: TargetContext) -> str:
        raise NotImplementedError

    def problem(self, where: str) -> str:
        """Why `where` cannot name a project or repository, or ""."""
        return ""

    def already_terminal(self, target: Target, logs_url: str, response: HttpResponse) -> bool:
        """True if the newest status of our name/context is terminal and belongs to this run (same target_url)."""
        if not logs_url or not 200 <= response.status < 300:
            return False
        try:
            statuses = json.loads(response.body)
        except ValueError:
            return False
        if not isinstance(statuses, list):
            return False
        mine = [s for s in statuses if isinstance(s, Mapping) and s.get(self.name_key) == target.context]
        newest = self.newest(mine)
        if newest is None:
            return False
        return newest.get(self.state_key) in self.terminal and newest.get("target_url") == logs_url

    def newest(self, statuses: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        return statuses[0] if statuses else None

    def status_body(self, event: RunEvent, target: Target, logs_url: str, state: str, limit: int) -> dict[str, Any]:
        body: dict[str, Any] = {"state": state, self.name_key: target.context}
        body["description"] = truncate(description(event), limit)
        if logs_url:
            body["target_url"] = logs_url
        return body


class GitLabSender(CommitStatusSender):
    kind, forge, setting, place, token_variable = "gitlab", "GitLab", "gitlab-project", "project", "GITLAB_TOKEN"
    name_key, state_key, terminal = "name", "status", GITLAB_TERMINAL

    def base_url(self, ctx: TargetContext) -> str:
        # `gitlab-url` may come from the namespace defaults (never from an annotation).
        configured = ctx.merged.get("gitlab-url") or ctx.config.gitlab.get("url")
        return configured or ctx.settings.gitlab_url or DEFAULT_GITLAB_URL

    def request(self, event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
        body = self.status_body(event, target, logs_url, gitlab_state(event), GITLAB_DESCRIPTION_MAX)
        return post_json(f"{_project_path(target)}/statuses/{target.sha}", _gitlab_headers(target), body)

    def classify(self, response: HttpResponse) -> Verdict:
        if response.status == 400 and b"Cannot transition status" in response.body:
            return "done"
        return super().classify(response)

    def precheck(self, target: Target) -> HttpRequest | None:
        query = urlencode({"name": target.context, "per_page": 100})
        url = f"{_project_path(target)}/repository/commits/{target.sha}/statuses?{query}"
        return HttpRequest("GET", url, _gitlab_headers(target))

    def newest(self, statuses: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        # GitLab lists oldest first within a name unless sorted; take the highest id.
        return max(statuses, key=lambda s: s.get("id") if isinstance(s.get("id"), int) else -1, default=None)


class GitHubSender(CommitStatusSender):
    kind, forge, setting, place, token_variable = "github", "GitHub", "github-repo", "repo", "GITHUB_TOKEN"
    name_key, state_key, terminal = "context", "state", GITHUB_TERMINAL

    def base_url(self, ctx: TargetContext) -> str:
        return ctx.config.github.get("api_url") or ctx.settings.github_api_url or DEFAULT_GITHUB_API_URL

    def problem(self, where: str) -> str:
        return "" if _REPO.match(where) else f"github-repo {where!r} is not owner/repo"

    def request(self, event: RunEvent, target: Target, logs_url: str) -> HttpRequest:
        body = self.status_body(event, target, logs_url, github_state(event), GITHUB_DESCRIPTION_MAX)
        return post_json(f"{target.url}/repos/{target.repo}/statuses/{target.sha}", _github_headers(target), body)

    def precheck(self, target: Target) -> HttpRequest | None:
        url = f"{target.url}/repos/{target.repo}/commits/{target.sha}/statuses?per_page=100"
        return HttpRequest("GET", url, _github_headers(target))


def gitlab_state(event: RunEvent) -> str:
    if event.state == "successful":
        return "success"
    if event.state == "failed":
        return "canceled" if event.cancelled else "failed"
    return "pending" if event.rank <= 1 else "running"


def github_state(event: RunEvent) -> str:
    if event.state == "successful":
        return "success"
    if event.state == "failed":
        return "failure" if event.reason in CODE_FAILURES else "error"
    return "pending"


def _project_path(target: Target) -> str:
    return f"{target.url}/api/v4/projects/{quote(target.project, safe='')}"


def _gitlab_headers(target: Target) -> dict[str, str]:
    return {"PRIVATE-TOKEN": target.secret or "", "Accept": "application/json", "User-Agent": USER_AGENT}


def _github_headers(target: Target) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {target.secret or ''}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
        "User-Agent": USER_AGENT,
    }
