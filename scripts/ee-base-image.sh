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
PROG=ee-base-image.sh
# shellcheck source=lab/debootstrap.sh
. "$(dirname "$0")/../lab/debootstrap.sh"

debootstrap_args 2,13 "$@"
debootstrap_preflight
debootstrap_lock_or_cached /var/lock/iotfleet-ee-base-image.lock
debootstrap_root amd64 "$SUITE" "$INCLUDE" iotfleet-ee-rootfs

# Lean image: no downloaded .debs, apt lists, logs, man pages or changelogs (copyright files stay).
rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
rm -rf "$ROOT"/usr/share/doc/*/changelog* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
: >"$ROOT/etc/machine-id"

debootstrap_import "iotfleet.aws EE base (Debian $SUITE amd64)" \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]'
