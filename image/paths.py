"""Where the image's inputs live in the repository and what it caches on the machine."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "image"
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = IMAGE_DIR / "requirements.txt"
BUILD_REQUIREMENTS = IMAGE_DIR / "build-requirements.txt"
CONTAINERS_CONF = IMAGE_DIR / "containers.conf"
# The wheels' place in the build context (.dockerignore lets it through; .gitignore keeps it out).
CONTEXT_WHEELS = ROOT / "build" / "wheels"

_cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
CACHE_ROOT = Path(os.environ.get("SANDBOX_CACHE") or _cache_home / "tekton-pipeline-listener")
IMAGE_CACHE = CACHE_ROOT / "image"
