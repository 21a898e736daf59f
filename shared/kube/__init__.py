"""Kubernetes access: the narrow API adapter. Nothing here knows Tekton or HTTP callers.

- `client`: `Kube`, the few reads the listener makes (GET, LIST, WATCH, `pods/log`) as plain dicts,
  on the official client's configuration, auth and connection pool.
- `errors`: what a request can fail with (`NotFound`, `Forbidden`, `Gone`, `Unreachable`, ...).
- `retry`: the one retry policy (capped exponential backoff, the grace for a restarting apiserver).
- `listwatch`: the one resumable list-watch (list, watch from resourceVersion, re-list on 410).
- `names`: Kubernetes naming rules, checked before any API call.
"""
