"""A test's needs from the machine: skipped with one line without them, failed under CI."""

from __future__ import annotations

import pytest

from tests import needs
from tests.sandbox import node


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_need_skips_with_one_line_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    needs.need("the live page test needs chromium", None)  # nothing missing: the test goes on
    with pytest.raises(pytest.skip.Exception, match=r"^the live page test needs chromium: no chromium$"):
        needs.need("the live page test needs chromium", "no chromium")


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_a_missing_need_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    needs.need("the real node", None)
    with pytest.raises(pytest.fail.Exception, match=r"the real node: not root.*\(CI must run it\)"):
        needs.need("the real node", "not root")


def test_the_real_node_need_asks_the_node_why_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(node, "unavailable_reason", lambda: "no cgroups mounted under /sys/fs/cgroup")
    with pytest.raises(pytest.skip.Exception, match=r"kubelet: no cgroups mounted under /sys/fs/cgroup$"):
        needs.need_real_node()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no cgroups"):
        needs.need_real_node()
    monkeypatch.setattr(node, "unavailable_reason", lambda: None)
    needs.need_real_node()
