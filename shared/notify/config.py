"""Settings of the notifier: environment, the `NOTIFY_CONFIG` file and mounted Secrets.

Environment (all optional):

    NOTIFY_CONFIG                 path of the YAML/JSON config file (read again when it changes)
    LISTENER_URL                  base URL of the listener; statuses link to LISTENER_URL/logs/<ns>/<run>
    GITLAB_URL                    GitLab base URL (default https://gitlab.com)
    GITHUB_API_URL                GitHub REST base URL (default https://api.github.com)
    GITLAB_TOKEN[_FILE]           GitLab token (api scope), sent as PRIVATE-TOKEN
    GITHUB_TOKEN[_FILE]           GitHub token (commit statuses: write), sent as Bearer
    SLACK_WEBHOOK_URL[_FILE]      the default Slack incoming webhook (`.../slack: "true"`)
    WEBHOOK_URL                   the default generic webhook (`.../webhook: "true"`)
    WEBHOOK_SECRET[_FILE]         its HMAC-SHA256 key
    NOTIFY_HTTP_TIMEOUT_SECONDS   per request (default 5)
    NOTIFY_MAX_ATTEMPTS           per target and event (default 5)
    NOTIFY_BACKOFF_BASE_SECONDS   first backoff (default 0.5, doubled per attempt)
    NOTIFY_BACKOFF_MAX_SECONDS    longest backoff (default 8)
    NOTIFY_RETRY_BUDGET_SECONDS   total time one target may take for one event (default 20)
    NOTIFY_STATE_MAX_RUNS         runs remembered for ordering/dedup (default 10000)

`X_FILE` wins over `X`. Files are read on every use, so a rotated Secret is picked up without a
restart. Secret values are never logged. Bad values follow the one failure policy of
`shared.config` (logged by name, default used).

The config file (every key optional):

    defaults: {notify-on: all}             # for every namespace, same keys as the annotations
    namespaces:
      demo: {gitlab-project: group/app, slack: team-a, gitlab-url: https://gitlab.example.com}
    gitlab: {url: https://gitlab.example.com, token_file: /var/run/secrets/notify-gitlab/token}
    github: {api_url: https://api.github.com, token_file: /var/run/secrets/notify-github/token}
    slack: {webhooks: {team-a: {url_file: /var/run/secrets/notify-slack/team-a}}}
    webhooks: {audit: {url: https://audit.example.com/tekton, secret_file: /var/run/secrets/notify-audit/key}}
    params: {sha: [revision, commit-sha]}   # params read when the annotation is absent
    allow:                                  # where annotations may send statuses (`allow`)
      - {namespaces: [demo], gitlab: [group/app], slack: [team-a]}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from shared.config import Env, load, setting
from shared.notify.allow import Rule, parse_rules
from shared.watched_files import WatchedFile

log = logging.getLogger(__name__)

DEFAULT_GITLAB_URL = "https://gitlab.com"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_SHA_PARAMS = ("revision", "commit-sha", "git-revision", "sha")


class ConfigError(ValueError):
    """The config file is unreadable or malformed."""


@dataclass(frozen=True)
class RetryPolicy:
    """Per target and event: request timeout, attempts, backoff schedule, total time budget."""

    timeout: float = setting("NOTIFY_HTTP_TIMEOUT_SECONDS", 5.0, low=0.001)
    max_attempts: int = setting("NOTIFY_MAX_ATTEMPTS", 5, low=1)
    backoff_base: float = setting("NOTIFY_BACKOFF_BASE_SECONDS", 0.5)
    backoff_max: float = setting("NOTIFY_BACKOFF_MAX_SECONDS", 8.0)
    budget: float = setting("NOTIFY_RETRY_BUDGET_SECONDS", 20.0)


@dataclass(frozen=True)
class FileConfig:
    """The parsed `NOTIFY_CONFIG` file."""

    defaults: Mapping[str, str] = field(default_factory=dict)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    gitlab: Mapping[str, str] = field(default_factory=dict)
    github: Mapping[str, str] = field(default_factory=dict)
    slack_webhooks: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    webhooks: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Where annotations may send statuses (`allow`): rules by namespace / label selector.
    allow: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> FileConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("the config must be a mapping")

        def strings(value: Any, where: str) -> dict[str, str]:
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping")
            out = {}
            for k, v in value.items():
                if isinstance(v, bool):
                    v = "true" if v else "false"
                if not isinstance(v, str | int | float):
                    raise ConfigError(f"{where}.{k} must be a string")
                out[str(k)] = str(v)
            return out

        def nested(value: Any, where: str) -> dict[str, dict[str, str]]:
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping")
            return {str(k): strings(v, f"{where}.{k}") for k, v in value.items()}

        params: dict[str, tuple[str, ...]] = {}
        for key, names in (raw.get("params") or {}).items():
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"params.{key} must be a param name or a list of them")
            params[str(key)] = tuple(names)
        slack = raw.get("slack") or {}
        if not isinstance(slack, Mapping):
            raise ConfigError("slack must be a mapping")
        return cls(
            defaults=strings(raw.get("defaults"), "defaults"),
            namespaces=nested(raw.get("namespaces"), "namespaces"),
            gitlab=strings(raw.get("gitlab"), "gitlab"),
            github=strings(raw.get("github"), "github"),
            slack_webhooks=nested(slack.get("webhooks"), "slack.webhooks"),
            webhooks=nested(raw.get("webhooks"), "webhooks"),
            params=params,
            allow=parse_rules(raw.get("allow")),
        )

    def namespace_defaults(self, namespace: str) -> dict[str, str]:
        merged = dict(self.defaults)
        merged.update(self.namespaces.get(namespace, {}))
        return merged

    def param_names(self, key: str) -> tuple[str, ...]:
        if key in self.params:
            return self.params[key]
        return DEFAULT_SHA_PARAMS if key == "sha" else ()


class ConfigSource:
    """Loads `NOTIFY_CONFIG` and reads it again when the file changes: a mounted ConfigMap is
    updated by swapping its `..data` symlink, which may leave the size and mtime as they were, so
    the version is told by `WatchedFile` (real path and inode as well)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file = WatchedFile(path) if path else None
        self._lock = threading.Lock()
        self._config = FileConfig()
        self._error: str | None = None

    def get(self) -> FileConfig:
        """The current config; raises ConfigError while the file is missing or broken."""
        if self._file is None:
            return self._config
        with self._lock:
            if self._file.changed() or self._error:
                self._load(self._file)
            return self._config

    def _load(self, file: WatchedFile) -> None:
        # Marked before reading: a change while reading is seen by the next `get`.
        file.mark()
        try:
            text = Path(file.path).read_text(encoding="utf-8")
        except OSError as e:
            self._failed(f"cannot read NOTIFY_CONFIG {file.path}: {e.strerror}")
        try:
            raw = json.loads(text) if file.path.endswith(".json") else yaml.safe_load(text)
            self._config = FileConfig.parse(raw)
        except (ValueError, yaml.YAMLError) as e:
            self._failed(f"NOTIFY_CONFIG {file.path} is invalid: {e}")
        self._error = None

    def _failed(self, error: str) -> NoReturn:
        # Read again on the next use, whatever the file's state says.
        self._error = error
        raise ConfigError(error) from None


@dataclass(frozen=True)
class Settings:
    """Everything from the environment; secrets are looked up on use (`env.secret`), never stored here."""

    env: Env
    listener_url: str
    gitlab_url: str
    github_api_url: str
    retry: RetryPolicy
    state_max_runs: int
    config: ConfigSource

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(environ)
        return cls(
            env=env,
            listener_url=env.text("LISTENER_URL").rstrip("/"),
            gitlab_url=env.text("GITLAB_URL").rstrip("/"),
            github_api_url=env.text("GITHUB_API_URL").rstrip("/"),
            retry=load(RetryPolicy, env),
            state_max_runs=env.integer("NOTIFY_STATE_MAX_RUNS", 10000, low=1),
            config=ConfigSource(env.text("NOTIFY_CONFIG") or None),
        )

    def logs_url(self, namespace: str, name: str) -> str:
        return f"{self.listener_url}/logs/{namespace}/{name}" if self.listener_url else ""
