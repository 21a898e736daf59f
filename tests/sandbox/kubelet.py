"""A kubelet stand-in: serves container logs to the kube-apiserver's `pods/log` proxy.

The apiserver resolves `GET /api/v1/namespaces/<ns>/pods/<pod>/log` to the pod's Node, reads
`status.addresses` (InternalIP) and `status.daemonEndpoints.kubeletEndpoint.Port`, and proxies
to `https://<ip>:<port>/containerLogs/<ns>/<pod>/<container>?<options>`. This server answers
those requests from an in-memory `LogStore` that the run simulator writes into, with the
kubelet's query options and error texts.

Logs are kept as a CRI runtime keeps them (a timestamp written once per line), and served as
slices of that record, so reading costs what a real kubelet's file read costs: the sandbox's
upstream is not slower than the apiserver and clients it is compared with. Faults on demand:
connections dropped before an answer, follows cut in the middle of a line, follows framed one
line per chunk (as a real kubelet flushes them), split mid-line or slowed down.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import socket
import ssl
import threading
import time
from array import array
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_SECOND_TEXT: dict[int, str] = {}  # whole seconds already formatted: lines of one second share the work


def format_rfc3339nano(ns: int) -> str:
    """Go's `time.RFC3339Nano` in UTC: fractional seconds with trailing zeros trimmed."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = _SECOND_TEXT.get(seconds)
    if base is None:
        if len(_SECOND_TEXT) > 4096:
            _SECOND_TEXT.clear()
        base = _SECOND_TEXT[seconds] = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
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


# A line's stored timestamp and its separating space, for plain (timestamps=false) reads.
_STAMP = re.compile(rb"(?m)^[^ \n]* ")


class CriLog:
    """One container instance's log as a CRI runtime keeps it: `<RFC3339Nano> <line>` records
    in one buffer, timestamps formatted once when written, plus each record's time and offset
    for `sinceTime` and `tailLines`. Reads are slices of the buffer: memory speed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.stamps = array("q")  # per record, strictly increasing
        self.starts = array("Q")  # per record, its first byte in `data`

    def append(self, ns: int, line: bytes) -> None:
        self.stamps.append(ns)
        self.starts.append(len(self.data))
        self.data += format_rfc3339nano(ns).encode() + b" " + line

    def offset_since(self, ns: int) -> int:
        index = bisect.bisect_left(self.stamps, ns)
        return self.starts[index] if index < len(self.starts) else len(self.data)

    def offset_tail(self, lines: int) -> int:
        if lines <= 0:
            return len(self.data)
        return self.starts[-lines] if lines < len(self.starts) else 0

    def lines(self) -> list[bytes]:
        """Each record's line without its timestamp (the last one may lack a newline)."""
        return [_STAMP.sub(b"", line, count=1) for line in bytes(self.data).splitlines(keepends=True)]


@dataclass
class ContainerLog:
    """One container: its current log, the previous instance's, and its state."""

    state: str = "waiting"  # waiting | running | terminated
    waiting_reason: str = "PodInitializing"
    log: CriLog = field(default_factory=CriLog)
    previous: CriLog | None = None
    # Pending bytes of an unterminated line: the kubelet shows them only when the line ends
    # or the container terminates (as a CRI runtime writes them).
    partial: bytes = b""
    last_ns: int = 0


# Bytes per write to the apiserver: a kubelet copies a finished log in large buffers.
READ_SIZE = 256 * 1024


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
            log.previous, log.log, log.partial = log.log, CriLog(), b""
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
                log.log.append(self._stamp(log), line + b"\n")
            if lines:
                self._lock.notify_all()

    def terminate(self, namespace: str, pod: str, container: str) -> None:
        with self._lock:
            log = self._logs.setdefault((namespace, pod, container), ContainerLog())
            if log.partial:
                log.log.append(self._stamp(log), log.partial)
                log.partial = b""
            log.state = "terminated"
            self._lock.notify_all()

    def lines(self, namespace: str, pod: str, container: str) -> list[bytes]:
        with self._lock:
            return self._logs[(namespace, pod, container)].log.lines()

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

    def wait_beyond(self, log: ContainerLog, offset: int, timeout: float) -> bool:
        """Waits until `log` holds more than `offset` bytes or is no longer running."""
        with self._lock:
            return self._lock.wait_for(lambda: len(log.log.data) > offset or log.state != "running", timeout)

    def extent(self, log: ContainerLog, query: LogQuery) -> tuple[CriLog, int, int, str]:
        """What a read starts with: the instance's log, the first and end offsets, the state."""
        with self._lock:
            cri = log.previous if query.previous and log.previous is not None else log.log
            start = 0
            if query.since_ns is not None:
                start = cri.offset_since(query.since_ns)
            if query.tail_lines is not None:
                start = max(start, cri.offset_tail(query.tail_lines))
            return cri, start, len(cri.data), log.state

    def read(self, cri: CriLog, start: int, end: int) -> bytes:
        """Whole records from `start`, at most about `READ_SIZE` bytes (more for one long line)."""
        with self._lock:
            end = min(end, len(cri.data))
            if end - start > READ_SIZE:
                cut = cri.data.rfind(b"\n", start, start + READ_SIZE)
                if cut < 0:  # one line longer than a read: the whole line
                    cut = cri.data.find(b"\n", start + READ_SIZE, end)
                end = cut + 1 if cut >= 0 else end
            return bytes(cri.data[start:end])

    def state(self, log: ContainerLog) -> tuple[int, str]:
        with self._lock:
            return len(log.log.data), log.state


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
        self.server.queries.append((pod, container, query))
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
        if query.previous and log.previous is None:
            self._text(HTTPStatus.BAD_REQUEST, f'previous terminated container "{container}" in pod "{pod}" not found')
            return
        if log.state == "waiting" and not query.previous:
            self._text(
                HTTPStatus.BAD_REQUEST,
                f'container "{container}" in pod "{pod}" is waiting to start: {log.waiting_reason}',
            )
            return
        cri, offset, end, state = store.extent(log, query)
        follow = query.follow and not query.previous
        out = _Output(self, query, self.server.framing if follow else None)
        plan = self.server.fault
        cut_after = plan.arm(container) if plan is not None and follow else None
        if cut_after is not None:
            out.cut_after, out.plan = cut_after, plan
        self._start_stream()
        try:
            more = True
            while more:
                while more and offset < end:
                    data = store.read(cri, offset, end)
                    offset += len(data)
                    more = out.send(data)
                if not (more and follow and state == "running"):
                    break
                if not store.wait_beyond(log, offset, timeout=1.0):
                    continue
                if store.lookup(namespace, pod, container) is not log:
                    break  # pod deleted: a real kubelet closes the stream
                end, state = store.state(log)
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

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()


