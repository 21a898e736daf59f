"""The node's two images, made locally from Debian packages: no registry is reachable here.

- `pause`: Kubernetes' own `build/pause/linux/pause.c` from the same source package as the
  kubelet (install.sh keeps it), compiled static: the pod sandbox image.
- `busybox`: Debian's `busybox-static` in a one-file image: every step container runs it.

Each is built with buildah (`FROM scratch` + one file) into a docker archive for
`ctr images import`, and cached under ~/.cache keyed by the content of its inputs.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import binaries

PAUSE = "localhost/tpl-pause:3.4"
BUSYBOX = "localhost/tpl-busybox:1"
# Never present on the node: a step with this image waits in ErrImageNeverPull.
MISSING = "localhost/tpl-not-on-this-node:1"


@dataclass(frozen=True)
class Image:
    ref: str
    archive: Path


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _buildah(storage: Path, *args: str) -> str:
    cmd = [
        "buildah",
        "--root",
        str(storage / "root"),
        "--runroot",
        str(storage / "run"),
        "--storage-driver",
        "vfs",
        *args,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _one_file_image(ref: str, source: Path, target: str, entrypoint: list[str], out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tpl-buildah-") as tmp:
        storage = Path(tmp)
        container = _buildah(storage, "from", "scratch")
        _buildah(storage, "copy", "--chmod", "0755", container, str(source), target)
        _buildah(storage, "config", "--entrypoint", str(entrypoint).replace("'", '"'), container)
        _buildah(storage, "commit", "--quiet", container, ref)
        partial = out.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _buildah(storage, "push", "--quiet", ref, f"docker-archive:{partial}:{ref}")
        partial.rename(out)
        # vfs layers are plain directories; buildah's own clean-up needs its storage.
        subprocess.run(
            ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"), "rm", "--all"],
            check=False,
            capture_output=True,
        )


def node_images() -> list[Image]:
    """The pause and busybox images as docker archives, built once per machine and input."""
    cache = binaries.cache_root() / "images"
    cache.mkdir(parents=True, exist_ok=True)
    pause_c = binaries.pause_source()
    busybox = Path("/bin/busybox")
    images: list[Image] = []

    pause_archive = cache / f"pause-{_digest(pause_c)}.tar"
    if not pause_archive.exists():
        with tempfile.TemporaryDirectory(prefix="tpl-pause-") as tmp:
            binary = Path(tmp) / "pause"
            subprocess.run(
                ["gcc", "-Os", "-static", "-Wall", "-o", str(binary), str(pause_c)], check=True, capture_output=True
            )
            subprocess.run(["strip", str(binary)], check=False, capture_output=True)
            _one_file_image(PAUSE, binary, "/pause", ["/pause"], pause_archive)
    images.append(Image(PAUSE, pause_archive))

    busybox_archive = cache / f"busybox-{_digest(busybox)}.tar"
    if not busybox_archive.exists():
        _one_file_image(BUSYBOX, busybox, "/bin/busybox", ["/bin/busybox", "sh"], busybox_archive)
    images.append(Image(BUSYBOX, busybox_archive))
    return images
