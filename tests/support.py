"""Running the listener for tests the way it runs for users: a real process on a real port."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.events import LogLines
from tests.sandbox.cluster import LISTENER_NAMESPACE, LISTENER_SERVICE_ACCOUNT, Cluster, free_port
from tests.sandbox.scenarios import Scenario, Step, Task

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "ci-user", "s3cret-pa55word"


def shipped_role() -> dict[str, Any]:
    """The Role from service.yaml: tests run the listener with exactly these rights."""
    for doc in yaml.safe_load_all((ROOT / "service.yaml").read_text()):
        if doc and doc.get("kind") == "Role":
            return doc
    raise AssertionError("service.yaml has no Role")


def grant_listener(cluster: Cluster, namespace: str) -> None:
    """Binds the shipped Role in `namespace` to the listener's ServiceAccount identity."""
    role = shipped_role()
    cluster.ensure_namespace(namespace)
    cluster.apply({**role, "metadata": {**role["metadata"], "namespace": namespace}})
    cluster.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role["metadata"]["name"], "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": LISTENER_SERVICE_ACCOUNT, "namespace": LISTENER_NAMESPACE}],
        }
    )


def grant_secret_reads(cluster: Cluster, namespace: str, names: list[str] | None = None) -> None:
    """The extra RBAC an operator grants for masking: deploy/secret-masking-rbac.yaml, as shipped;
    with `names`, deploy/secret-masking-rbac-named.yaml listing these Secrets."""
    manifest = "secret-masking-rbac.yaml" if names is None else "secret-masking-rbac-named.yaml"
    for doc in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()):
        obj = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
        if doc["kind"] == "Role" and names is not None:
            obj["rules"] = [{**rule, "resourceNames": names} for rule in doc["rules"]]
        if doc["kind"] == "RoleBinding":
            subject = {"kind": "ServiceAccount", "name": LISTENER_SERVICE_ACCOUNT, "namespace": LISTENER_NAMESPACE}
            obj["subjects"] = [subject]
        cluster.apply(obj)


def put_secret(
    cluster: Cluster, namespace: str, name: str, data: dict[str, bytes], labels: dict[str, str] | None = None
) -> None:
    """Creates or replaces the Secret `name` with `data`."""
    metadata = {"name": name, "namespace": namespace, "labels": labels or {}}
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": encoded})


def env_ref(env: str, name: str, key: str) -> dict:
    """A container's env entry `env` from key `key` of the Secret `name`."""
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def secret_scenario(
    lines: list[bytes], secret: str = "", key: str = "token", exit_code: int = 0, name: str = "masked"
) -> Scenario:
    """One task `deploy`, one step `push` that prints `lines` with key `key` of Secret `secret`
    (`deploy-token`) in its env: what masking reads."""
    step = Step("push", lines, exit_code=exit_code, env=[env_ref("TOKEN", secret or "deploy-token", key)])
    return Scenario(name, tasks=[Task("deploy", [step])])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy, and returns that: for state another
    process or the API holds, which offers no event to block on."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
    return value


