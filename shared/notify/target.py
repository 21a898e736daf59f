"""One place a run's state is reported to, and what a sender needs to pick a run's targets."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.notify.config import FileConfig, Settings
from shared.notify.events import STATES, TERMINAL_STATES, RunEvent

log = logging.getLogger(__name__)

_ALIASES = {
    "all": frozenset(STATES),
    "terminal": TERMINAL_STATES,
    "finished": TERMINAL_STATES,
    "failure": frozenset({"failed"}),
    "success": frozenset({"successful"}),
}
_OFF = ("", "false", "no", "off", "none")
_DEFAULT_NAMES = ("true", "yes", "default")


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


class Kind(Protocol):
    """What a target needs to know of its sender (the whole protocol: `shared.notify.protocol`)."""

    kind: str
    default_states: frozenset[str]


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
    # A per-task sibling of a commit-status target (`tasks`): the pipeline task it reports.
    task: str = ""
    # The sender that builds this target's requests and reads its answers.
    sender: Any = field(default=None, repr=False, compare=False)

    def wants(self, state: str) -> bool:
        return state in self.states


def names_in(text: str) -> list[str]:
    """Comma-separated names; "true"/"yes"/"default" become "default". Listed twice (or "true"
    and "default") is one name: one target, one POST."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return list(dict.fromkeys("default" if n.lower() in _DEFAULT_NAMES else n for n in names))


@dataclass(frozen=True)
class TargetContext:
    """One run's event with its merged settings (namespace defaults under annotations)."""

    event: RunEvent
    merged: Mapping[str, str]
    config: FileConfig
    settings: Settings
    sha: str
    context: str

    def value(self, key: str) -> str:
        """A setting, "" when it is unset or switched off ("false", "off", ...)."""
        value = self.merged.get(key, "").strip()
        return "" if value.lower() in _OFF else value

    def names(self, key: str) -> list[str]:
        return names_in(self.value(key))

    def states(self, sender: Kind) -> frozenset[str]:
        run_states = parse_states(self.merged.get("notify-on"), sender.default_states)
        return parse_states(self.merged.get(f"{sender.kind}-notify-on"), run_states)

    def secret(self, name: str, file_path: str | None = None) -> str | None:
        return self.settings.env.secret(name, file_path)

    def commit_target(self, sender: Kind, key: str, url: str, token: str | None, error: str, **fields: Any) -> Target:
        """A commit-status target: this run's commit and status name on the forge at `url`."""
        fields.update(url=url, sha=self.sha, context=self.context, secret=token, error=error)
        return self.target(sender, key, **fields)

    def target(self, sender: Kind, key: str, **fields: Any) -> Target:
        return Target(kind=sender.kind, key=f"{sender.kind}|{key}", states=self.states(sender), sender=sender, **fields)


def env_name(name: str) -> str:
    """A config name as it appears in an environment variable: `team-a` -> `TEAM_A`."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()
