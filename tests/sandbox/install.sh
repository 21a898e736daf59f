#!/usr/bin/env bash
# Installs what the sandbox needs on a fresh Debian bookworm machine and builds kube-apiserver
# from Debian's own `kubernetes` source package, caching the binary under ~/.cache so only a
# fresh machine pays the build (under 5 minutes for all three binaries on 2 quiet cores).
#
# Usage: install.sh [--node] [binary...]   (default binary: kube-apiserver)
#   --node  also the parts of a real node: the kubelet and kube-controller-manager (its
#           serviceaccount-token and root-ca-cert-publisher controllers give pods in-cluster
#           credentials), containerd, runc, CNI plugins, buildah, busybox, iptables (Debian
#           packages) and pause.c from the same Kubernetes source.
#
# Prints the path of each requested binary, one per line, in the order asked.
set -euo pipefail

NODE=0
WANTED=()
for arg in "$@"; do
  case "$arg" in
    --node) NODE=1 ;;
    -*) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    *) WANTED+=("$arg") ;;
  esac
done
[ "${#WANTED[@]}" -gt 0 ] || WANTED=(kube-apiserver)
if [ "$NODE" = 1 ]; then
  for part in kubelet kube-controller-manager; do
    case " ${WANTED[*]} " in *" $part "*) ;; *) WANTED+=("$part") ;; esac
  done
fi

CACHE_ROOT="${SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tekton-pipeline-listener}"
SUITE=bookworm
log() { printf 'sandbox-install: %s\n' "$*" >&2; }

# One install at a time per cache (two test workers may both find a binary missing): the second
# waits, then finds what the first built.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.install.lock"
flock 9

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_debs=()
command -v etcd >/dev/null 2>&1 || need_debs+=(etcd-server)
command -v go >/dev/null 2>&1 || need_debs+=(golang-go)
command -v kubectl >/dev/null 2>&1 || need_debs+=(kubernetes-client)
command -v dpkg-source >/dev/null 2>&1 || need_debs+=(dpkg-dev)
command -v openssl >/dev/null 2>&1 || need_debs+=(openssl)
command -v curl >/dev/null 2>&1 || need_debs+=(curl)
command -v rsync >/dev/null 2>&1 || need_debs+=(rsync)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_debs+=(golang-github-modern-go-reflect2-dev)
if [ "$NODE" = 1 ]; then
  command -v containerd >/dev/null 2>&1 || need_debs+=(containerd)
  command -v runc >/dev/null 2>&1 || need_debs+=(runc)
  [ -x /usr/lib/cni/loopback ] || need_debs+=(containernetworking-plugins)
  command -v buildah >/dev/null 2>&1 || need_debs+=(buildah)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need_debs+=(busybox-static)
  command -v ip >/dev/null 2>&1 || need_debs+=(iproute2)
  command -v nsenter >/dev/null 2>&1 || need_debs+=(util-linux)
  command -v iptables >/dev/null 2>&1 || need_debs+=(iptables)
  command -v gcc >/dev/null 2>&1 || need_debs+=(gcc libc6-dev)
fi
if [ "${#need_debs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_debs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >&2
fi

# The deb-src line reuses the mirror this machine's apt already uses, so no host is hard-coded.
mirror_uri() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      /^URIs:/ {uri=$2}
      /^Suites:/ {for (i=2;i<=NF;i++) if ($i==suite) ok=1}
      /^$/ {if (ok && uri) {print uri; exit} ok=0; uri=""}
      END {if (ok && uri) print uri}' "$f" | head -n1
  done
  grep -hsE "^deb[[:space:]]+[^ ]+[[:space:]]+$SUITE[[:space:]]" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' || true
}

apt_dir="$CACHE_ROOT/apt"
mkdir -p "$apt_dir/lists/partial"
uri=$(mirror_uri | head -n1 || true)
[ -n "$uri" ] || { log "no $SUITE apt source found on this machine"; exit 1; }
echo "deb-src $uri $SUITE main" >"$apt_dir/sources.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/none"
          -o "Dir::State::Lists=$apt_dir/lists" -o "APT::Get::List-Cleanup=0")