class LoopbackServer:
    """`handler` served on 127.0.0.1 (a port of its own) by a daemon thread while entered; HTTPS
    with `cert_chain` (certificate file, key file). For the stand-ins tests put beside the listener."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], cert_chain: tuple[Path, Path] | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if cert_chain is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert_chain)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if cert_chain else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


JSON = {"Content-Type": "application/json"}


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str] = JSON) -> None:
    """A whole answer from a stand-in's handler: `headers` and Content-Length, then `body`."""
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Listener:
    """The listener as a subprocess: the router (all functions, ingress paths) by default, or
    any command line, e.g. `functions-framework --source … --target …`."""

    def __init__(self, cluster: Cluster, command: list[str] | None = None, port: int | None = None, **env: str) -> None:
        self.cluster = cluster
        self.port = port or free_port()
        kubeconfig = cluster.write_kubeconfig(cluster.workdir / f"listener-{self.port}.kubeconfig", cluster.listener)
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "NAMESPACE": LISTENER_NAMESPACE,
            "KUBECONFIG": str(kubeconfig),
            "AUTH_USERNAME": USER,
            "AUTH_PASSWORD": PASSWORD,
            # Tests read runs in namespaces of their own; the default (NAMESPACE only) is tested
            # in tests/test_attacker_inputs.py.
            "AUTH_NAMESPACES": "*",
            "RUN_WAIT_SECONDS": "10",
            # Metrics only where a test asks for them on a port of its own (the default is shared).
            "METRICS_PORT": "0",
            **env,
        }
        self.command = command or [sys.executable, "-m", "shared.http.router"]
        self.log_path = cluster.workdir / f"listener-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"listener exited {self.proc.returncode}: {self.log()}")

    def start(self, timeout: float = 30.0) -> Listener:
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                status, _, _ = self.get("/health/liveness", auth=None, timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)  # the port opens when gunicorn has booted; nothing to wait on but it
        raise TimeoutError(f"listener not answering after {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------
    def connect(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(
        self, path: str, auth: str | None = "default", timeout: float = 60.0, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connect(timeout)
        try:
            hdrs = dict(headers or {})
            if auth == "default":
                hdrs["Authorization"] = basic()
            elif auth is not None:
                hdrs["Authorization"] = auth
            conn.request("GET", path, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get_json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.get(path, **kwargs)
        return status, json.loads(body)

    @contextlib.contextmanager
    def opened(self, path: str, timeout: float = 60.0) -> Iterator[http.client.HTTPResponse]:
        """An authenticated streaming GET that must answer 200."""
        conn = self.connect(timeout)
        try:
            conn.request("GET", path, headers={"Authorization": basic()})
            resp = conn.getresponse()
            if resp.status != 200:
                raise AssertionError(f"{path}: {resp.status} {resp.read()[:500]!r}")
            yield resp
        finally:
            conn.close()

    def stream(self, path: str, timeout: float = 60.0) -> Iterator[bytes]:
        """Lines of a streaming response as they arrive (heartbeat bytes kept)."""
        with self.opened(path, timeout) as resp:
            while line := resp.readline():
                yield line


def curl(listener: Listener, path: str, timeout: float = 120.0, options: tuple[str, ...] = ()) -> bytes:
    """The body as `curl -sSfN` (and `options`) prints it, credentials from a config on stdin as CI
    jobs pass them."""
    done = subprocess.run(
        ["curl", "-sSfN", *options, "-K", "-", f"{listener.url}{path}"],
        input=f'user = "{USER}:{PASSWORD}"\n'.encode(),
        capture_output=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def chunks(listener: Listener, path: str, timeout: float = 60.0) -> Iterator[bytes]:
    """Raw body bytes as they arrive (a text-mode heartbeat is a lone b"\\r", no newline)."""
    with listener.opened(path, timeout) as resp:
        while data := resp.read1(65536):
            yield data


def strip_heartbeats(text: bytes) -> bytes:
    """Removes the text mode's heartbeat carriage returns, which only stand at line starts."""
    return b"\n".join(line.lstrip(b"\r") for line in text.split(b"\n"))


def text_lines(body: bytes) -> list[bytes]:
    """A text body's lines, heartbeats stripped; the last is the final `PipelineRun ...` line."""
    return strip_heartbeats(body).rstrip(b"\n").split(b"\n")


def task_lines(text: bytes) -> dict[tuple[str, str], list[bytes]]:
    """`[task : step] line` lines grouped by (task, step), in order."""
    out: dict[tuple[str, str], list[bytes]] = {}
    for line in strip_heartbeats(text).split(b"\n"):
        if not line.startswith(b"[") or b"] " not in line:
            continue
        head, _, rest = line.partition(b"] ")
        if b" : " not in head:
            continue
        task, _, step = head[1:].partition(b" : ")
        out.setdefault((task.decode(), step.decode()), []).append(rest)
    return out


def log_line(
    task: str, step: str, line: bytes, timestamp: str = "", attempt: int = 0, pod: str = "", index: int = -1
) -> LogLines:
    """One line as the log reader hands it to writers."""
    try:
        cursor = Cursor(timestamp_ns(timestamp), 1)
    except (ValueError, IndexError):
        cursor = Cursor()
    data = (timestamp.encode() + b" " if timestamp else b"") + line + b"\n"
    return LogLines(task, step, data, 1, cursor, bool(timestamp), attempt, pod, index)


def holding_the_slot(listener: Listener, pool: Executor, path: str) -> Future[tuple[int, dict[str, str], bytes]]:
    """Sends `path` (a request that waits) on a listener capped at one stream per user, and returns
    its future once a probe has been refused with 429 while it waits: it holds the user's slot.

    Until the waiting request holds the slot, a probe is admitted and answers 404 at once. A probe
    that holds the slot just as the waiting request arrives makes that one a 429: then it is sent
    again."""
    for _ in range(5):
        waiting = pool.submit(listener.get, path, "default", 120)
        while not waiting.done():
            status, _, _ = listener.get("/logs/no-such-run?wait=0")
            assert status in (404, 429)
            if status == 429 and not waiting.done():
                return waiting
        assert waiting.result()[0] == 429
    raise AssertionError(f"{path} never held the stream slot")
