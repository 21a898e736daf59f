"""A local OIDC issuer for tests: its own CA, an HTTPS server on loopback serving discovery and
JWKS as GitLab and GitHub do, and signing keys that mint tokens (and forged ones)."""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support import LoopbackServer, reply

AUDIENCE = "https://listener.test"


@functools.cache
def _pooled_key(role: str) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: one per role per test session (distinct roles, distinct keys)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _cert(
    subject: str, key: rsa.RSAPrivateKey, issuer_key: rsa.RSAPrivateKey, issuer: str, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class SigningKey:
    def __init__(self, kid: str | None = None, role: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private = _pooled_key(role) if role else rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid}


class Issuer(LoopbackServer):
    """`with Issuer(tmp_path) as issuer:` serves https://127.0.0.1:<port> with its CA in `ca_file`;
    issuers of different `pool`s have different CA and signing keys."""

    def __init__(self, workdir: Path, pool: str = "main") -> None:
        ca_key, server_key = _pooled_key(f"{pool}-ca"), _pooled_key(f"{pool}-server")
        ca = _cert("tpl test CA", ca_key, ca_key, "tpl test CA", ca=True)
        server = _cert("127.0.0.1", server_key, ca_key, "tpl test CA", ca=False)
        self.ca_file = workdir / "oidc-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_file, key_file = workdir / "oidc-server.pem", workdir / "oidc-server.key"
        cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.keys = [SigningKey(role=f"{pool}-signing")]
        self.jwks_requests = 0
        super().__init__(self._handler(), (cert_file, key_file))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/oauth/discovery/keys"}
                elif self.path == "/oauth/discovery/keys":
                    issuer.jwks_requests += 1
                    body = {"keys": [key.jwk() for key in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                reply(self, 200, json.dumps(body).encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    # -- tokens ------------------------------------------------------------------------------
    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A GitLab CI id_token's claims for group/app on a protected main branch."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "project_path:group/app:ref_type:branch:ref:main",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "namespace_path": "group",
            "project_path": "group/app",
            "ref": "main",
            "ref_type": "branch",
            "ref_protected": "true",
            "pipeline_id": "1234",
            "job_id": "5678",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: SigningKey | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})}
        )

    def unsigned(self, **claims: Any) -> str:
        """`alg: none`: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.keys[0].kid}).encode())
        return f"{header}.{_b64(json.dumps(self.claims(**claims)).encode())}."

    def key_confusion(self, **claims: Any) -> str:
        """HS256 with the issuer's *public* key as the HMAC secret: what a verifier that lets the
        token pick the algorithm would accept."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.keys[0].kid}).encode())
        payload = _b64(json.dumps(self.claims(**claims)).encode())
        mac = hmac.new(self.keys[0].public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(mac)}"

    def config(self, **issuer_options: Any) -> dict[str, Any]:
        """An OIDC_CONFIG: this issuer, and group/app's protected refs may read app-ci runs of app."""
        return {
            "issuers": [{"issuer": self.url, "audience": AUDIENCE, **issuer_options}],
            "rules": [
                {
                    "issuer": self.url,
                    "claims": {"project_path": "group/app", "ref_protected": True},
                    "namespaces": ["app-ci"],
                    "run_labels": {"ci.example.com/project": "group-app"},
                }
            ],
        }
