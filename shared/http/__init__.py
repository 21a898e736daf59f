"""HTTP plumbing for the functions; the only wing that knows Flask and gunicorn.

- `endpoint`: the wrapper every function target sits behind (limits, probes, JSON errors).
- `run_request`: one `/logs` or `/status` request parsed once: path → namespace and run, the typed
  query, the authorized caller; the stream admission.
- `query`: the query options of `/logs` and `/status`, validated.
- `responses`: JSON bodies, errors and streaming responses with the security headers.
- `service`: the process-wide objects (settings, credentials, Kubernetes client, watch registry).
- `router`: every function behind one port, routed like the ingress (`python -m shared.http.router`).
- `server_hooks`, `shutdown`: JSON errors for requests gunicorn rejects; SIGTERM ends streams cleanly.
"""
