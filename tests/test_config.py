"""The configuration loader: one reader for every function, one failure policy."""

from __future__ import annotations

import logging

import pytest

from shared.config import AuthSettings, Env, Settings, SettingsError, load
from shared.notify.config import Settings as NotifySettings


def test_every_variable_reaches_its_setting() -> None:
    settings = Settings.from_env(
        {
            "NAMESPACE": "ci",
            "RUN_WAIT_SECONDS": "5",
            "MASK_SECRETS": "off",
            "TRUSTED_PROXIES": "10.0.0.0/8 192.168.0.0/16",
            "AUTH_FILE": "/etc/creds",
            "AUTH_MAX_FAILURES_PER_USER": "3",
            "LOGS_MAX_STREAMS": "40",
        }
    )
    assert (settings.namespace, settings.run_wait_seconds, settings.mask_secrets) == ("ci", 5.0, False)
    assert [str(net) for net in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.0.0/16"]
    auth, streams = settings.auth, settings.streams
    assert (auth.auth_file, auth.max_failures_per_user, streams.total) == ("/etc/creds", 3, 40)


def test_a_bad_value_is_logged_by_name_and_its_default_used(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    settings = Settings.from_env({"RUN_WAIT_SECONDS": "soon", "HEARTBEAT_SECONDS": "-1", "KUBE_CONNECTIONS": "1.5"})
    assert (settings.run_wait_seconds, settings.heartbeat_seconds, settings.kube_connections) == (60.0, 15.0, 256)
    for name in ("RUN_WAIT_SECONDS", "HEARTBEAT_SECONDS", "KUBE_CONNECTIONS"):
        assert name in caplog.text
    notify = NotifySettings.from_env({"NOTIFY_MAX_ATTEMPTS": "0", "NOTIFY_RETRY_BUDGET_SECONDS": "lots"})
    assert (notify.retry.max_attempts, notify.retry.budget) == (5, 20.0)
    assert "NOTIFY_MAX_ATTEMPTS" in caplog.text and "NOTIFY_RETRY_BUDGET_SECONDS" in caplog.text


@pytest.mark.parametrize(
    ("value", "fit"),
    [
        ("ci.example.com/commit", True),
        ("Commit_SHA.v2", True),
        ("ci.example.com/commit sha", False),  # a selector would split it
        ("CI.example.com/commit", False),  # the prefix is a DNS subdomain: lower case
        ("ci.example.com/", False),
        ("/commit", False),
        ("a" * 64, False),
        ("sha=1,x", False),  # would smuggle a second selector term
    ],
)
def test_the_sha_label_and_annotation_must_be_keys(caplog: pytest.LogCaptureFixture, value: str, fit: bool) -> None:
    caplog.set_level(logging.ERROR)
    settings = Settings.from_env({"RUN_SHA_LABEL": value, "RUN_SHA_ANNOTATION": value})
    expected = (value, value) if fit else ("pipelinesascode.tekton.dev/sha", "")
    assert (settings.run_sha_label, settings.run_sha_annotation) == expected
    assert ("RUN_SHA_LABEL" in caplog.text and "RUN_SHA_ANNOTATION" in caplog.text) is not fit


def test_a_bad_trusted_proxy_list_is_refused_not_dropped() -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": "10.0.0.0/8,nonsense"})


def test_passwords_are_kept_as_given_and_never_shown() -> None:
    auth = load(AuthSettings, Env({"AUTH_USERNAME": "ci", "AUTH_PASSWORD": " pass word "}))
    assert auth.password == " pass word "
    assert "pass word" not in repr(Settings.from_env({"AUTH_USERNAME": "ci", "AUTH_PASSWORD": " pass word "}))
