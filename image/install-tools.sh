#!/usr/bin/env bash
# Installs what `make image` and the image tests need on a fresh Debian bookworm machine, as root:
# podman (it builds with its own buildah library), runc (see containers.conf), debootstrap (the
# local base). Does nothing when they are there. The podman settings are not written to /etc: the
# scripts pass image/containers.conf with CONTAINERS_CONF.
set -euo pipefail
# shellcheck source=image/common.sh
. "$(dirname "$0")/common.sh"

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
CONTAINERS_CONF="$CONTAINERS_CONF" podman info --format '{{.Host.OCIRuntime.Name}}' | grep -qx runc \
  || { log "podman does not pick runc from $CONTAINERS_CONF"; exit 1; }
