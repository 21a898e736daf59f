"""Kubernetes naming rules, checked before any API call."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def namespace_problem(value: str) -> str | None:
    """Why `value` is not a valid namespace (an RFC 1123 label), or None."""
    if not value:
        return "namespace is empty"
    if len(value) > 63:
        return "namespace is longer than 63 characters"
    if not _LABEL.match(value):
        return "namespace must consist of lower case alphanumeric characters or '-', and start and end with one"
    return None


def object_name_problem(value: str) -> str | None:
    """Why `value` is not a valid object name (an RFC 1123 subdomain), or None."""
    if not value:
        return "name is empty"
    if len(value) > 253:
        return "name is longer than 253 characters"
    if not _SUBDOMAIN.match(value):
        return (
            "name must consist of lower case alphanumeric characters, '-' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None
