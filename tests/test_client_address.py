"""Which address rate limits key on, behind trusted proxies or not (pure request parsing)."""

from __future__ import annotations

import pytest
from flask import Flask

from shared.config import Settings, SettingsError
from shared.http.run_request import client_address
from shared.http.service import Service

app = Flask(__name__)


def address(peer: str, forwarded: str | None, trusted: str) -> str:
    svc = Service(Settings.from_env({"TRUSTED_PROXIES": trusted}))
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    with app.test_request_context("/status/x", headers=headers, environ_base={"REMOTE_ADDR": peer}):
        from flask import request

        return client_address(request, svc)


def test_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert address("203.0.113.9", "1.2.3.4", "") == "203.0.113.9"
    assert address("203.0.113.9", "1.2.3.4", "10.0.0.0/8") == "203.0.113.9"


def test_trusted_proxy_yields_nearest_untrusted_hop() -> None:
    # A client can prepend anything; only the hop the trusted proxy appended counts.
    assert address("10.1.2.3", "6.6.6.6, 198.51.100.7", "10.0.0.0/8") == "198.51.100.7"
    assert address("10.1.2.3", "198.51.100.7, 10.9.9.9", "10.0.0.0/8") == "198.51.100.7"
    assert address("10.1.2.3", None, "10.0.0.0/8") == "10.1.2.3"


def test_bad_trusted_proxies_setting_is_refused() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"TRUSTED_PROXIES": "not-a-network"})
