"""A proxy in front of the sandbox's kube-apiserver that can make it fail for chosen paths.

The listener talks plain HTTP to the proxy (its kubeconfig names the proxy and the listener's own
token); the proxy forwards every request over TLS to the real apiserver and streams the answer
back (watches and log follows included), unless `failing(path)` is true: then it answers the 5xx
that an overloaded or broken apiserver gives, as a Kubernetes Status object.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.sandbox.cluster import Cluster, Identity
from tests.support import LoopbackServer, reply

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class ApiserverProxy(LoopbackServer):
    def __init__(self, cluster: Cluster, status: int = 503) -> None:
        self.cluster = cluster
        self.status = status
        self.failing: Callable[[str], bool] = lambda path: False
        self.failed: list[str] = []
        self.before: Callable[[str], None] = lambda path: None  # called with each path before it is forwarded
        upstream = urlsplit(cluster.server)
        context = ssl.create_default_context(cafile=cluster.ca_file)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a body ends when the connection closes: streams pass as they come

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
                pass

            def do_GET(self) -> None:
                if proxy.failing(self.path):
                    proxy.failed.append(self.path)
                    body = {"kind": "Status", "status": "Failure", "message": "injected", "code": proxy.status}
                    reply(self, proxy.status, json.dumps(body).encode())
                    return
                proxy.before(self.path)
                conn = http.client.HTTPSConnection(upstream.hostname, upstream.port, context=context, timeout=600)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in HOP_HEADERS:
                            self.send_header(key, value)
                    self.end_headers()
                    while data := resp.read1(65536):
                        self.wfile.write(data)
                        self.wfile.flush()
                except (OSError, http.client.HTTPException):
                    pass  # either side went away
                finally:
                    conn.close()

        super().__init__(Handler)

    def kubeconfig(self, path: Path, identity: Identity) -> Path:
        """A kubeconfig for `identity` that goes through this proxy."""
        self.cluster.write_kubeconfig(path, identity)
        config = yaml.safe_load(path.read_text())
        config["clusters"][0]["cluster"] = {"server": self.url}
        path.write_text(yaml.safe_dump(config))
        return path