version_file="$apt_dir/kubernetes.version"
if [ ! -s "$version_file" ]; then
  log "reading the kubernetes source package index"
  apt-get "${APT_OPTS[@]}" update -qq >&2
  apt-cache "${APT_OPTS[@]}" showsrc kubernetes | awk '/^Version:/ {print $2; exit}' >"$version_file"
fi
version=$(cat "$version_file")
[ -n "$version" ] || { log "kubernetes source package not found"; exit 1; }
# Kubernetes' own build tags leave out what the sandbox never uses: the in-tree cloud providers
# (and their SDKs) and the kubelet's dockershim (the node runs containerd over CRI). The binaries
# are half the size and the build is several times quicker.
TAGS=providerless,dockerless
build="$version+${TAGS//,/+}"
# Each binary is cached on its own, keyed by the source package version and the tags; one `make`
# builds whichever of the wanted ones are missing (they share the Go build cache).
missing=()
for name in "${WANTED[@]}"; do
  [ -x "$CACHE_ROOT/$name/$build/$name" ] || missing+=("$name")
done
# pause.c (the node's pod sandbox image) comes from the same source tree.
pause_src="$CACHE_ROOT/pause/$version/pause.c"
if [ "${#missing[@]}" -eq 0 ] && { [ "$NODE" = 0 ] || [ -s "$pause_src" ]; }; then
  for name in "${WANTED[@]}"; do log "$name $build cached"; done
  for name in "${WANTED[@]}"; do echo "$CACHE_ROOT/$name/$build/$name"; done
  exit 0
fi

work="$CACHE_ROOT/build"
rm -rf "$work"; mkdir -p "$work"
cd "$work"
log "downloading kubernetes $version sources"
[ -s "$version_file" ] && [ -n "$(ls "$apt_dir/lists" | grep -v partial)" ] || apt-get "${APT_OPTS[@]}" update -qq >&2
apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$version" >&2
dsc=$(ls ./*.dsc | head -n1)
dpkg-source --no-check -x "$dsc" src >&2
tree="$work/src"
mkdir -p "$(dirname "$pause_src")"
cp "$tree/build/pause/linux/pause.c" "$pause_src"

if [ "${#missing[@]}" -gt 0 ]; then
  # reflect2 1.0.1 panics under Go >= 1.18 (nil pointer in reflect2.Type2); 1.0.2 is the fix.
  log "replacing vendored reflect2 with Debian's 1.0.2"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2/.git"*

  mkdir -p "$work/gopath/src/k8s.io"
  ln -s "$tree" "$work/gopath/src/k8s.io/kubernetes"
  what=""
  for name in "${missing[@]}"; do what="$what cmd/$name"; done
  log "building${what} with tags $TAGS (under 5 minutes for all three on 2 quiet cores)"
  (
    cd "$work/gopath/src/k8s.io/kubernetes"
    export GOPATH="$work/gopath" CGO_ENABLED=0 GO111MODULE=off GOFLAGS="-tags=$TAGS" GOCACHE="$CACHE_ROOT/gocache"
    export KUBE_GIT_VERSION="v1.20.2" KUBE_GIT_TREE_STATE=clean
    make WHAT="${what# }" >&2
  )
  for name in "${missing[@]}"; do
    built=$(find "$tree/_output" -type f -name "$name" -perm -u+x | head -n1)
    [ -n "$built" ] || { log "build produced no $name"; exit 1; }
    mkdir -p "$CACHE_ROOT/$name/$build"
    cp "$built" "$CACHE_ROOT/$name/$build/$name.tmp" && mv "$CACHE_ROOT/$name/$build/$name.tmp" "$CACHE_ROOT/$name/$build/$name"
    log "$name $build built"
  done
fi
rm -rf "$work"
for name in "${WANTED[@]}"; do echo "$CACHE_ROOT/$name/$build/$name"; done
