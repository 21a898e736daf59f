"""The service image of this tree, for tests: built by image/build.py, or found by its content key
when `make image` (or an earlier test) built it already.

- `image_ref()`: the image's reference in the local podman/docker store.
- `image_archive()`: the image saved as an OCI archive (docker archive with docker), cached by
  content key, for a node's containerd: `ctr_import_command(archive)` is
  `ctr -n k8s.io images import --base-name localhost/tekton-pipeline-listener <archive>`
  (checked with containerd 1.6.20: the image is then `image_ref()` on the node too). A pod uses it
  with `imagePullPolicy: Never`, or IfNotPresent (the tag is a content key, never `latest`).
- `require_engine()`: skips a test where no container engine is installed; under CI=true a
  missing engine fails instead, so CI never passes without running the image.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from image import build
from image.paths import IMAGE_CACHE
from tests.needs import need

REPOSITORY = build.REPOSITORY


def require_engine() -> str:
    try:
        return build.engine()
    except SystemExit as missing:
        need("the image tests need a container engine", str(missing))
        raise  # not reached: need() has skipped or failed the test


@functools.cache
def image_ref() -> str:
    require_engine()
    return build.build()


def image_archive() -> Path:
    ref = image_ref()
    key = ref.rsplit(":", 1)[1]
    path = IMAGE_CACHE / f"archive-{build.engine()}-{key}.tar"
    if not path.exists():
        for stale in IMAGE_CACHE.glob("archive-*.tar"):  # one archive at a time: each is ~100 MB
            stale.unlink()
        partial = build.save_oci_archive(ref, path.with_suffix(".partial"))
        partial.rename(path)
    return path


def ctr_import_command(archive: Path, namespace: str = "k8s.io", address: str | None = None) -> list[str]:
    ctr = shutil.which("ctr") or "ctr"
    command = [ctr, "-n", namespace]
    if address:
        command += ["--address", address]
    return [*command, "images", "import", "--base-name", REPOSITORY, str(archive)]
