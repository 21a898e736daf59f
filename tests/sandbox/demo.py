"""`make run`: the listener on the local sandbox, with demo PipelineRuns.

Starts the sandbox, grants the listener's ServiceAccount the shipped Role, serves every function
behind the local router on PORT (default 8080) and plays demo runs: a few finished ones with
fixed names, then a new live run every LOOP seconds. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading

from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.node import unavailable_reason
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import Listener, grant_listener

FIXED = [
    ("demo-success", "success"),
    ("demo-failed", "failure"),
    ("demo-retries", "retries"),
    ("demo-skipped", "when-skipped"),
    ("demo-cancelled", "cancelled"),
]


def main() -> int:
    port = os.environ.get("PORT", "8080")
    user = os.environ.get("DEMO_USERNAME", "demo")
    password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
    loop_seconds = float(os.environ.get("LOOP", "20"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    no_node = unavailable_reason() if os.environ.get("DEMO_NODE", "real") == "real" else "DEMO_NODE is not 'real'"
    if no_node is None:
        print("starting the sandbox (etcd + kube-apiserver + a real kubelet/containerd node)...", flush=True)
    else:
        print(f"starting the sandbox on the kubelet stand-in, not real pods ({no_node})...", flush=True)
    with Cluster.start(real_node=no_node is None) as cluster:
        grant_listener(cluster, LISTENER_NAMESPACE)
        listener = Listener(cluster, port=int(port), AUTH_USERNAME=user, AUTH_PASSWORD=password)
        sim = Simulator(cluster, real_pods=no_node is None)
        with listener:
            for name, scenario in FIXED:
                sim.play(SCENARIOS[scenario](), LISTENER_NAMESPACE, name)
            host = f"http://127.0.0.1:{port}"
            print(
                f"""
tekton-pipeline-listener is serving on {host}   (namespace {LISTENER_NAMESPACE})
credentials: {user}:{password}
kubeconfig of the sandbox (admin): {cluster.kubeconfig}

  curl {host}/health
  curl -N --user '{user}:{password}' {host}/logs/demo-success
  curl -f --user '{user}:{password}' {host}/status/demo-success
  curl -f --user '{user}:{password}' {host}/status/demo-failed      # fails: 422
  curl -N --user '{user}:{password}' '{host}/logs/demo-live-1?format=ndjson'
  kubectl --kubeconfig {cluster.kubeconfig} get pipelineruns -n {LISTENER_NAMESPACE}

a new live run demo-live-<n> starts every {loop_seconds:g}s; Ctrl-C stops everything.
""",
                flush=True,
            )
            count = 0
            try:
                while not stop.is_set():
                    count += 1
                    sim.play(SCENARIOS["success"](lines=20, interval=0.3), LISTENER_NAMESPACE, f"demo-live-{count}")
                    stop.wait(loop_seconds)
            except KeyboardInterrupt:
                pass
            finally:
                sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
