"""The wheels the image installs, downloaded on the host into a cache and handed to the build.

The build stage installs offline from them with `--require-hashes`; pip checks every hash here
already. The cache is keyed by the lock files, so a second build asks no index at all.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from image import pip_env
from image.paths import BUILD_REQUIREMENTS, IMAGE_CACHE, REQUIREMENTS, ROOT

PROJECT_WHEEL = "tekton_pipeline_listener-*.whl"

# podman/docker architecture names for `uname -m` ones.
ARCH_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    machine = platform.machine()
    return ARCH_NAMES.get(machine, machine)


def lock_key() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, BUILD_REQUIREMENTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def download(arch: str) -> Path:
    """The cached wheelhouse for `arch`, filled (hash-checked) if it is not yet complete."""
    wheels = IMAGE_CACHE / f"wheels-{arch}-{lock_key()}"
    if (wheels / ".complete").exists():
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    command += ["--dest", str(wheels), "-r", str(REQUIREMENTS), "-r", str(BUILD_REQUIREMENTS)]
    subprocess.run(command + pip_env.target_args(arch), env=pip_env.env(), check=True)
    (wheels / ".complete").touch()
    return wheels


def stage(wheels: Path, into: Path) -> None:
    """Puts the wheels into the build context (hard links where the file system allows)."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for wheel in wheels.glob("*.whl"):
        try:
            os.link(wheel, into / wheel.name)
        except OSError:
            shutil.copy2(wheel, into / wheel.name)


def project_wheel(wheels: Path, into: Path) -> Path:
    """The project's own wheel, built here into `into` with the locked setuptools from `wheels`:
    the image's build stage has no compiler (and no network), so `shared.logs._rows` (setup.py)
    is compiled on this machine, for the CPython 3.11 the image runs."""
    if sys.version_info[:2] != (3, 11):
        raise SystemExit(f"image: the image runs CPython 3.11; build it from a 3.11 venv, not {sys.version.split()[0]}")
    for old in into.glob(PROJECT_WHEEL):
        old.unlink()
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    command += ["--find-links", str(wheels), "--wheel-dir", str(into), str(ROOT)]
    subprocess.run(command, env=pip_env.env(), check=True)
    (built,) = into.glob(PROJECT_WHEEL)
    with zipfile.ZipFile(built) as wheel:
        if not any(name.startswith("shared/logs/_rows.") and name.endswith(".so") for name in wheel.namelist()):
            raise SystemExit("image: shared/logs/_rows.c did not compile: install gcc and CPython 3.11's headers")
    return built
