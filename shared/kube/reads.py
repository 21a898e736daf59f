"""GET requests straight on the official client's connection pool, with its auth header.

The client's generic path (`ApiClient.param_serialize` and `call_api`) cost more CPU than all the
rest of a `/status` request: it sanitises every parameter again, and it asks the configuration
for the token on every call, whose refresh hook re-applies the whole kubeconfig (setting `host`
again reads every proxy variable of the environment). A GET needs none of that per request. The
pool (TLS, client certificates, proxy), the host, the default headers and the auth header all
still come from the same ApiClient; only the auth header is asked for at most once per
AUTH_REFRESH_SECONDS, so a token the client's hook renews (an expiring kubeconfig token, five
minutes before it expires; the in-cluster token, re-read every minute) is sent at most that much
later. Writes are rare and keep the client's path (its body serialisation).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client

AUTH_REFRESH_SECONDS = 1.0
# (valid until, host, headers, query parameters the auth adds)
_Auth = tuple[float, str, dict[str, str], list[tuple[str, Any]]]


class Reads:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._pool = api_client.rest_client.pool_manager
        self._auth: _Auth = (-math.inf, "", {}, [])
        self._lock = threading.Lock()

    def get(self, path: str, params: list[tuple[str, Any]], timeout: Any) -> urllib3.BaseHTTPResponse:
        """The open response (`preload_content=False`), whatever its status; transport errors raise
        urllib3's exceptions, as the client's path does with retries off."""
        _, host, headers, auth_params = self._current_auth()
        query = "&".join(f"{key}={quote(_text(value))}" for key, value in (*params, *auth_params))
        url = host + path + ("?" + query if query else "")
        # A copy each: the cached headers are shared by every thread.
        return self._pool.urlopen("GET", url, headers=dict(headers), timeout=_timeout(timeout), preload_content=False)

    def _current_auth(self) -> _Auth:
        auth = self._auth
        now = time.monotonic()
        if now < auth[0]:
            return auth
        with self._lock:  # one refresh at a time (the hook rewrites the configuration)
            if now < self._auth[0]:
                return self._auth
            headers = {"Accept": "application/json", **self._api.default_headers}
            params: list[tuple[str, Any]] = []
            # The client's own auth: its refresh hook, the api_key's prefix and alias.
            self._api.update_params_for_auth(headers, params, ["BearerToken"], None, "GET", None)
            self._auth = (now + AUTH_REFRESH_SECONDS, self._api.configuration.host, headers, params)
            return self._auth


def _text(value: Any) -> str:
    # As the client encodes query values: booleans lowercase, the rest as str().
    return str(value).lower() if isinstance(value, bool) else str(value)


def _timeout(timeout: Any) -> urllib3.Timeout | None:
    # As the client reads `_request_timeout`: one number is a total, a pair (connect, read).
    if isinstance(timeout, int | float) and timeout:
        return urllib3.Timeout(total=timeout)
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return None
