#!/usr/bin/env bash
# Builds the stand-in base images the deploy test needs, tagged with the names deploy/Dockerfile and
# compose.yaml use (no image registry is reachable here). Each is skipped when its tag exists.
#   debian:bookworm-slim   debootstrap --variant=minbase bookworm
#   redis:7.2-alpine, postgres:15-bookworm, nginx:1.27-alpine   FROM it, Debian's packages
#   swift:6.3-bookworm     FROM it, this machine's toolchain (the folder above `which swift`'s bin)
# Usage: standins.sh [debian] [swift] [services]   (default: all; debian is made first when missing)
# Needs: podman (with the runtime wrapper configured by the caller), debootstrap, root.
set -euo pipefail
wanted=" ${*:-debian swift services} "
here=$(cd "$(dirname "$0")" && pwd)
have() { podman image exists "$1"; }
# Quiet unless it fails: then its output.
quiet() {
  local out
  out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; return 1; fi
  rm -f "$out"
}
log() { echo "[standins] $*"; }

if ! have docker.io/library/debian:bookworm-slim; then
  mirror=${DEBIAN_MIRROR:-$(awk '$1=="URIs:" {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d /var/tmp/ac-debootstrap.XXXXXX)
  log "debootstrap bookworm from $mirror"
  quiet debootstrap --variant=minbase bookworm "$root" "$mirror"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | podman import -q --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$root"
fi

[[ "$wanted" == *" services "* ]] && for pair in redis:docker.io/library/redis:7.2-alpine postgres:docker.io/library/postgres:15-bookworm \
            nginx:docker.io/library/nginx:1.27-alpine; do
  dir=${pair%%:*}
  tag=${pair#*:}
  if ! have "$tag"; then
    log "building $tag"
    quiet podman build -t "$tag" "$here/$dir"
  fi
done

tag=docker.io/library/swift:6.3-bookworm
if [[ "$wanted" == *" swift "* ]] && ! have "$tag"; then
  swift_bin=$(command -v swift)
  swift_bin=$(readlink -f "$swift_bin")
  toolchain=$(dirname "$(dirname "$swift_bin")")
  ctx=$(mktemp -d)
  cp "$here/swift/Containerfile" "$ctx/"
  # The url.<mirror>.insteadOf settings (system and global) that point package URLs at the mirror.
  { git config --system --list 2>/dev/null || true; git config --global --list 2>/dev/null || true; } \
    | { grep -i '^url\..*\.insteadof=' || true; } | while IFS= read -r line; do
      git config --file "$ctx/gitconfig" --add "${line%%=*}" "${line#*=}"
    done
  touch "$ctx/gitconfig"
  log "building $tag from $toolchain"
  quiet podman build -t "$tag" -v "$toolchain:/toolchain:ro" "$ctx"
  rm -rf "$ctx"
fi
