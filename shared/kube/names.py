"""Kubernetes naming rules, checked before any API call."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def namespace_problem(value: str) -> str | None:
    """Why `value` is not a valid namespace (an RFC 1123 label), or None."""
    rule = "must consist of lower case alphanumeric characters or '-', and start and end with one"
    return _problem(value, "namespace", 63, _LABEL, rule)


def object_name_problem(value: str) -> str | None:
    """Why `value` is not a valid object name (an RFC 1123 subdomain), or None."""
    rule = (
        "must consist of lower case alphanumeric characters, '-' or '.', "
        "and start and end with an alphanumeric character"
    )
    return _problem(value, "name", 253, _SUBDOMAIN, rule)


# A key's name and a label value follow one rule (a value may also be empty; ours never are).
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_QUALIFIED_RULE = "must consist of alphanumeric characters, '-', '_' or '.', and start and end with an alphanumeric one"
LABEL_VALUE_MAX = 63


def key_problem(value: str) -> str | None:
    """Why `value` is not a valid label or annotation key (`[prefix/]name`), or None."""
    prefix, slash, name = value.rpartition("/")
    if slash and (problem := _problem(prefix, "key prefix", 253, _SUBDOMAIN, "must be a DNS subdomain")):
        return problem
    return _problem(name, "key name", 63, _QUALIFIED, _QUALIFIED_RULE)


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value (`key=value` in a selector), or None."""
    return _problem(value, "label value", LABEL_VALUE_MAX, _QUALIFIED, _QUALIFIED_RULE)


def _problem(value: str, what: str, longest: int, pattern: re.Pattern[str], rule: str) -> str | None:
    if not value:
        return f"{what} is empty"
    if len(value) > longest:
        return f"{what} is longer than {longest} characters"
    # fullmatch: with match, `$` would also accept a name ending in a newline.
    if not pattern.fullmatch(value):
        return f"{what} {rule}"
    return None
