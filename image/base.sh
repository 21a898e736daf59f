#!/usr/bin/env bash
# Makes a Debian bookworm base with Debian's Python 3.11 for machines that reach no container
# registry: debootstrap (minbase) into a folder, tar it once into the cache, import it into the
# container engine. A second run finds the image (or the cached tarball) and does nothing.
#
# Prints the image reference on its last line.
set -euo pipefail
# shellcheck source=image/common.sh
. "$(dirname "$0")/common.sh"

SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
# The cache key changes when what goes into the base changes.
key=$(printf '%s\n' "$SUITE" "$PACKAGES" "$(sed -n '/^# --- rootfs/,$p' "$0")" | sha256sum | cut -c1-12)
ref="localhost/tekton-pipeline-listener-base:$SUITE-$key"
tarball="$IMAGE_CACHE/base-$SUITE-$key.tar"
engine=$(container_engine) || { log "no podman or docker: run image/install-tools.sh"; exit 1; }

if "$engine" image exists "$ref" 2>/dev/null || "$engine" image inspect "$ref" >/dev/null 2>&1; then
  log "base $ref present"
  echo "$ref"
  exit 0
fi

mirror() {
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep . \
    || awk '$1 == "deb" && $2 ~ /^http/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null | grep . \
    || echo http://deb.debian.org/debian
}

# --- rootfs: what the base holds (edits below this line make a new base)
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap missing: run image/install-tools.sh"; exit 1; }
  mkdir -p "$IMAGE_CACHE"
  root=$(mktemp -d "$IMAGE_CACHE/rootfs.XXXXXX")
  trap 'as_root rm -rf "$root"' EXIT
  log "debootstrap $SUITE ($PACKAGES) from $(mirror); a few minutes, once"
  as_root debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(mirror)" >&2
  # apt's downloads and indexes are not part of a runtime base.
  as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  as_root tar --numeric-owner -C "$root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
log "importing $tarball as $ref"
"$engine" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/usr/bin/python3"]' \
  "$tarball" "$ref" >&2
echo "$ref"
