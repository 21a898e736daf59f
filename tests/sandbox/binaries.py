"""Where the sandbox's binaries come from: `install.sh` builds or finds them, once per machine."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).resolve().parent / "install.sh"


@functools.cache
def kube_apiserver() -> str:
    """Path of a kube-apiserver binary; builds it (about 5 minutes) on a fresh machine."""
    override = os.environ.get("SANDBOX_KUBE_APISERVER")
    if override:
        return override
    out = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    path = out.stdout.strip().splitlines()[-1]
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"install.sh printed {path!r}, which is not an executable")
    return path


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
