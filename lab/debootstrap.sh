# shellcheck shell=bash
# lab/debootstrap.sh — sourced by lab/image.sh (the Pi Zero image) and scripts/ee-base-image.sh (the
# execution environment's base): a podman image from a Debian root filesystem made by debootstrap.
# The caller sets PROG (its name in messages) and IMAGE, then calls, in order:
#
#   debootstrap_args HELP_LINES "$@"          --force (FORCE=1: rebuild), -h/--help (the caller's
#                                             header lines HELP_LINES, e.g. 2,15)
#   debootstrap_preflight                     root, debootstrap and podman (lab/host-setup.sh)
#   debootstrap_lock_or_cached LOCKFILE       one build at a time; exits 0 when IMAGE exists (FORCE=0)
#   debootstrap_root ARCH SUITE INCLUDE NAME  minbase + INCLUDE into ROOT (/var/tmp/NAME.XXXXXX),
#                                             removed at exit (mounts left behind first)
#   ... the caller configures "$ROOT" ...
#   debootstrap_import MESSAGE [podman import --change ...]   tar ROOT into IMAGE

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

debootstrap_args() {
  local help=$1
  shift
  FORCE=0
  case "${1:-}" in
    --force) FORCE=1 ;;
    "") ;;
    -h|--help) sed -n "${help}p" "$0"; exit 0 ;;
    *) echo "$PROG: unknown argument: $1" >&2; exit 2 ;;
  esac
}

debootstrap_preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, podman import)"
  command -v debootstrap >/dev/null || die "debootstrap missing: run lab/host-setup.sh"
  command -v podman >/dev/null || die "podman missing: run lab/host-setup.sh"
}

# Serialise concurrent builds (parallel test runs); the second one finds the image cached.
debootstrap_lock_or_cached() {
  exec 9>"$1"
  flock 9
  if [[ $FORCE -eq 0 ]] && podman image exists "$IMAGE"; then
    log "$IMAGE exists (cached); use --force to rebuild"
    exit 0
  fi
}

debootstrap_cleanup() {
  # debootstrap may leave proc/sys/dev mounts behind on failure: never rm through them.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$ROOT" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$ROOT"
  rm -f "$ROOT.debootstrap.log"
}

debootstrap_root() {
  local arch=$1 suite=$2 include=$3 name=$4
  T0=$(date +%s)
  ROOT=$(mktemp -d "/var/tmp/$name.XXXXXX")
  trap debootstrap_cleanup EXIT
  log "debootstrap $suite $arch (minbase + $include) into $ROOT ..."
  debootstrap --arch="$arch" --variant=minbase --include="$include" "$suite" "$ROOT" \
    >"$ROOT.debootstrap.log" 2>&1 || { tail -30 "$ROOT.debootstrap.log" >&2; die "debootstrap failed"; }
  rm -f "$ROOT.debootstrap.log"
  log "debootstrap took $(($(date +%s) - T0)) s"
}

debootstrap_import() {
  local message=$1 t2 t3
  shift
  t2=$(date +%s)
  log "importing as $IMAGE ..."
  tar -C "$ROOT" -c . | podman import "$@" --message "$message" --quiet - "$IMAGE" >/dev/null
  t3=$(date +%s)
  log "import took $((t3 - t2)) s; total $((t3 - T0)) s"
  podman image ls "$IMAGE"
}
