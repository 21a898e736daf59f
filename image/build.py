"""`make image`: builds the service image with podman (or docker), on the base chosen by
PYTHON_IMAGE, and prints its reference on the last line.

- No PYTHON_IMAGE: a Debian bookworm base made here by image/base.sh (debootstrap; for machines
  that reach no registry). PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>: the official one.
- The wheels are downloaded on the host, hash-checked, into a cache (image/wheelhouse.py); the
  project's own wheel is built on the host too, where a C compiler is (shared/logs/_rows.c).
- The image is tagged by a key over everything that goes into it (the build context and the base
  image's id): an unchanged tree is not built again, and tests can ask for "the image of this tree".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from image import wheelhouse
from image.paths import CONTAINERS_CONF, CONTEXT_WHEELS, DOCKERFILE, IMAGE_DIR, ROOT

REPOSITORY = "localhost/tekton-pipeline-listener"
DOCKERIGNORE = ROOT / ".dockerignore"
# Builds of other tree states kept in the local store (this worktree's, other checkouts').
KEEP_IMAGES = 4


def engine() -> str:
    """podman where it is installed, else docker with a daemon that answers."""
    chosen = os.environ.get("CONTAINER_ENGINE")
    if chosen:
        return chosen
    if shutil.which("podman"):
        return "podman"
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    raise SystemExit("image: neither podman nor a running docker; run image/install-tools.sh as root")


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))  # runc and ulimits, without editing /etc
    return env


def run_engine(*args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [engine(), *args], env=engine_env(), check=True, text=True, stdout=subprocess.PIPE if capture else None
    )
    return result.stdout.strip() if capture else ""


def inspect(ref: str) -> dict | None:
    result = subprocess.run(
        [engine(), "image", "inspect", ref], env=engine_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


def local_base() -> str:
    """The debootstrapped base, made (or taken from the cache) by image/base.sh."""
    out = subprocess.run(
        ["bash", str(IMAGE_DIR / "base.sh")], env=engine_env(), check=True, text=True, stdout=subprocess.PIPE
    ).stdout
    return out.strip().splitlines()[-1]


def context_files() -> list[Path]:
    """Every file the build can read: what .dockerignore lets through, minus caches."""
    allowed = [line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().split() if line.startswith("!")]
    files = {DOCKERFILE, DOCKERIGNORE}
    for entry in allowed:
        path = ROOT / entry
        if path == CONTEXT_WHEELS:  # staged from the lock files, which are in the key
            continue
        candidates = path.rglob("*") if path.is_dir() else [path]
        files.update(p for p in candidates if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return sorted(files)


def content_key(base: str) -> str:
    digest = hashlib.sha256()
    info = inspect(base)
    digest.update((info["Id"] if info else base).encode())
    for path in context_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def build(python_image: str | None = None) -> str:
    """The reference of this tree's image, built unless it already exists."""
    base = python_image or os.environ.get("PYTHON_IMAGE") or local_base()
    ref = f"{REPOSITORY}:{content_key(base)}"
    if inspect(ref) is None:
        wheels = wheelhouse.download(wheelhouse.host_arch())
        wheelhouse.stage(wheels, CONTEXT_WHEELS)
        wheelhouse.project_wheel(wheels, CONTEXT_WHEELS)
        print(f"image: building {ref} on {base}", file=sys.stderr)
        # No network in the build: every input is in the context (and CNI need not be set up).
        args = ["--network", "none", "--build-arg", f"PYTHON_IMAGE={base}", "-t", ref, "-f", str(DOCKERFILE)]
        run_engine("build", *args, str(ROOT))
    run_engine("tag", ref, f"{REPOSITORY}:latest")
    prune(keep=ref)
    image, base_info = inspect(ref), inspect(base)
    assert image is not None and base_info is not None
    print(
        f"image: {ref}: {megabytes(image['Size'])}, {megabytes(image['Size'] - base_info['Size'])} over "
        f"the base {base} ({megabytes(base_info['Size'])})",
        file=sys.stderr,
    )
    return ref


def prune(keep: str, newest: int = KEEP_IMAGES) -> None:
    """Untags all but the newest builds (each tree state is one): other checkouts on the machine
    may still be using theirs, so a few stay; an image a container uses is not removed."""
    tags = run_engine("images", "--filter", f"reference={REPOSITORY}", "--format", "{{.Tag}}", capture=True).split()
    keyed = [tag for tag in tags if tag != "latest" and f"{REPOSITORY}:{tag}" != keep]  # newest first
    for tag in keyed[newest - 1 :]:
        subprocess.run([engine(), "rmi", f"{REPOSITORY}:{tag}"], env=engine_env(), capture_output=True, check=False)


def save_oci_archive(ref: str, path: Path) -> Path:
    """The image as an OCI archive, e.g. for `ctr -n k8s.io images import`."""
    path.unlink(missing_ok=True)
    if engine() == "podman":
        run_engine("save", "--quiet", "--format", "oci-archive", "-o", str(path), ref, capture=True)
    else:  # docker saves a docker archive, which ctr imports as well
        run_engine("save", "-o", str(path), ref, capture=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base image (default: $PYTHON_IMAGE, else the local debootstrap base)")
    args = parser.parse_args()
    print(build(args.base))


if __name__ == "__main__":
    main()
