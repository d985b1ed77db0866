#!/usr/bin/env bash
# scripts/ee-base-image.sh — build (once) a local base image for the execution environment.
#
#   scripts/ee-base-image.sh            build unless the image exists (cached)
#   scripts/ee-base-image.sh --force    rebuild
#   EE_BASE_SUITE=trixie EE_BASE_IMAGE=name:tag scripts/ee-base-image.sh
#
# No container registry is reachable here, so no ee-minimal image can be pulled: this makes the
# base from Debian (amd64, default suite bookworm) with debootstrap, as lab/image.sh makes the
# Pi image: minbase + python3, python3-pip, python3-venv (ansible-builder's assemble makes a
# venv), ca-certificates. ansible-core, the collections and their requirements are added by
# `ansible-builder build` (scripts/ee-build.sh), not here. Apt lists are dropped (bindep
# installs run `apt-get update` first). Needs root.
set -euo pipefail

SUITE=${EE_BASE_SUITE:-bookworm}
IMAGE=${EE_BASE_IMAGE:-localhost/iotfleet-ee-base:$SUITE}
INCLUDE=python3,python3-pip,python3-venv,ca-certificates
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "ee-base-image.sh: unknown argument: $1" >&2; exit 2 ;;
esac

log() { printf 'ee-base-image.sh: %s\n' "$*"; }
die() { printf 'ee-base-image.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, podman import)"
command -v debootstrap >/dev/null || die "debootstrap missing: run lab/host-setup.sh"
command -v podman >/dev/null || die "podman missing: run lab/host-setup.sh"

# Serialise concurrent builds; the second one finds the image cached.
exec 9>/var/lock/iotfleet-ee-base-image.lock
flock 9

if [[ $FORCE -eq 0 ]] && podman image exists "$IMAGE"; then
  log "$IMAGE exists (cached); use --force to rebuild"
  exit 0
fi

t0=$(date +%s)
ROOT=$(mktemp -d /var/tmp/iotfleet-ee-rootfs.XXXXXX)
cleanup() {
  # debootstrap may leave proc/sys/dev mounts behind on failure: never rm through them.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$ROOT" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$ROOT"
  rm -f "$ROOT.debootstrap.log"
}
trap cleanup EXIT

log "debootstrap $SUITE amd64 (minbase + $INCLUDE) into $ROOT ..."
debootstrap --arch=amd64 --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" \
  >"$ROOT.debootstrap.log" 2>&1 || { tail -30 "$ROOT.debootstrap.log" >&2; die "debootstrap failed"; }
t1=$(date +%s)
log "debootstrap took $((t1 - t0)) s"

# Lean image: no downloaded .debs, apt lists, logs, man pages or changelogs (copyright files stay).
rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
rm -rf "$ROOT"/usr/share/doc/*/changelog* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
: >"$ROOT/etc/machine-id"

t2=$(date +%s)
log "importing as $IMAGE ..."
tar -C "$ROOT" -c . | podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "iotfleet.aws EE base (Debian $SUITE amd64)" \
  --quiet - "$IMAGE" >/dev/null
t3=$(date +%s)
log "import took $((t3 - t2)) s; total $((t3 - t0)) s"
podman image ls "$IMAGE"
