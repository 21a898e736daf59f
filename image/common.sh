# Sourced by the image scripts: where things are cached and which container engine to use.
# shellcheck shell=bash
IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGE_DIR/.." && pwd)
CACHE_ROOT="${SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tekton-pipeline-listener}"
IMAGE_CACHE="$CACHE_ROOT/image"
# runc and explicit ulimits without touching /etc (see containers.conf); an explicit
# CONTAINERS_CONF from the caller wins.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$IMAGE_DIR/containers.conf}"

log() { printf 'image: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# podman where it is installed, else docker (a docker whose daemon answers).
container_engine() {
  if [ -n "${CONTAINER_ENGINE:-}" ]; then echo "$CONTAINER_ENGINE"; return; fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  return 1
}
