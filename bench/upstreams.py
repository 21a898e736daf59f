"""What the bench measures against: a sandbox cluster whose kubelet serves the logs.

An upstream is a name, a sentence saying what serves the logs (quoted with every figure), and
a way to start a `Cluster` on it. The figures see only the `Cluster` (apiserver, simulator,
listener identity), so a real kubelet node is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from tests.sandbox.cluster import Cluster


@dataclass(frozen=True)
class Upstream:
    key: str
    description: str
    start: Callable[[], AbstractContextManager[Cluster]]


def _real_node() -> AbstractContextManager[Cluster]:
    # in_cluster: the cold-start figure also runs the image as a pod with in-cluster credentials.
    return Cluster.start(real_node=True, in_cluster=True)


UPSTREAMS: dict[str, Upstream] = {
    "standin": Upstream(
        "standin",
        "kube-apiserver 1.20.2 proxying pods/log to the sandbox's kubelet stand-in (Python, a CRI-like in-memory "
        "log record served at memory speed, in the bench process)",
        Cluster.start,
    ),
    "node": Upstream(
        "node",
        "kube-apiserver 1.20.2 proxying pods/log to a real kubelet 1.20.2 + containerd 1.6.20 + runc node: busybox "
        "step containers writing CRI log files on ext4, the kubelet in a network namespace over a veth (MTU 65535); "
        "pods get in-cluster credentials (kube-controller-manager's token controller, the kubernetes Service)",
        _real_node,
    ),
}
