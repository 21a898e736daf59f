"""An issuer's signing keys: its JWKS, fetched over HTTPS, cached, refreshed on an unknown `kid`.

Every token names its key (`kid`). A kid not in the cached set may be a key the issuer has just
rotated in, so the set is fetched again, but at most once per `jwks_min_refresh_seconds`: tokens
with made-up kids cost one fetch per interval, not one per request. A set older than
`jwks_max_age_seconds` is fetched again too; when the issuer cannot be reached the last set stays
in use.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.auth.oidc_config import Issuer

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024
FETCH_TIMEOUT = 5.0
USABLE_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})  # never "oct": a shared secret is no public key

FetchJson = Callable[[str], Any]
Jwk = Mapping[str, Any]


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached: the token cannot be checked."""


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme != "https":
            raise urllib.error.URLError("redirect to a non-https URL refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def https_fetcher(ca_file: str | None = None, timeout: float = FETCH_TIMEOUT) -> FetchJson:
    """GETs a JSON document over verified HTTPS (CA bundle `ca_file`, else certifi's), size-capped."""
    if ca_file is None:
        import certifi

        ca_file = certifi.where()
    context = ssl.create_default_context(cafile=ca_file)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _HttpsOnlyRedirects())

    def fetch(url: str) -> Any:
        if urlsplit(url).scheme != "https":
            raise ValueError("only https:// URLs are fetched")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 -- https only
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return json.loads(body)

    return fetch


def usable_keys(jwks: Any) -> dict[str, Jwk]:
    """Public signature keys of a JWKS by kid (a key without kid under ""); others are skipped."""
    keys: dict[str, Jwk] = {}
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWK set")
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in USABLE_KEY_TYPES:
            continue
        if key.get("use", "sig") != "sig" or "d" in key:  # encryption keys; private keys published by mistake
            continue
        kid = key.get("kid", "")
        if isinstance(kid, str):
            keys.setdefault(kid, key)
    return keys


class IssuerKeys:
    """The cached JWKS of one issuer; thread-safe, one fetch at a time."""

    def __init__(self, issuer: Issuer, fetch: FetchJson, clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri = issuer.jwks_uri
        self._keys: dict[str, Jwk] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def key(self, kid: str | None) -> Jwk | None:
        """The key `kid` names (None: the only key), fetching the set when it is missing, stale or
        lacks the kid and the rate limit allows; raises KeysUnavailable if there is no set at all."""
        keys = self._keys
        if keys is not None and not self._stale() and self._pick(keys, kid) is not None:
            return self._pick(keys, kid)
        with self._lock:  # concurrent requests wait for one fetch instead of each making their own
            keys = self._keys
            found = self._pick(keys, kid) if keys is not None else None
            if (found is None or self._stale()) and self._may_fetch():
                keys = self._refresh()
                found = self._pick(keys, kid) if keys is not None else None
            if keys is None:
                raise KeysUnavailable(self.issuer.issuer)
            return found

    @staticmethod
    def _pick(keys: Mapping[str, Jwk], kid: str | None) -> Jwk | None:
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def _stale(self) -> bool:
        return self._clock() - self._fetched_at >= self.issuer.jwks_max_age_seconds

    def _may_fetch(self) -> bool:
        last = self._attempted_at
        return last is None or self._clock() - last >= self.issuer.jwks_min_refresh_seconds

    def _refresh(self) -> dict[str, Jwk] | None:
        self._attempted_at = self._clock()
        try:
            if self._jwks_uri is None:
                discovery = self._fetch(self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration")
                uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
                if not isinstance(uri, str) or urlsplit(uri).scheme != "https":
                    raise ValueError("the discovery document names no https jwks_uri")
                self._jwks_uri = uri
            self._keys = usable_keys(self._fetch(self._jwks_uri))
            self._fetched_at = self._clock()
            log.info("OIDC: %d signing keys of %s", len(self._keys), self.issuer.issuer)
        except Exception as err:  # network, TLS, JSON, shape: keep what we had
            log.warning(
                "OIDC: fetching the keys of %s failed: %s: %s", self.issuer.issuer, type(err).__name__, str(err)[:200]
            )
        return self._keys
