"""GET /logs/<run> and /logs/<namespace>/<run>: the run's logs, live, like `tkn pr logs -f`.

Options: task=, step= (filters), timestamps, format=text|ndjson, wait=<s> (for a run that does
not exist yet), heartbeat=<s> (0: off).
"""

from __future__ import annotations

import time

import functions_framework
from flask import Request, Response

from shared.follow import FollowOptions, RunFollower
from shared.formatting import NdjsonWriter, TextWriter, Writer
from shared.kube import KubeError
from shared.lookup import find_pipelinerun
from shared.queries import LogQuery
from shared.service import Service
from shared.web import (
    authorize,
    client_gone_check,
    endpoint,
    kube_error,
    query_args,
    run_ref,
    streaming_response,
)


@functions_framework.http
@endpoint
def logs(request: Request, svc: Service) -> Response:
    ref = run_ref(request, "logs", svc.settings.namespace)
    authorize(request, svc, ref.namespace)
    query = LogQuery.parse(query_args(request), svc.settings, request.headers.get("Accept", ""))
    try:
        run = find_pipelinerun(svc.kube, ref.namespace, ref.name, query.wait, svc.shutdown)
    except KubeError as err:
        raise kube_error(err, f"PipelineRun {ref.namespace}/{ref.name}") from err
    deadline = svc.settings.stream_deadline_seconds
    options = FollowOptions(
        tasks=query.tasks,
        steps=query.steps,
        heartbeat_seconds=query.heartbeat,
        deadline=time.monotonic() + deadline if deadline > 0 else None,
    )
    follower = RunFollower(svc.kube, svc.registry, run, options, svc.shutdown, client_gone_check(request))
    writer: Writer = NdjsonWriter() if query.format == "ndjson" else TextWriter(query.timestamps)
    chunks = (b"".join(writer.write(event) for event in batch) for batch in follower.batches())
    return streaming_response(chunks, writer.content_type)
