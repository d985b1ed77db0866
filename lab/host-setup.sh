#!/usr/bin/env bash
# lab/host-setup.sh — idempotent host preparation for the iotfleet.aws lab.
#
# Installs podman, qemu-user-static, debootstrap, mosquitto and the stand-in's build deps (when missing),
# writes /etc/containers/containers.conf (runc, cgroupfs, file events logger,
# default_ulimits), mounts binfmt_misc and registers qemu-arm with flags CPF
# (the C flag makes setuid binaries such as sudo work inside armel containers).
#
# Safe to run any number of times. Needs root; without root it prints the
# commands it would run and exits non-zero.
set -euo pipefail

# Installed WITH recommends, as measured: podman then gets netavark (network backend), buildah,
# fuse-overlayfs, slirp4netns; iptables is listed because netavark's port forwarding needs it.
# python3-paho-mqtt: the host-side test of the device client with Debian's paho 1.6, as on a Pi.
# gcc, mosquitto-dev, libmosquitto-dev, libssl-dev, openssl: the AWS IoT Core stand-in builds its broker plugin
# (lab/iotcore/plugin) at start and keeps its registered CAs in an OpenSSL hash directory.
PACKAGES=(podman runc catatonit iptables qemu-user-static binfmt-support debootstrap mosquitto mosquitto-clients python3-paho-mqtt
          gcc libc6-dev mosquitto-dev libmosquitto-dev libssl-dev openssl)
CONTAINERS_CONF=/etc/containers/containers.conf
BINFMT_DIR=/proc/sys/fs/binfmt_misc
QEMU_ARM_INTERP=/usr/libexec/qemu-binfmt/arm-binfmt-P
# Same magic/mask as Debian's /usr/share/binfmts/qemu-arm (ARM 32-bit little-endian ELF).
QEMU_ARM_MAGIC='\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
QEMU_ARM_MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

CONF_CONTENT='# Written by iotfleet.aws lab/host-setup.sh (see /work/shared/LAB-FACTS.md):
# crun fails here (cgroups in hybrid mode) and podman default ulimits need CAP_SYS_RESOURCE.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
'

log() { printf 'host-setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  cat >&2 <<EOF
host-setup: must run as root. Run these commands as root (or re-run this script with sudo):

  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y ${PACKAGES[*]}
  mkdir -p /etc/containers
  cat > $CONTAINERS_CONF <<'CONF'
$CONF_CONTENT
CONF
  mountpoint -q $BINFMT_DIR || mount -t binfmt_misc binfmt_misc $BINFMT_DIR
  [ -e $BINFMT_DIR/qemu-arm ] && echo -1 > $BINFMT_DIR/qemu-arm
  printf '%s' ':qemu-arm:M:0:${QEMU_ARM_MAGIC}:${QEMU_ARM_MASK}:${QEMU_ARM_INTERP}:CPF' > $BINFMT_DIR/register
EOF
  exit 1
fi

start=$(date +%s.%N)

# 1. packages ---------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
else
  log "packages already installed"
fi

# The distro's mosquitto service (if any init system started it) is not used by the lab;
# the lab runs its own broker per state dir on free ports. Nothing to do here.

# 2. containers.conf ----------------------------------------------------------
mkdir -p /etc/containers
if [[ -f $CONTAINERS_CONF ]] && [[ "$(cat "$CONTAINERS_CONF")" == "$(printf '%s' "$CONF_CONTENT")" ]]; then
  log "$CONTAINERS_CONF already configured"
else
  if [[ -f $CONTAINERS_CONF ]] && ! grep -q 'iotfleet.aws lab/host-setup.sh' "$CONTAINERS_CONF"; then
    cp -a "$CONTAINERS_CONF" "$CONTAINERS_CONF.bak.$(date +%Y%m%d%H%M%S)"
    log "backed up existing $CONTAINERS_CONF"
  fi
  printf '%s' "$CONF_CONTENT" > "$CONTAINERS_CONF"
  log "wrote $CONTAINERS_CONF"
fi

# 3. binfmt_misc + qemu-arm with flags CPF -----------------------------------
if ! mountpoint -q "$BINFMT_DIR"; then
  mount -t binfmt_misc binfmt_misc "$BINFMT_DIR"
  log "mounted binfmt_misc"
fi
[[ -x $QEMU_ARM_INTERP ]] || { log "ERROR: $QEMU_ARM_INTERP missing (qemu-user-static not installed?)"; exit 1; }

flags_ok() {
  [[ -r $BINFMT_DIR/qemu-arm ]] || return 1
  grep -q '^enabled' "$BINFMT_DIR/qemu-arm" || return 1
  local f
  f=$(sed -n 's/^flags: *//p' "$BINFMT_DIR/qemu-arm")
  [[ $f == *C* && $f == *P* && $f == *F* ]] || return 1
  grep -q "^interpreter $QEMU_ARM_INTERP\$" "$BINFMT_DIR/qemu-arm"
}
if flags_ok; then
  log "qemu-arm already registered with flags CPF"
else
  if [[ -e $BINFMT_DIR/qemu-arm ]]; then
    echo -1 > "$BINFMT_DIR/qemu-arm"   # unregister Debian's PF entry
  fi
  printf '%s' ":qemu-arm:M:0:${QEMU_ARM_MAGIC}:${QEMU_ARM_MASK}:${QEMU_ARM_INTERP}:CPF" > "$BINFMT_DIR/register"
  flags_ok || { log "ERROR: qemu-arm registration failed:"; cat "$BINFMT_DIR/qemu-arm" >&2 || true; exit 1; }
  log "registered qemu-arm with flags CPF"
fi

# 4. smoke check --------------------------------------------------------------
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}}' >/dev/null \
  || { log "ERROR: 'podman info' failed"; exit 1; }

end=$(date +%s.%N)
log "done in $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s"
