"""Where a run's statuses may go: configured per namespace or label selector, never claimed by the run.

The config file's `allow:` is a list of rules:

    allow:
      - namespaces: [team-a, team-a-ci]     # optional: any namespace when absent
        selector: "team=a,tier!=test"       # optional: a label selector on the PipelineRun
        gitlab: [group/app, "group/libs/*"] # project paths or ids, as written in the annotation
        github: ["example/*"]               # owner/repo
        slack: [team-a]                     # names of config slack.webhooks ("default": SLACK_WEBHOOK_URL)
        webhook: [audit]                    # names of config webhooks ("default": WEBHOOK_URL)

A target chosen by a run's annotation is sent to only if a rule that matches the run (namespace
and selector) lists a pattern (`fnmatch`, case-sensitive) matching it. A target set by the
operator for the namespace (config `defaults:` / `namespaces.<ns>:`, no annotation) needs no rule.
Anything else is refused: one warning naming the run, kind and value, and the counter
`tpl_notify_refused_targets_total{kind}`. Selectors are equality-based (`k=v`, `k==v`, `k!=v`, `k`,
`!k`, comma-separated, all must hold).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("gitlab", "github", "slack", "webhook")


class AllowError(ValueError):
    """The `allow:` section is malformed."""


@dataclass(frozen=True)
class Rule:
    namespaces: tuple[str, ...] | None
    selector: tuple[tuple[str, str, str], ...]  # (key, op, value), op in = != exists !exists
    patterns: Mapping[str, tuple[str, ...]]

    def matches_run(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return all(_holds(term, labels) for term in self.selector)

    def allows(self, kind: str, value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, pattern) for pattern in self.patterns.get(kind, ()))


def _holds(term: tuple[str, str, str], labels: Mapping[str, str]) -> bool:
    key, op, value = term
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    if op == "=":
        return labels.get(key) == value
    return labels.get(key) != value


def parse_selector(text: str) -> tuple[tuple[str, str, str], ...]:
    terms = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            terms.append((key.strip(), "=", value.strip()))
        elif raw.startswith("!"):
            terms.append((raw[1:].strip(), "!exists", ""))
        else:
            terms.append((raw, "exists", ""))
        if not terms[-1][0] or " " in terms[-1][0]:
            raise AllowError(f"allow: bad selector term {raw!r}")
    return tuple(terms)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str | int) for v in value):
        raise AllowError(f"{where} must be a list of strings")
    return tuple(str(v) for v in value)


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise AllowError("allow must be a list of rules")
    rules = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise AllowError(f"allow[{i}] must be a mapping")
        unknown = set(item) - {"namespaces", "selector", *KINDS}
        if unknown:
            raise AllowError(f"allow[{i}]: unknown keys {sorted(unknown)}")
        namespaces = _names(item["namespaces"], f"allow[{i}].namespaces") if "namespaces" in item else None
        selector = item.get("selector") or ""
        if not isinstance(selector, str):
            raise AllowError(f"allow[{i}].selector must be a string")
        patterns = {kind: _names(item.get(kind), f"allow[{i}].{kind}") for kind in KINDS}
        rules.append(Rule(namespaces, parse_selector(selector), patterns))
    return tuple(rules)


def allowed(rules: Sequence[Rule], namespace: str, labels: Mapping[str, str], kind: str, value: str) -> bool:
    return any(rule.matches_run(namespace, labels) and rule.allows(kind, value) for rule in rules)
