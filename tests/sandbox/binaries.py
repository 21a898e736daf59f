"""Where the sandbox's binaries come from: `install.sh` builds or finds them, once per machine."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).resolve().parent / "install.sh"


def cache_root() -> Path:
    override = os.environ.get("SANDBOX_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tekton-pipeline-listener"


@functools.cache
def _install(*names: str, node: bool = False) -> dict[str, str]:
    """Runs install.sh for `names` (it prints one path per name, in order) and checks each."""
    args = ["bash", str(INSTALL_SCRIPT), *(["--node"] if node else []), *names]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True)
    paths = out.stdout.strip().splitlines()[-len(names) :]
    found = dict(zip(names, paths, strict=True))
    for name, path in found.items():
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"install.sh printed {path!r} for {name}, which is not an executable")
    return found


def kube_apiserver() -> str:
    """Path of a kube-apiserver binary; builds it (a few minutes) on a fresh machine."""
    override = os.environ.get("SANDBOX_KUBE_APISERVER")
    if override:
        return override
    return _install("kube-apiserver")["kube-apiserver"]


def node_parts() -> dict[str, str]:
    """The kubelet and kube-controller-manager (built from the same source in one `make`, cached)
    and, installed by the same script, containerd, runc, CNI plugins, buildah, busybox, iptables
    and pause.c: everything a real node and its pods' in-cluster credentials need."""
    return _install("kube-apiserver", "kubelet", "kube-controller-manager", node=True)


def pause_source() -> Path:
    node_parts()
    found = sorted(cache_root().glob("pause/*/pause.c"))
    if not found:
        raise RuntimeError("install.sh --node kept no pause.c under the cache")
    return found[-1]


def etcd() -> str:
    path = shutil.which("etcd")
    if path is None:
        kube_apiserver()  # install.sh also installs etcd-server
        path = shutil.which("etcd")
    if path is None:
        raise RuntimeError("etcd not found after install.sh ran")
    return path


def kubectl() -> str | None:
    return shutil.which("kubectl")
