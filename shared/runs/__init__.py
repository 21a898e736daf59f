"""The run model: PipelineRun → TaskRuns → pods → step containers, used by the listener and notify alike.

- `model`: pure readers of the objects (the `Succeeded` condition, step containers in spec order,
  a TaskRun's attempts); never calls the API.
- `outcome`: how a run ended (`Outcome`), the one mapping from condition reasons.
- `status`: the `/status` answer: outcome → HTTP code, and its JSON body.
- `watch`: `RunWatch`, one run's objects kept current by three list-watches, shared per process.
- `lookup`: finding a run, waiting for it to exist or to finish.
"""
