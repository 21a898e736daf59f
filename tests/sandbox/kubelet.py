"""A kubelet stand-in: serves container logs to the kube-apiserver's `pods/log` proxy.

The apiserver resolves `GET /api/v1/namespaces/<ns>/pods/<pod>/log` to the pod's Node, reads
`status.addresses` (InternalIP) and `status.daemonEndpoints.kubeletEndpoint.Port`, and proxies
to `https://<ip>:<port>/containerLogs/<ns>/<pod>/<container>?<options>`. This server answers
those requests from an in-memory `LogStore` that the run simulator writes into, with the
kubelet's query options and error texts.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def format_rfc3339nano(ns: int) -> str:
    """Go's `time.RFC3339Nano` in UTC: fractional seconds with trailing zeros trimmed."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def parse_rfc3339(value: str) -> int:
    """RFC 3339 (with optional fraction) to Unix nanoseconds."""
    value = value.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    frac_ns = 0
    if "." in value:
        head, rest = value.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9])
        value = head + rest
    when = dt.datetime.fromisoformat(value)
    return int(when.timestamp()) * 1_000_000_000 + frac_ns


@dataclass
class ContainerLog:
    """One container's log: whole or partial lines with their write time."""

    state: str = "waiting"  # waiting | running | terminated
    waiting_reason: str = "PodInitializing"
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    previous: list[tuple[int, bytes]] | None = None
    # Pending bytes of an unterminated line: the kubelet shows them only when the line ends
    # or the container terminates (as a CRI runtime writes them).
    partial: bytes = b""
    last_ns: int = 0


