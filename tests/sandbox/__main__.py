"""`python -m tests.sandbox [scenario]`: a sandbox to poke at by hand, replaying a demo run.

Starts etcd + kube-apiserver + the kubelet stand-in, prints how to reach it with kubectl, then
plays the scenario (default `success`, with slow output) under a new name each loop until
Ctrl-C or SIGTERM; every process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .cluster import LISTENER_NAMESPACE, Cluster
from .scenarios import SCENARIOS
from .simulator import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    parser.add_argument("scenario", nargs="?", default="success", choices=sorted(SCENARIOS))
    parser.add_argument("--namespace", default=LISTENER_NAMESPACE)
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--real-node", action="store_true", help="run the pods on a real kubelet + containerd node")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    what = "a real kubelet/containerd node" if args.real_node else "kubelet stand-in"
    print(f"starting the sandbox (etcd, kube-apiserver, {what})...", flush=True)
    with Cluster.start(real_node=args.real_node) as cluster:
        kubeconfig = cluster.kubeconfig
        print(f"\nkubeconfig: {kubeconfig}\n")
        print(f"  export KUBECONFIG={kubeconfig}")
        print(f"  kubectl -n {args.namespace} get pipelineruns,taskruns,pods")
        print(f"  kubectl -n {args.namespace} get pipelineruns -w")
        print(f"  kubectl -n {args.namespace} logs -f <pod> -c step-<name>")
        print(f"  kubectl -n {args.namespace} logs -f -l tekton.dev/pipelineRun=<run> --all-containers\n")
        sim = Simulator(cluster, real_pods=args.real_node)
        try:
            while not stop.is_set():
                knobs = {"interval": 0.5} if args.scenario == "success" else {}
                run = sim.play(SCENARIOS[args.scenario](**knobs), namespace=args.namespace)
                print(f"playing {args.scenario}: pipelinerun {run.namespace}/{run.name}", flush=True)
                while not run.done.wait(0.2):
                    if stop.is_set():
                        break
                if run.error is not None:
                    print(f"  simulator error: {run.error!r}", file=sys.stderr)
                stop.wait(args.pause)
        finally:
            sim.stop()
            print("stopping the sandbox...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
