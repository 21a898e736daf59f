"""The OIDC configuration file (`OIDC_CONFIG`): which issuers are trusted and what their tokens may read.

    issuers:
      - issuer: https://gitlab.example.com          # the token's `iss`, exactly
        audience: https://listener.example.com      # the token's `aud` must contain it
        algorithms: [RS256]                         # optional; asymmetric algorithms only
        jwks_uri: https://gitlab.example.com/oauth/discovery/keys   # optional; else discovery
        leeway_seconds: 30                          # optional; clock skew allowed on exp/nbf/iat
        jwks_max_age_seconds: 3600                  # optional; keys are fetched again after this
        jwks_min_refresh_seconds: 60                # optional; at most one fetch per this, whatever the kids
    rules:
      - issuer: https://gitlab.example.com
        claims: {project_path: group/app, ref_protected: true}   # every claim must equal (a list: any of)
        namespaces: [app-ci]                        # or "*"
        run_labels: {ci.example.com/project: group-app}           # optional; runs must carry these labels

The first rule whose claims all match grants its namespaces (and run labels); a token no rule
matches is refused with 403. A rule needs at least one claim: an issuer such as gitlab.com signs
tokens for every project on it. Entries that do not parse are skipped and logged without their
values; a file that does not parse accepts no token until it is fixed (fail closed). The file is
read again when it changes (`ConfigFile`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from shared.auth.credentials import parse_namespaces
from shared.watched_files import WatchedFile

log = logging.getLogger(__name__)

# Asymmetric signatures only: `none` and HS* (a shared secret, or a public key misused as one) never.
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_CONFIG_BYTES = 1024 * 1024
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256",)
    jwks_uri: str | None = None
    leeway_seconds: float = 30.0
    jwks_max_age_seconds: float = 3600.0
    jwks_min_refresh_seconds: float = 60.0


@dataclass(frozen=True)
class Rule:
    issuer: str
    claims: tuple[tuple[str, frozenset[str]], ...]
    namespaces: frozenset[str] | None
    run_labels: tuple[tuple[str, str], ...] = ()

    def matches(self, claims: Mapping[str, Any]) -> bool:
        return all(name in claims and claim_text(claims[name]) in allowed for name, allowed in self.claims)


@dataclass(frozen=True)
class OidcConfig:
    issuers: Mapping[str, Issuer]
    rules: tuple[Rule, ...]


NOTHING_TRUSTED = OidcConfig({}, ())


def claim_text(value: object) -> str | None:
    """A claim value as rules compare it: GitLab sends `"true"`, YAML gives `True`; both are "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None  # lists and objects never match a rule


def _https(url: object, what: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
        raise ValueError(f"{what} must be an https:// URL")
    return url


def _seconds(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
        raise ValueError(f"{key} must be a number of seconds (0-86400)")
    return float(value)


def parse_issuer(raw: Any) -> Issuer:
    if not isinstance(raw, dict):
        raise ValueError("an issuer is a mapping")
    audience = raw.get("audience")
    if not isinstance(audience, str) or not audience:
        raise ValueError("audience is required: without it a token minted for any other service would do")
    algorithms = raw.get("algorithms", ["RS256"])
    if not isinstance(algorithms, list) or not algorithms or not set(algorithms) <= ALLOWED_ALGORITHMS:
        raise ValueError(f"algorithms must be a non-empty list of {', '.join(sorted(ALLOWED_ALGORITHMS))}")
    jwks_uri = raw.get("jwks_uri")
    return Issuer(
        issuer=_https(raw.get("issuer"), "issuer"),
        audience=audience,
        algorithms=tuple(algorithms),
        jwks_uri=_https(jwks_uri, "jwks_uri") if jwks_uri is not None else None,
        leeway_seconds=_seconds(raw, "leeway_seconds", 30.0),
        jwks_max_age_seconds=_seconds(raw, "jwks_max_age_seconds", 3600.0),
        jwks_min_refresh_seconds=_seconds(raw, "jwks_min_refresh_seconds", 60.0),
    )


def _allowed_values(name: str, value: Any) -> tuple[str, frozenset[str]]:
    values = value if isinstance(value, list) else [value]
    texts = {claim_text(item) for item in values}
    if not values or None in texts:
        raise ValueError(f"claim {name!r} must be a string, number, boolean or a list of them")
    return name, frozenset(text for text in texts if text is not None)


def parse_rule(raw: Any, issuers: Mapping[str, Issuer]) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError("a rule is a mapping")
    issuer = raw.get("issuer")
    if issuer not in issuers:
        raise ValueError("issuer must be one of the issuers listed")
    claims = raw.get("claims")
    if not isinstance(claims, dict) or not claims or not all(isinstance(name, str) for name in claims):
        raise ValueError("claims must map at least one claim name to its value")
    namespaces = raw.get("namespaces")
    if isinstance(namespaces, list) and all(isinstance(item, str) for item in namespaces):
        namespaces = ",".join(namespaces)
    if not isinstance(namespaces, str):
        raise ValueError("namespaces must be '*' or a list of namespace names")
    labels = raw.get("run_labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _LABEL_KEY.match(k) and _LABEL_VALUE.match(v)
        for k, v in labels.items()
    ):
        raise ValueError("run_labels must map label keys to label values (Kubernetes label syntax)")
    return Rule(
        issuer=issuer,
        claims=tuple(sorted(_allowed_values(name, value) for name, value in claims.items())),
        namespaces=parse_namespaces(namespaces),
        run_labels=tuple(sorted(labels.items())),
    )


def parse_config(text: str, source: str = "OIDC_CONFIG") -> tuple[OidcConfig, list[str]]:
    """The issuers and rules that parse, and problems (entry numbers and reasons, no values).
    Raises ValueError when the file as a whole is unusable."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{source} is not valid YAML") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("issuers"), list) or not isinstance(raw.get("rules"), list):
        raise ValueError(f"{source} must be a mapping with the lists 'issuers' and 'rules'")
    problems: list[str] = []
    issuers: dict[str, Issuer] = {}
    for number, item in enumerate(raw["issuers"], start=1):
        try:
            parsed = parse_issuer(item)
        except ValueError as err:
            problems.append(f"{source} issuer {number}: {err}; ignored")
            continue
        issuers.setdefault(parsed.issuer, parsed)
    rules: list[Rule] = []
    for number, item in enumerate(raw["rules"], start=1):
        try:
            rules.append(parse_rule(item, issuers))
        except ValueError as err:
            problems.append(f"{source} rule {number}: {err}; ignored")
    return OidcConfig(issuers, tuple(rules)), problems


def load_config(path: str) -> OidcConfig | None:
    """The file's configuration, problems logged; None (OIDC off, fail closed) if it is unusable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ValueError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
        config, problems = parse_config(data.decode("utf-8"), path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) else str(err)
        log.error("OIDC configuration %s is unusable (%s): no OIDC tokens are accepted", path, reason)
        return None
    for problem in problems:
        log.error("%s", problem)
    log.info("OIDC: %d issuers, %d rules from %s", len(config.issuers), len(config.rules), path)
    return config


class ConfigFile(WatchedFile):
    """OIDC_CONFIG and the version last loaded (a ConfigMap volume: see `shared.watched_files`)."""

    def load(self) -> OidcConfig:
        self.mark()
        return load_config(self.path) or NOTHING_TRUSTED
