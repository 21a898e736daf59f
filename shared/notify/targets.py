"""Which targets a run is reported to: PipelineRun annotations over per-namespace defaults.

Keys (annotation `tekton-pipeline-listener.dev/<key>`, or the same `<key>` under `defaults:` /
`namespaces.<ns>:` in the config file; an annotation wins over the namespace default):

    gitlab-project   GitLab project id or full path (`group/app`) -> GitLab commit status
    github-repo      `owner/repo`                                  -> GitHub commit status
    sha              the commit; else the first run param named in config `params.sha`
                     (default: revision, commit-sha, git-revision, sha) holding a hex SHA
    context          status name (GitLab `name`, GitHub `context`); default tekton/<ns>/<pipeline>
    slack            "true" (SLACK_WEBHOOK_URL) or comma-separated names of config `slack.webhooks`
    webhook          "true" (WEBHOOK_URL) or comma-separated names of config `webhooks`
    notify-on        states for every target of the run
    <kind>-notify-on states for one kind: gitlab-, github-, slack-, webhook-notify-on
    gitlab-url       config only (never an annotation: it receives the token)

A value "false" or "" switches a namespace default off for one run. States: comma-separated
`queued,started,running,unknown,successful,failed`, or `all`, `terminal` (successful,failed),
`failure` (failed), `success` (successful). Defaults: commit statuses `all`, Slack `terminal`,
webhooks `all`.

URLs and secrets are never taken from annotations (whoever may create a PipelineRun must not be
able to send the GitLab token, or signed requests, to a host of their choice): annotations only
pick names the config file defines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.notify.config import DEFAULT_GITHUB_API_URL, DEFAULT_GITLAB_URL, FileConfig, Settings
from shared.notify.events import STATES, TERMINAL_STATES, RunEvent

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "tekton-pipeline-listener.dev/"
KINDS = ("gitlab", "github", "slack", "webhook")
_DEFAULT_STATES = {
    "gitlab": frozenset(STATES),
    "github": frozenset(STATES),
    "slack": TERMINAL_STATES,
    "webhook": frozenset(STATES),
}
_ALIASES = {
    "all": frozenset(STATES),
    "terminal": TERMINAL_STATES,
    "finished": TERMINAL_STATES,
    "failure": frozenset({"failed"}),
    "success": frozenset({"successful"}),
}
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_OFF = ("", "false", "no", "off", "none")
# Keys an annotation may set. Anything that names a URL or a secret is config-only.
ANNOTATION_KEYS = frozenset(
    {"gitlab-project", "github-repo", "sha", "context", "slack", "webhook", "notify-on"}
    | {f"{kind}-notify-on" for kind in KINDS}
)


def parse_states(value: str | None, default: frozenset[str]) -> frozenset[str]:
    if value is None or not value.strip():
        return default
    states: set[str] = set()
    bad = []
    for token in (t.strip().lower() for t in value.split(",")):
        if token in _ALIASES:
            states |= _ALIASES[token]
        elif token in STATES:
            states.add(token)
        elif token:
            bad.append(token)
    if bad:
        log.warning("notify-on: ignoring unknown states %s", ", ".join(bad))
    return frozenset(states) if states or not bad else default


@dataclass(frozen=True)
class Target:
    """One place a run's state is reported to. `error` set: misconfigured, counted as a failure."""

    kind: str
    key: str
    states: frozenset[str]
    url: str = ""
    project: str = ""
    repo: str = ""
    sha: str = ""
    context: str = ""
    secret: str | None = field(default=None, repr=False)
    error: str = ""

    def wants(self, state: str) -> bool:
        return state in self.states


def run_settings(event: RunEvent, config: FileConfig) -> dict[str, str]:
    """Namespace defaults overlaid with the run's annotations (config-only keys ignored)."""
    merged = config.namespace_defaults(event.namespace)
    for name, value in event.annotations.items():
        if name.startswith(ANNOTATION_PREFIX):
            key = name[len(ANNOTATION_PREFIX) :]
            if key in ANNOTATION_KEYS:
                merged[key] = value.strip()
            else:
                log.warning(
                    "%s/%s: annotation %s is not read (config-only or unknown)", event.namespace, event.name, name
                )
    return merged


def _sha(event: RunEvent, merged: Mapping[str, str], config: FileConfig) -> str:
    candidates = [merged.get("sha", "")]
    candidates += [event.params.get(p, "") for p in config.param_names("sha")]
    for value in candidates:
        if value and _SHA.match(value.strip()):
            return value.strip().lower()
    return ""


