"""Tekton access library shared by every function of tekton-pipeline-listener.

One package (wing) per concern; data flows one way, Kubernetes objects → run model → log and
status events → writers → HTTP. Each wing imports only those listed after it:

- `http`: the endpoint wrapper, request parsing, responses, routing, server hooks and shutdown.
- `notify`: reporting run state to git systems and chat.
- `logs`: container reader → run reader → log events → masking → writers, and resume cursors.
- `runs`: the run model (PipelineRun → TaskRuns → pods → step containers), its live watch,
  lookup, outcome and status; used by the listener and notify alike.
- `auth`: who may call the protected endpoints.
- `kube`: the Kubernetes API adapter, retry policy, list-watch and naming rules; knows nothing of Tekton.
- `config`: configuration from the environment, one loader and one failure policy.

docs/architecture.md draws the wings and follows one log line and one status request through them.
"""
