"""GET /logs/<run> and /logs/<namespace>/<run>: the run's logs, live, like `tkn pr logs -f`.

Options: task=, step= (filters), timestamps, format=text|ndjson|gitlab|github, wait=<s> (for a run that does
not exist yet), heartbeat=<s> (0: off), resume=<token> (or header `Last-Event-ID`: continue
after what an earlier stream delivered), cursors=true (text: each line prefixed with its cursor),
digest=, digest_lines=, stop_commands= (format=github), max_bytes=, tail=, since=, max_lines= (the
log budget). `/logs?eventid=…` or `?sha=…` (also
`/logs/<namespace>?…`) finds the run by its Triggers event ID or commit SHA instead of its name.
A browser (`Accept: text/html`) gets the live page; its assets are at `/logs/_assets/<file>`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import functions_framework
from flask import Request, Response

from shared.http.endpoint import endpoint
from shared.http.live_page import asset_response, page_response
from shared.http.observe import counted_lines
from shared.http.query import LogQuery
from shared.http.responses import HttpError, kube_errors_answered, streaming_response
from shared.http.run_lookup import find_run
from shared.http.run_request import RunRequest, admit_stream, check_run_grant, parse_run_request
from shared.http.service import Service
from shared.logs.formats.budget import Budget, BudgetFilter
from shared.logs.formats.budgeted import elision_url, written
from shared.logs.formats.select import make_writer, watch_hint
from shared.logs.last_lines import step_tail
from shared.logs.options import FollowOptions
from shared.logs.run_reader import RunFollower
from shared.logs.secret_values import Unreadable
from shared.logs.tokens import Binding, ResumePoint, TokenError, decode
from shared.logs.tracker import Tracker
from shared.runs.model import Obj, name_of, uid_of

ASSETS = Path(__file__).resolve().parent / "assets"  # the live page's script, style and template


@functions_framework.http
@endpoint
def logs(request: Request, svc: Service) -> Response:
    asset = asset_response(request, svc, ASSETS)
    if asset is not None:
        return asset
    req = parse_run_request(request, svc, "logs", LogQuery.from_request)
    # Admitted before waiting for the run: a waiting request holds a worker thread as a stream does.
    lease = admit_stream(svc, req.principal)
    try:
        with kube_errors_answered(req.run.what):
            run = find_run(svc, req, req.query.wait)
        check_run_grant(req.principal, run, req.run)
        if req.query.format == "html":
            lease.release()  # the page is no stream; the browser's event stream takes its own slot
            return page_response(ASSETS, req.run.namespace, name_of(run), req.query.tasks, req.query.steps)
        with kube_errors_answered(req.run.what):
            _check_masking(svc, run)
        chunks, content_type = _stream(svc, req, run)
    except BaseException:
        lease.release()
        raise
    return streaming_response(chunks, content_type, lease=lease)


def _check_masking(svc: Service, run: Obj) -> None:
    """Fails closed before the stream starts: 503 if the values to mask cannot be read."""
    maskers = svc.maskers
    if maskers is not None:
        try:
            # Followers of the run share a watch of its pods: a request beside them lists nothing.
            maskers.check_run(run, svc.registry.peek(run["metadata"]["namespace"], name_of(run)))
        except Unreadable as err:
            raise HttpError(503, f"masking values could not be read: {err}", {"Retry-After": "10"}) from err


def _stream(svc: Service, req: RunRequest[LogQuery], run: Obj) -> tuple[Iterator[bytes], str]:
    """The run's log events, read from where the resume token says, written in the asked format."""
    query = req.query
    binding = Binding.of(uid_of(run), query.tasks, query.steps)
    point: ResumePoint | None = None
    if query.resume is not None:
        try:
            point = decode(query.resume, binding, f"{req.run.namespace}/{name_of(run)}")
        except TokenError as err:
            raise HttpError(err.status, err.message) from err
    deadline = svc.settings.stream_deadline_seconds
    options = FollowOptions(
        tasks=query.tasks,
        steps=query.steps,
        heartbeat_seconds=query.heartbeat,
        deadline=time.monotonic() + deadline if deadline > 0 else None,
    )
    follower = RunFollower(svc.kube, svc.registry, run, options, svc.shutdown, req.client_gone, point, svc.maskers)
    tracker = Tracker(binding, point)
    since_ns = time.time_ns() - int(query.since * 1e9) if query.since else 0
    budget = Budget(query.max_bytes, query.tail, since_ns, query.max_lines)
    # A stream that passes every line on has each failed step's last lines itself; one that is
    # resumed, filtered or cut by a budget reads them from the kubelet for the digest.
    sees_every_line = point is None and not query.tasks and not query.steps and not budget

    def fetch_tail(pod: str, step: str, lines: int) -> list[str]:
        return step_tail(svc.kube, svc.maskers, req.run.namespace, pod, step, lines)

    writer = make_writer(
        query.format,
        tracker,
        timestamps=query.timestamps,
        cursors=query.cursors,
        digest=query.digest,
        digest_lines=query.digest_lines,
        hint=watch_hint(svc.registry, req.run.namespace, name_of(run)),
        stop_commands=query.stop_commands,
        fetch_tail=None if sees_every_line else fetch_tail,
    )
    elided = elision_url(req.run.namespace, name_of(run), uid_of(run))
    batches = counted_lines(follower.batches())
    return written(batches, writer, BudgetFilter(budget, elided) if budget else None), writer.content_type
