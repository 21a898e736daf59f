"""What a test needs from the machine. Without it the test is skipped with one line saying what
is missing, except under CI, where that is a failure: CI must never pass without it."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(what: str, missing: str | None) -> None:
    """Returns if `missing` is None; else skips the test (`what: missing`), or fails it under CI."""
    if missing is None:
        return
    if under_ci():
        pytest.fail(f"{what}: {missing} (CI must run it)")
    pytest.skip(f"{what}: {missing}")


def need_real_node(what: str = "real-pod tests need a machine that can run a kubelet") -> None:
    from tests.sandbox.node import unavailable_reason

    need(what, unavailable_reason())
