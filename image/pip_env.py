"""How the image scripts call pip on the host: PyPI only, wheels for the image's Python and platform.

The machine's own pip settings (extra local indexes, find-links, constraints) are left out, so the
hashes recorded and checked are those of the files PyPI serves, the same on every machine. The CA
settings stay: PyPI may only be reachable through a TLS-intercepting proxy.
"""

from __future__ import annotations

import os

# The image's interpreter: Debian bookworm's python3 and python:3.11-slim-bookworm are both 3.11.
PYTHON_VERSION = "3.11"
# Debian bookworm has glibc 2.36: any manylinux wheel up to that runs on it. This pip does not
# widen a manylinux_2_N platform to older ones by itself, so every tag is listed.
GLIBC_MINOR = 36
# The CPU architectures the lock carries hashes for (`uname -m` names).
ARCHES = ("x86_64", "aarch64")
# pip settings from the environment that would add sources other than PyPI.
_DROPPED = {"PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"}


def env() -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    clean["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    clean["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return clean


def platforms(arch: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def target_args(arch: str) -> list[str]:
    """pip options selecting binary wheels for the image's CPython 3.11 on `arch`."""
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for abi in ("cp311", "abi3", "none"):
        args += ["--abi", abi]
    for tag in platforms(arch):
        args += ["--platform", tag]
    return args
