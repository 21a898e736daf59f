"""GET /logs/<run> and /logs/<namespace>/<run>: the run's logs, live, like `tkn pr logs -f`.

Options: task=, step= (filters), timestamps, format=text|ndjson, wait=<s> (for a run that does
not exist yet), heartbeat=<s> (0: off), resume=<token> (or header `Last-Event-ID`: continue
after what an earlier stream delivered), cursors=true (text: each line prefixed with its cursor).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import functions_framework
from flask import Request, Response

from shared.http.endpoint import endpoint
from shared.http.observe import counted_lines
from shared.http.query import LogQuery
from shared.http.responses import HttpError, kube_errors_answered, streaming_response
from shared.http.run_request import RunRequest, admit_stream, check_run_grant, parse_run_request
from shared.http.service import Service
from shared.logs.options import FollowOptions
from shared.logs.run_reader import RunFollower
from shared.logs.secret_values import Unreadable
from shared.logs.tokens import Binding, ResumePoint, TokenError, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter, TextWriter, Writer
from shared.runs.lookup import find_pipelinerun
from shared.runs.model import Obj


@functions_framework.http
@endpoint
def logs(request: Request, svc: Service) -> Response:
    req = parse_run_request(request, svc, "logs", LogQuery.from_request)
    # Admitted before waiting for the run: a waiting request holds a worker thread as a stream does.
    lease = admit_stream(svc, req.principal)
    try:
        with kube_errors_answered(req.run.what):
            run = find_pipelinerun(
                svc.kube, req.run.namespace, req.run.name, req.query.wait, svc.shutdown, req.client_gone
            )
        check_run_grant(req.principal, run, req.run)
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
            maskers.check_run(run)
        except Unreadable as err:
            raise HttpError(503, f"masking values could not be read: {err}", {"Retry-After": "10"}) from err


def _stream(svc: Service, req: RunRequest[LogQuery], run: Obj) -> tuple[Iterator[bytes], str]:
    """The run's log events, read from where the resume token says, written in the asked format."""
    query = req.query
    binding = Binding.of(str(run["metadata"].get("uid", "")), query.tasks, query.steps)
    point: ResumePoint | None = None
    if query.resume is not None:
        try:
            point = decode(query.resume, binding, f"{req.run.namespace}/{req.run.name}")
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
    writer: Writer = (
        NdjsonWriter(tracker=tracker)
        if query.format == "ndjson"
        else TextWriter(query.timestamps, tracker, cursors=query.cursors)
    )
    chunks = (b"".join(writer.write(event) for event in batch) for batch in counted_lines(follower.batches()))
    return chunks, writer.content_type
