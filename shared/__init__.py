"""Tekton access library shared by every function of tekton-pipeline-listener.

One package per concern; data flows one way, from Kubernetes objects to HTTP:

- `kube`: the Kubernetes API adapter (official client), naming rules; knows nothing of Tekton.
- `runs`: the run model (PipelineRun → TaskRuns → pods → step containers), its live watch,
  lookup and status mapping; used by the listener and notify alike.
- `logs`: container reader → run reader → log events → masking → writers, and resume cursors.
- `http`: the endpoint wrapper, request parsing, routing, server hooks and shutdown.
- `auth`: who may call the protected endpoints.
- `notify`: reporting run state to git systems and chat.
- `config`: configuration from the environment.
"""
