"""Clients the figures drive: curl, kubectl, plain HTTP(S) followers, /proc readings, /metrics."""

from __future__ import annotations

import http.client
import os
import re
import resource
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from tests.sandbox.cluster import Cluster
from tests.support import PASSWORD, USER, Listener, basic


# -- subprocess clients ----------------------------------------------------------------------------
@dataclass
class Timed:
    seconds: float
    size: int
    returncode: int
    cpu: float  # user + system seconds of the child process


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(args: list[str], out: Path, timeout: float = 300.0) -> Timed:
    """Runs `args` with stdout to `out`; wall time from spawn to exit (what a CI job waits)."""
    with open(out, "wb") as sink:
        cpu = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(args, stdout=sink, stderr=subprocess.PIPE, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
        cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return Timed(seconds, out.stat().st_size, proc.returncode, cpu)


def pod_log_path(namespace: str, pod: str, container: str, follow: bool = True, timestamps: bool = False) -> str:
    query = f"container={quote(container)}"
    if follow:
        query += "&follow=true"
    if timestamps:
        query += "&timestamps=true"
    return f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log?{query}"


def curl_listener(listener: Listener, path: str) -> list[str]:
    return ["curl", "-sSfN", "--user", f"{USER}:{PASSWORD}", listener.url + path]


# -- streaming readers -----------------------------------------------------------------------------
def http_status(port: int, path: str, auth: str | None, timeout: float = 10.0, host: str = "127.0.0.1") -> int:
    """GET `path` on a fresh connection; the status code, the body read and dropped."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def apiserver_connection(cluster: Cluster, timeout: float = 120.0) -> http.client.HTTPSConnection:
    parts = urlsplit(cluster.server)
    context = ssl.create_default_context(cafile=cluster.ca_file)
    return http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, context=context, timeout=timeout)


@dataclass
class LineReader:
    """Reads a streaming response line by line on a thread, noting each line's arrival time.

    `on_line(line, arrival_ns)` runs on the reader thread; `ready` is set once the response
    status is known (200 or not)."""

    connect: Callable[[], http.client.HTTPConnection]
    path: str
    headers: dict[str, str]
    on_line: Callable[[bytes, int], None]
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    error: BaseException | None = None
    body_bytes: int = 0

    def start(self) -> LineReader:
        threading.Thread(target=self._main, name=f"reader {self.path[:40]}", daemon=True).start()
        return self

    def _main(self) -> None:
        conn = self.connect()
        try:
            conn.request("GET", self.path, headers=self.headers)
            resp = conn.getresponse()
            self.status = resp.status
            self.ready.set()
            if resp.status != 200:
                raise RuntimeError(f"{self.path}: {resp.status} {resp.read()[:300]!r}")
            while line := resp.readline():
                now = time.time_ns()
                self.body_bytes += len(line)
                self.on_line(line, now)
        except BaseException as err:
            self.error = err
        finally:
            self.ready.set()
            conn.close()
            self.done.set()

    def wait(self, timeout: float) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError(f"{self.path} still streaming after {timeout}s")
        if self.error is not None:
            raise self.error


def read_body(listener: Listener, path: str, timeout: float = 180.0) -> bytes:
    with listener.opened(path, timeout) as resp:
        return resp.read()


# -- keep-alive request loops ----------------------------------------------------------------------
@dataclass
class LoadResult:
    latencies: list[float]
    seconds: float
    errors: int
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def keepalive_load(
    connect: Callable[[], http.client.HTTPConnection],
    path: str,
    headers: dict[str, str],
    threads: int,
    seconds: float,
    warmup: float,
    expect: int = 200,
) -> LoadResult:
    """`threads` clients, each on one persistent connection, for `warmup` then `seconds` measured."""
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]

    def worker() -> None:
        conn = connect()
        mine: list[float] = []
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                try:
                    conn.request("GET", path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    errors[0] += 1
                    conn.close()
                    conn = connect()
                    continue
                t1 = time.perf_counter()
                if t0 >= start_at:
                    mine.append(t1 - t0)
                    with lock:
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.will_close:
                    conn.close()
                    conn = connect()
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(warmup + seconds + 60)
    if any(status != expect for status in statuses):
        raise RuntimeError(f"{path}: unexpected statuses {statuses}")
    return LoadResult(latencies, seconds, errors[0], statuses)


def cpu_per_request(listener: Listener, path: str, threads: int, seconds: float) -> tuple[float, LoadResult]:
    """Worker CPU ms per request (NaN if none was answered) of `threads` clients, each on one
    keep-alive connection to `path`, and their load: measured for `seconds` after one second of
    the same load unmeasured (credentials verified and cached, connections pooled), so that the
    CPU counted is that of the requests counted."""
    worker = worker_pid(listener)
    headers = {"Authorization": basic()}
    keepalive_load(lambda: listener.connect(30), path, headers, threads, 1.0, 0.0)
    cpu = cpu_seconds(worker)
    got = keepalive_load(lambda: listener.connect(30), path, headers, threads, seconds, 0.0)
    cpu = cpu_seconds(worker) - cpu
    requests = len(got.latencies)
    return (cpu * 1000 / requests if requests else float("nan")), got


# -- the listener process --------------------------------------------------------------------------
def worker_pid(listener: Listener, timeout: float = 10.0) -> int:
    """The gunicorn worker serving requests (the listener's pid is gunicorn's arbiter)."""
    assert listener.proc is not None
    pid = listener.proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError(f"no gunicorn worker under {pid}")


def proc_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/<pid>/status: VmRSS, VmHWM..."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def proc_threads(pid: int) -> int:
    return proc_kb(pid, "Threads")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the apiserver's own request counters ----------------------------------------------------------
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Key = tuple[str, str, str]  # verb, resource, subresource


def request_totals(cluster: Cluster) -> dict[Key, float]:
    status, text = cluster.raw("GET", "/metrics", cluster.admin)
    if status != 200:
        raise RuntimeError(f"/metrics: {status}")
    totals: dict[Key, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        totals[key] = totals.get(key, 0.0) + float(match["value"])
    return totals


def delta(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    out = {}
    for key in set(before) | set(after):
        diff = after.get(key, 0.0) - before.get(key, 0.0)
        if diff:
            out[key] = diff
    return out


def show_key(key: Key) -> str:
    verb, resource, sub = key
    if not resource:
        return f"{verb} (non-resource)"
    return f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"


class RequestCounter:
    """Counts the requests this process sends through `Cluster.raw` (the simulator's and the
    harness's), by metrics key, so they can be told apart from the listener's."""

    _PATH = re.compile(
        r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/[^/]+/(?P<res>[^/?]+)(?:/(?P<name>[^/?]+))?(?:/(?P<sub>[^/?]+))?"
    )

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, bool], int] = {}
        self._original = cluster.raw

    def __enter__(self) -> RequestCounter:
        original = self._original

        def counting(method: str, path: str, *args: object, **kwargs: object) -> tuple[int, str]:
            match = self._PATH.match(path)
            if match:
                key = (method.upper(), match["res"], match["sub"] or "", bool(match["name"]))
                with self._lock:
                    self._counts[key] = self._counts.get(key, 0) + 1
            return original(method, path, *args, **kwargs)  # type: ignore[arg-type]

        self.cluster.raw = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.raw = self._original  # type: ignore[method-assign]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self, named_get_verb: str) -> dict[Key, float]:
        out: dict[Key, float] = {}
        with self._lock:
            for (method, res, sub, named), n in self._counts.items():
                verb = (named_get_verb if named else "LIST") if method == "GET" else method
                out[(verb, res, sub)] = out.get((verb, res, sub), 0.0) + n
        return out

    def calibrate(self, resource: str, named_path: str) -> str:
        """The verb label this apiserver gives a GET of one named object of `resource`."""
        before = request_totals(self.cluster)
        self._original("GET", named_path, self.cluster.admin)
        got = delta(before, request_totals(self.cluster))
        verbs = [k[0] for k in got if k[1] == resource]
        return verbs[0] if len(verbs) == 1 else "GET"