class LogStore:
    """Container logs keyed by (namespace, pod, container), written by the simulator."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._logs: dict[tuple[str, str, str], ContainerLog] = {}
        self._pods: set[tuple[str, str]] = set()

    # -- writer side -------------------------------------------------------------------------
    def add_pod(self, namespace: str, pod: str, containers: list[str]) -> None:
        with self._lock:
            self._pods.add((namespace, pod))
            for name in containers:
                self._logs.setdefault((namespace, pod, name), ContainerLog())
            self._lock.notify_all()

    def remove_pod(self, namespace: str, pod: str) -> None:
        with self._lock:
            self._pods.discard((namespace, pod))
            for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
                # Deleting a pod kills its containers: open follows end.
                self._logs.pop(key).state = "removed"
            self._lock.notify_all()

    def set_waiting(self, namespace: str, pod: str, container: str, reason: str) -> None:
        with self._lock:
            log = self._logs.setdefault((namespace, pod, container), ContainerLog())
            log.state, log.waiting_reason = "waiting", reason
            self._lock.notify_all()

    def start(self, namespace: str, pod: str, container: str) -> None:
        with self._lock:
            log = self._logs.setdefault((namespace, pod, container), ContainerLog())
            log.state = "running"
            self._lock.notify_all()

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """A new container instance: the old log becomes `previous`."""
        with self._lock:
            log = self._logs[(namespace, pod, container)]
            log.previous, log.entries, log.partial = log.entries, [], b""
            log.state = "running"
            self._lock.notify_all()

    def write(self, namespace: str, pod: str, container: str, data: bytes) -> None:
        """Appends raw output; complete lines become visible at once, a trailing part waits."""
        with self._lock:
            log = self._logs[(namespace, pod, container)]
            if log.state != "running":
                raise RuntimeError(f"container {container} of {pod} is {log.state}, not running")
            buf = log.partial + data
            *lines, log.partial = buf.split(b"\n")
            for line in lines:
                log.entries.append((self._stamp(log), line + b"\n"))
            if lines:
                self._lock.notify_all()

    def terminate(self, namespace: str, pod: str, container: str) -> None:
        with self._lock:
            log = self._logs.setdefault((namespace, pod, container), ContainerLog())
            if log.partial:
                log.entries.append((self._stamp(log), log.partial))
                log.partial = b""
            log.state = "terminated"
            self._lock.notify_all()

    def lines(self, namespace: str, pod: str, container: str) -> list[bytes]:
        with self._lock:
            return [data for _, data in self._logs[(namespace, pod, container)].entries]

    @staticmethod
    def _stamp(log: ContainerLog) -> int:
        # Strictly increasing per container, like a real runtime's clock reads in practice.
        now = time.time_ns()
        log.last_ns = max(now, log.last_ns + 1)
        return log.last_ns

    # -- reader side -------------------------------------------------------------------------
    def lookup(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        with self._lock:
            if (namespace, pod) not in self._pods:
                return None
            return self._logs.get((namespace, pod, container))

    def has_pod(self, namespace: str, pod: str) -> bool:
        with self._lock:
            return (namespace, pod) in self._pods

    def wait_beyond(self, log: ContainerLog, index: int, timeout: float) -> bool:
        """Waits until `log` has more than `index` entries or is no longer running."""
        with self._lock:
            return self._lock.wait_for(lambda: len(log.entries) > index or log.state != "running", timeout)

    def snapshot(self, log: ContainerLog, index: int) -> tuple[list[tuple[int, bytes]], str]:
        with self._lock:
            return log.entries[index:], log.state


class FaultPlan:
    """Drops follow streams mid-line: each of the next `times` follows (of `container`, or any)
    writes `after_lines` whole lines, then half of the next line, then the connection is cut
    without the chunked terminator (as a crashing kubelet or a broken proxy would)."""

    def __init__(self, times: int, after_lines: int, container: str | None) -> None:
        self.left = times
        self.after_lines = after_lines
        self.container = container
        self.fired = 0
        self.all_fired = threading.Event()
        self._lock = threading.Lock()

    def arm(self, container: str) -> int | None:
        """For a new follow of `container`: after how many lines to cut it, or None."""
        with self._lock:
            if self.left <= 0 or (self.container is not None and container != self.container):
                return None
            return self.after_lines

    def take(self) -> bool:
        """A cut is due: True if one is left to make (then it counts as made)."""
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            self.fired += 1
            if self.left <= 0:
                self.all_fired.set()
            return True


class _Drop(Exception):
    pass


@dataclass
class LogQuery:
    follow: bool = False
    timestamps: bool = False
    since_ns: int | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None
    previous: bool = False

    @classmethod
    def parse(cls, query: str) -> LogQuery:
        params = {k: v[-1] for k, v in parse_qs(query).items()}

        def flag(name: str) -> bool:
            return params.get(name, "false").lower() in ("1", "true")

        since_ns = None
        if "sinceTime" in params:
            since_ns = parse_rfc3339(params["sinceTime"])
        elif "sinceSeconds" in params:
            since_ns = time.time_ns() - int(params["sinceSeconds"]) * 1_000_000_000
        return cls(
            follow=flag("follow"),
            timestamps=flag("timestamps"),
            since_ns=since_ns,
            tail_lines=int(params["tailLines"]) if "tailLines" in params else None,
            limit_bytes=int(params["limitBytes"]) if "limitBytes" in params else None,
            previous=flag("previous"),
        )


class _Handler(BaseHTTPRequestHandler):
    server: _KubeletServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if self.server.drop_hook is not None and self.server.drop_hook(url.path):
            self.close_connection = True
            return
        if url.path == "/healthz":
            self._text(HTTPStatus.OK, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._text(HTTPStatus.NOT_FOUND, "404 page not found")
            return
        _, namespace, pod, container = parts
        try:
            query = LogQuery.parse(url.query)
        except ValueError as err:
            self._text(HTTPStatus.BAD_REQUEST, f"invalid log options: {err}")
            return
        self._serve_log(namespace, pod, container, query)

    def _text(self, status: HTTPStatus, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve_log(self, namespace: str, pod: str, container: str, query: LogQuery) -> None:
        store = self.server.store
        log = store.lookup(namespace, pod, container)
        if log is None:
            # The kubelet's words for a pod or container it does not run.
            if not store.has_pod(namespace, pod):
                self._text(HTTPStatus.NOT_FOUND, f'pod "{pod}" in namespace "{namespace}" not found')
            else:
                self._text(HTTPStatus.BAD_REQUEST, f'container "{container}" in pod "{pod}" is not available')
            return
        if query.previous:
            if log.previous is None:
                self._text(
                    HTTPStatus.BAD_REQUEST,
                    f'previous terminated container "{container}" in pod "{pod}" not found',
                )
                return
            entries = list(log.previous)
            self._start_stream()
            self._write_entries(entries, query, _Budget(query.limit_bytes))
            self._end_stream()
            return
        if log.state == "waiting":
            self._text(
                HTTPStatus.BAD_REQUEST,
                f'container "{container}" in pod "{pod}" is waiting to start: {log.waiting_reason}',
            )
            return

        entries, state = store.snapshot(log, 0)
        index = len(entries)
        if query.since_ns is not None:
            entries = [e for e in entries if e[0] >= query.since_ns]
        if query.tail_lines is not None:
            entries = entries[-query.tail_lines :] if query.tail_lines > 0 else []
        budget = _Budget(query.limit_bytes)
        plan = self.server.fault
        cut_after = plan.arm(container) if plan is not None and query.follow else None
        if cut_after is not None:
            budget.cut_after, budget.plan = cut_after, plan
        self._start_stream()
        try:
            more = self._write_entries(entries, query, budget)
            while more and query.follow and state == "running":
                if not store.wait_beyond(log, index, timeout=1.0):
                    continue
                if store.lookup(namespace, pod, container) is not log:
                    break  # pod deleted: a real kubelet closes the stream
                fresh, state = store.snapshot(log, index)
                index += len(fresh)
                more = self._write_entries(fresh, query, budget)
            self._end_stream()
        except _Drop:
            self.close_connection = True
            self._abort()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _abort(self) -> None:
        """Cuts the connection at once: no chunked terminator, no TLS close_notify."""
        try:
            self.wfile.flush()
            # On a TLS socket this shuts the TCP connection down without a close_notify.
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _start_stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_entries(self, entries: list[tuple[int, bytes]], query: LogQuery, budget: _Budget) -> bool:
        """Writes one chunk for `entries`; False once `limitBytes` is used up."""
        out = bytearray()
        drop = False
        for ns, data in entries:
            if query.since_ns is not None and ns < query.since_ns:
                continue
            item = (format_rfc3339nano(ns).encode() + b" " + data) if query.timestamps else data
            if budget.cut_after is not None:
                if budget.cut_after <= 0:
                    budget.cut_after = None
                    if budget.plan is not None and budget.plan.take():
                        out += item[: max(1, len(item) // 2)]  # half a line, then the cut
                        drop = True
                        break
                else:
                    budget.cut_after -= 1
            item, more = budget.take(item)
            out += item
            if not more:
                break
        else:
            more = True
        if drop:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(out), bytes(out)))
            self.wfile.flush()
            raise _Drop
        if out:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(out), bytes(out)))
            self.wfile.flush()
        return more


class _Budget:
    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.cut_after: int | None = None  # fault injection: lines left before a mid-line cut
        self.plan: FaultPlan | None = None

    def take(self, data: bytes) -> tuple[bytes, bool]:
        if self.left is None:
            return data, True
        data = data[: self.left]
        self.left -= len(data)
        return data, self.left > 0


class _KubeletServer(ThreadingHTTPServer):
    daemon_threads = True
    store: LogStore
    drop_hook: object = None
    fault: FaultPlan | None = None


class KubeletStandIn:
    """HTTPS server that the apiserver reaches as the kubelet of one Node."""

    def __init__(self, store: LogStore, cert_file: str, key_file: str, client_ca_file: str | None):
        self.store = store
        self._server = _KubeletServer(("127.0.0.1", 0), _Handler)
        self._server.store = store
        self._server.drop_hook = None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        if client_ca_file:
            # Only the apiserver, with its kubelet client certificate, may read logs.
            context.load_verify_locations(client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubelet", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def set_drop_hook(self, hook: object) -> None:
        """`hook(path) -> bool`: True drops the connection without an answer (fault injection)."""
        self._server.drop_hook = hook

    def drop_follows(self, times: int, after_lines: int = 3, container: str | None = None) -> FaultPlan:
        """Fault injection: the next `times` follows are cut in the middle of a line (see
        `FaultPlan`); `plan.all_fired` is set once every cut happened."""
        plan = FaultPlan(times, after_lines, container)
        self._server.fault = plan
        return plan

    def clear_faults(self) -> None:
        self._server.fault = None

    def start(self) -> KubeletStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
