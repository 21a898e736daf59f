"""The real node's own network: a network namespace joined to the host by a veth pair.

The kubelet refuses a loopback node IP, and the apiserver must dial the kubelet for `pods/log`;
so the node gets an address of the test bed's own, on a veth whose other end is in a network
namespace that only this sandbox uses. The namespace has no default route: nothing a pod or the
kubelet sends can leave the machine (kubelet 1.20 probes 169.254.169.254 at start; inside, it
fails at once with "network unreachable").
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX = "tpl-node-"
# One /30 per owning process id, inside 10.213.0.0/16: host side .1, node side .2.
_SUBNET_BASE = (10, 213)
# veth MTU 65535: at 1500, log reads through the apiserver ran about 2x slower.
MTU = 65535
# Pods that are not hostNetwork get an address here, on a bridge inside the namespace (the node's
# CNI config); the host reaches them through the veth. Fixed: one real node per machine (the lock).
POD_CIDR = "10.214.0.0/24"
POD_GATEWAY = "10.214.0.1"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class NodeNetwork:
    netns: str
    host_if: str
    node_if: str
    host_ip: str
    node_ip: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.netns)

    @classmethod
    def for_owner(cls, pid: int) -> NodeNetwork:
        block = (pid % 16000) * 4
        a, b = _SUBNET_BASE
        third, fourth = divmod(block, 256)
        return cls(
            netns=f"{PREFIX}{pid}",
            host_if=f"tplh{pid % 100000}",
            node_if=f"tpln{pid % 100000}",
            host_ip=f"{a}.{b}.{third}.{fourth + 1}",
            node_ip=f"{a}.{b}.{third}.{fourth + 2}",
        )

    @classmethod
    def create(cls) -> NodeNetwork:
        net = cls.for_owner(os.getpid())
        net.delete()
        try:
            _ip("netns", "add", net.netns)
            _ip("link", "add", net.host_if, "mtu", str(MTU), "type", "veth", "peer", "name", net.node_if)
            _ip("link", "set", net.node_if, "netns", net.netns)
            _ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_if)
            _ip("link", "set", net.host_if, "up")
            _ip("-n", net.netns, "addr", "add", f"{net.node_ip}/30", "dev", net.node_if)
            _ip("-n", net.netns, "link", "set", net.node_if, "mtu", str(MTU), "up")
            _ip("-n", net.netns, "link", "set", "lo", "up")
            # Goes with the veth when the namespace is deleted.
            _ip("route", "add", POD_CIDR, "via", net.node_ip, "dev", net.host_if)
        except BaseException:
            net.delete()
            raise
        return net

    def forward_service(self, service_ip: str, port: int, to_ip: str, to_port: int) -> None:
        """kube-proxy's job for one ClusterIP Service, inside the namespace: connections to
        `service_ip:port` from pods (PREROUTING) and from the node itself (OUTPUT) go to
        `to_ip:to_port`; anything else addressed to `service_ip` is refused here, since the host
        side forwards and would send it on."""
        dnat = ["-d", f"{service_ip}/32", "-p", "tcp", "--dport", str(port), "-j", "DNAT"]
        dnat += ["--to-destination", f"{to_ip}:{to_port}"]
        # Output from the node needs a route before nat OUTPUT can rewrite the destination.
        _ip("-n", self.netns, "route", "replace", f"{service_ip}/32", "via", self.host_ip, "dev", self.node_if)
        for rule in (
            ["-t", "nat", "-A", "PREROUTING", *dnat],
            ["-t", "nat", "-A", "OUTPUT", *dnat],
            ["-A", "FORWARD", "-d", f"{service_ip}/32", "-j", "REJECT"],
            ["-A", "OUTPUT", "-d", f"{service_ip}/32", "-j", "REJECT"],
        ):
            subprocess.run(["nsenter", f"--net={self.path}", "iptables", *rule], check=True, capture_output=True)

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def delete(self) -> None:
        """Removes the namespace (and the veth pair with it); processes inside must be gone."""
        if (NETNS_DIR / self.netns).exists():
            _ip("netns", "del", self.netns, check=False)
        _ip("link", "del", self.host_if, check=False)


def stale_networks() -> list[tuple[int, NodeNetwork]]:
    """Namespaces left by a sandbox whose process died without tearing down."""
    out: list[tuple[int, NodeNetwork]] = []
    if not NETNS_DIR.is_dir():
        return out
    for entry in NETNS_DIR.iterdir():
        if entry.name.startswith(PREFIX) and entry.name[len(PREFIX) :].isdigit():
            pid = int(entry.name[len(PREFIX) :])
            if not _pid_alive(pid) or pid == os.getpid():
                out.append((pid, NodeNetwork.for_owner(pid)))
    return out
