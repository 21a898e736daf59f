"""GET /logs/<run> and /logs/<namespace>/<run>: the run's logs, live, like `tkn pr logs -f`.

Options: task=, step= (filters), timestamps, format=text|ndjson, wait=<s> (for a run that does
not exist yet), heartbeat=<s> (0: off), resume=<token> (or header `Last-Event-ID`: continue
after what an earlier stream delivered), cursors=true (text: each line prefixed with its cursor).
"""

from __future__ import annotations

import time

import functions_framework
from flask import Request, Response

from shared.http.endpoint import (
    HttpError,
    admit_stream,
    authorize,
    client_gone_check,
    endpoint,
    kube_error,
    query_args,
    run_ref,
    streaming_response,
)
from shared.http.request import LogQuery, resume_token
from shared.http.service import Service
from shared.kube.client import KubeError
from shared.logs.options import FollowOptions
from shared.logs.run_reader import RunFollower
from shared.logs.tokens import Binding, ResumePoint, TokenError, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter, TextWriter, Writer
from shared.runs.lookup import find_pipelinerun


@functions_framework.http
@endpoint
def logs(request: Request, svc: Service) -> Response:
    ref = run_ref(request, "logs", svc.settings.namespace)
    principal = authorize(request, svc, ref.namespace)
    query = LogQuery.parse(query_args(request), svc.settings, request.headers.get("Accept", ""))
    token = query.resume or resume_token(request.headers.get("Last-Event-ID"))
    try:
        run = find_pipelinerun(svc.kube, ref.namespace, ref.name, query.wait, svc.shutdown)
    except KubeError as err:
        raise kube_error(err, f"PipelineRun {ref.namespace}/{ref.name}") from err
    binding = Binding.of(str(run["metadata"].get("uid", "")), query.tasks, query.steps)
    point: ResumePoint | None = None
    if token is not None:
        try:
            point = decode(token, binding, f"{ref.namespace}/{ref.name}")
        except TokenError as err:
            raise HttpError(err.status, err.message) from err
    deadline = svc.settings.stream_deadline_seconds
    options = FollowOptions(
        tasks=query.tasks,
        steps=query.steps,
        heartbeat_seconds=query.heartbeat,
        deadline=time.monotonic() + deadline if deadline > 0 else None,
    )
    follower = RunFollower(
        svc.kube, svc.registry, run, options, svc.shutdown, client_gone_check(request), point, svc.maskers
    )
    tracker = Tracker(binding, point)
    writer: Writer = (
        NdjsonWriter(tracker=tracker)
        if query.format == "ndjson"
        else TextWriter(query.timestamps, tracker, cursors=query.cursors)
    )
    chunks = (b"".join(writer.write(event) for event in batch) for batch in follower.batches())
    return streaming_response(chunks, writer.content_type, lease=admit_stream(svc, principal))