def _names(value: str | None) -> list[str]:
    if value is None or value.strip().lower() in _OFF:
        return []
    return [n.strip() for n in value.split(",") if n.strip()]


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def select_targets(event: RunEvent, settings: Settings, config: FileConfig) -> list[Target]:
    """The run's targets in a stable order. Commit-status targets without a SHA are left out."""
    merged = run_settings(event, config)
    env = settings.env
    run_states = merged.get("notify-on")

    def states(kind: str) -> frozenset[str]:
        return parse_states(merged.get(f"{kind}-notify-on"), parse_states(run_states, _DEFAULT_STATES[kind]))

    context = merged.get("context") or f"tekton/{event.namespace}/{event.pipeline}"
    sha = _sha(event, merged, config)
    targets: list[Target] = []
    project = merged.get("gitlab-project", "").strip()
    repo = merged.get("github-repo", "").strip()
    if (project or repo) and not sha:
        log.info("%s/%s: no commit SHA (annotation or param), commit statuses skipped", event.namespace, event.name)
    if project and project.lower() not in _OFF and sha:
        base = (
            merged.get("gitlab-url") or config.gitlab.get("url") or settings.gitlab_url or DEFAULT_GITLAB_URL
        ).rstrip("/")
        token = env.secret("GITLAB_TOKEN", config.gitlab.get("token_file"))
        targets.append(
            Target(
                kind="gitlab",
                key=f"gitlab|{base}|{project}|{sha}|{context}",
                states=states("gitlab"),
                url=base,
                project=project,
                sha=sha,
                context=context,
                secret=token,
                error="" if token else "no GitLab token (GITLAB_TOKEN or GITLAB_TOKEN_FILE)",
            )
        )
    if repo and repo.lower() not in _OFF and sha:
        base = (config.github.get("api_url") or settings.github_api_url or DEFAULT_GITHUB_API_URL).rstrip("/")
        token = env.secret("GITHUB_TOKEN", config.github.get("token_file"))
        error = "" if token else "no GitHub token (GITHUB_TOKEN or GITHUB_TOKEN_FILE)"
        if not _REPO.match(repo):
            error = f"github-repo {repo!r} is not owner/repo"
        targets.append(
            Target(
                kind="github",
                key=f"github|{base}|{repo}|{sha}|{context}",
                states=states("github"),
                url=base,
                repo=repo,
                sha=sha,
                context=context,
                secret=token,
                error=error,
            )
        )
    for name in _names(merged.get("slack")):
        if name.lower() in ("true", "yes", "default"):
            url = env.secret("SLACK_WEBHOOK_URL")
            error = "" if url else "no Slack webhook (SLACK_WEBHOOK_URL or SLACK_WEBHOOK_URL_FILE)"
            name = "default"
        elif name in config.slack_webhooks:
            entry = config.slack_webhooks[name]
            url = env.secret(entry.get("url_env", "") or f"SLACK_WEBHOOK_URL_{_env_name(name)}", entry.get("url_file"))
            error = "" if url else f"Slack webhook {name!r} has no URL (url_file)"
        else:
            url, error = None, f"Slack webhook {name!r} is not in the config"
        targets.append(
            Target(kind="slack", key=f"slack|{name}", states=states("slack"), secret=url, context=context, error=error)
        )
    for name in _names(merged.get("webhook")):
        if name.lower() in ("true", "yes", "default"):
            url, secret, name = env.text("WEBHOOK_URL"), env.secret("WEBHOOK_SECRET"), "default"
        elif name in config.webhooks:
            entry = config.webhooks[name]
            url = entry.get("url", "")
            secret = env.secret(
                entry.get("secret_env", "") or f"WEBHOOK_SECRET_{_env_name(name)}", entry.get("secret_file")
            )
        else:
            url, secret = "", None
        error = ""
        if not url:
            error = f"webhook {name!r} has no URL"
        elif not secret:
            error = f"webhook {name!r} has no secret (secret_file / WEBHOOK_SECRET[_FILE])"
        targets.append(
            Target(
                kind="webhook",
                key=f"webhook|{name}",
                states=states("webhook"),
                url=url,
                secret=secret,
                context=context,
                sha=sha,
                error=error,
            )
        )
    return targets
