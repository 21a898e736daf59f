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

A value "false" or "" switches a namespace default off for one run. A project, repository or hook
an annotation names (and the namespace defaults do not) must be in the config's `allow:` list
for the run's namespace or labels (`allow`); otherwise it is refused, logged and counted. States: comma-separated
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

from shared.metrics import notify_refused
from shared.notify.allow import allowed
from shared.notify.config import FileConfig, Settings
from shared.notify.events import RunEvent
from shared.notify.record import RECORD_ANNOTATION
from shared.notify.senders import KINDS, SENDERS
from shared.notify.target import Target, TargetContext, names_in, parse_states

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "tekton-pipeline-listener.dev/"
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
# Keys an annotation may set. Anything that names a URL or a secret is config-only.
ANNOTATION_KEYS = frozenset(
    {"gitlab-project", "github-repo", "sha", "context", "slack", "webhook", "notify-on"}
    | {f"{kind}-notify-on" for kind in KINDS}
)

# The setting that names a target of each kind (what the allow-list is about).
PLACE_KEYS = {"gitlab": "gitlab-project", "github": "github-repo", "slack": "slack", "webhook": "webhook"}

__all__ = ["ANNOTATION_KEYS", "Target", "parse_states", "run_settings", "select_targets"]


def run_settings(event: RunEvent, config: FileConfig) -> dict[str, str]:
    """Namespace defaults overlaid with the run's annotations (config-only keys ignored)."""
    merged = config.namespace_defaults(event.namespace)
    for name, value in event.annotations.items():
        if name.startswith(ANNOTATION_PREFIX):
            key = name[len(ANNOTATION_PREFIX) :]
            if key in ANNOTATION_KEYS:
                merged[key] = value.strip()
            elif name != RECORD_ANNOTATION:  # the notifier's own record is no setting
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


def select_targets(event: RunEvent, settings: Settings, config: FileConfig) -> list[Target]:
    """The run's targets in a stable order. Commit-status targets without a SHA are left out."""
    merged = run_settings(event, config)
    context = merged.get("context") or f"tekton/{event.namespace}/{event.pipeline}"
    ctx = TargetContext(event, merged, config, settings, _sha(event, merged, config), context)
    if (ctx.value("gitlab-project") or ctx.value("github-repo")) and not ctx.sha:
        log.info("%s/%s: no commit SHA (annotation or param), commit statuses skipped", event.namespace, event.name)
    unique: dict[str, Target] = {}
    for target in (target for sender in SENDERS for target in sender.targets(ctx)):
        unique.setdefault(target.key, target)  # one POST per distinct target, however often it is named
    return [t for t in unique.values() if _permitted(t, event, config)]


def _place(target: Target) -> str:
    """What the allow-list matches: the project, the repository, or the hook's name."""
    return target.project or target.repo or target.key.split("|", 1)[1]


def _permitted(target: Target, event: RunEvent, config: FileConfig) -> bool:
    """Operator-set targets always; annotation-chosen ones only within the allow-list."""
    key = PLACE_KEYS[target.kind]
    claimed = event.annotations.get(ANNOTATION_PREFIX + key)
    place = _place(target)
    if claimed is None:
        return True
    configured = names_in(config.namespace_defaults(event.namespace).get(key, ""))
    if place in configured or allowed(config.allow, event.namespace, event.labels, target.kind, place):
        return True
    log.warning(
        "%s/%s: %s target %r refused: not allowed for this namespace (config allow:)",
        event.namespace,
        event.name,
        target.kind,
        place,
    )
    notify_refused(target.kind)
    return False