@dataclass
class Framing:
    """Fault injection for follows: HTTP chunks of `lines` lines (1: as a real kubelet flushes a
    follow after every line), cut at `split` bytes into a line when set, `pause` seconds apart."""

    lines: int = 1
    split: int | None = None
    pause: float = 0.0


class _Output:
    """One response's body: records as stored (or without their timestamps), `limitBytes`, the
    framing, and a planned mid-line cut."""

    def __init__(self, handler: _Handler, query: LogQuery, framing: Framing | None) -> None:
        self.handler = handler
        self.timestamps = query.timestamps
        self.left = query.limit_bytes
        self.framing = framing
        self.cut_after: int | None = None  # fault injection: lines left before a mid-line cut
        self.plan: FaultPlan | None = None

    def send(self, data: bytes) -> bool:
        """Sends whole records; False once `limitBytes` is used up."""
        if not self.timestamps:
            data = _STAMP.sub(b"", data)
        drop = False
        if self.cut_after is not None:
            data, drop = self._cut(data)
        more = True
        if self.left is not None:
            data = data[: self.left]
            self.left -= len(data)
            more = self.left > 0
        pause = self.framing.pause if self.framing is not None else 0.0
        for n, piece in enumerate(self._frames(data)):
            if pause and n:
                time.sleep(pause)  # a slow upstream, on purpose
            self.handler.chunk(piece)
        if drop:
            raise _Drop
        return more

    def _cut(self, data: bytes) -> tuple[bytes, bool]:
        assert self.cut_after is not None
        pos = 0
        while self.cut_after > 0:
            nl = data.find(b"\n", pos)
            if nl < 0:
                return data, False
            pos, self.cut_after = nl + 1, self.cut_after - 1
        if pos >= len(data):
            return data, False
        self.cut_after = None
        if self.plan is None or not self.plan.take():
            return data, False
        nl = data.find(b"\n", pos)
        line_end = nl + 1 if nl >= 0 else len(data)
        return data[: pos + max(1, (line_end - pos) // 2)], True  # half a line, then the cut

    def _frames(self, data: bytes) -> list[bytes]:
        framing = self.framing
        if framing is None:
            return [data]
        out = []
        lines = data.splitlines(keepends=True)
        for i in range(0, len(lines), framing.lines):
            chunk = b"".join(lines[i : i + framing.lines])
            if framing.split is not None and len(chunk) > framing.split:
                out += [chunk[: framing.split], chunk[framing.split :]]
            else:
                out.append(chunk)
        return out


class _KubeletServer(ThreadingHTTPServer):
    daemon_threads = True
    store: LogStore
    fault: FaultPlan | None = None
    framing: Framing | None = None
    # (pod, container, query) of every log request, in arrival order (list.append is atomic).
    queries: list[tuple[str, str, LogQuery]]


class KubeletStandIn:
    """HTTPS server that the apiserver reaches as the kubelet of one Node."""

    def __init__(self, store: LogStore, cert_file: str, key_file: str, client_ca_file: str | None):
        self.store = store
        self._server = _KubeletServer(("127.0.0.1", 0), _Handler)
        self._server.store = store
        self._server.queries = []
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

    def drop_follows(self, times: int, after_lines: int = 3, container: str | None = None) -> FaultPlan:
        """Fault injection: the next `times` follows are cut in the middle of a line (see
        `FaultPlan`); `plan.all_fired` is set once every cut happened."""
        plan = FaultPlan(times, after_lines, container)
        self._server.fault = plan
        return plan

    def frame_follows(self, lines: int = 1, split: int | None = None, pause: float = 0.0) -> Framing:
        """Fault injection: follows are sent `lines` lines per HTTP chunk (see `Framing`), like a
        real kubelet (one flush per line) or a slow, oddly framed upstream."""
        framing = Framing(lines, split, pause)
        self._server.framing = framing
        return framing

    def log_queries(self, pod: str) -> list[tuple[str, LogQuery]]:
        """(container, query) of every log request for `pod` so far."""
        return [(container, query) for name, container, query in self._server.queries if name == pod]

    def clear_faults(self) -> None:
        self._server.fault = None
        self._server.framing = None

    def start(self) -> KubeletStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
