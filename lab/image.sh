#!/usr/bin/env bash
# lab/image.sh — build (once) the emulated Pi Zero image for the iotfleet.aws lab.
#
#   lab/image.sh            build unless the image exists (cached)
#   lab/image.sh --force    rebuild
#   LAB_IMAGE=name:tag lab/image.sh
#
# Debian bookworm armel (runs on the Pi Zero's ARMv6, Python 3.11 as on Raspberry Pi
# OS bookworm) from debootstrap, with openssh-server, python3, python3-apt, sudo and
# ca-certificates; user `pi` with passwordless sudo; QEMU_CPU=arm1176 kept in SSH and
# sudo sessions so `uname -m` says armv6l. paho-mqtt is deliberately NOT installed
# (the device role installs python3-paho-mqtt). Apt lists and apt's package cache
# are kept in the image (fresh as of the build).
# sshd host keys (ed25519, ECDSA) are generated at container start. Needs root and lab/host-setup.sh.
set -euo pipefail

IMAGE=${LAB_IMAGE:-localhost/iotfleet-pizero:bookworm}
SUITE=bookworm
INCLUDE=openssh-server,python3,python3-apt,sudo,ca-certificates
PROG=image.sh
# shellcheck source=lab/debootstrap.sh
. "$(dirname "$0")/debootstrap.sh"

debootstrap_args 2,14 "$@"
debootstrap_preflight
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-arm 2>/dev/null \
  || die "qemu-arm binfmt not registered: run lab/host-setup.sh"
debootstrap_lock_or_cached /var/lock/iotfleet-lab-image.lock
debootstrap_root armel "$SUITE" "$INCLUDE" iotfleet-pizero-rootfs

# --- configure the root filesystem ------------------------------------------------
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin QEMU_CPU=arm1176 "$@"; }

# user pi as on Raspberry Pi OS: groups, passwordless sudo; no password login at all.
in_root useradd -m -s /bin/bash -u 1000 -U pi
for g in adm dialout cdrom sudo audio video plugdev games users input netdev; do
  in_root getent group "$g" >/dev/null && in_root usermod -aG "$g" pi
done
in_root usermod -p '*' pi
install -d -m 0700 -o 1000 -g 1000 "$ROOT/home/pi/.ssh"
cat >"$ROOT/etc/sudoers.d/010_pi-nopasswd" <<'EOF'
pi ALL=(ALL) NOPASSWD: ALL
EOF
cat >"$ROOT/etc/sudoers.d/020_qemu-cpu" <<'EOF'
# iotfleet lab: keep the emulated CPU model (Pi Zero ARM1176) across sudo.
Defaults env_keep += "QEMU_CPU"
EOF
chmod 0440 "$ROOT"/etc/sudoers.d/0*

# QEMU_CPU for SSH sessions (pam_env reads /etc/environment); C.UTF-8 is built into glibc.
cat >"$ROOT/etc/environment" <<'EOF'
QEMU_CPU=arm1176
LANG=C.UTF-8
EOF

# sshd: keys only, host keys made per container at start.
cat >"$ROOT/etc/ssh/sshd_config.d/10-iotfleet-lab.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
# ed25519 + ECDSA host keys only: RSA-3072 generation takes 20-60 s of emulated CPU per Pi
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
rm -f "$ROOT"/etc/ssh/ssh_host_*

# container entrypoint: authorized key from $LAB_AUTHORIZED_KEY, fresh host keys, sshd in foreground.
cat >"$ROOT/usr/local/sbin/lab-sshd" <<'EOF'
#!/bin/sh
set -e
if [ -n "${LAB_AUTHORIZED_KEY:-}" ]; then
  install -d -m 0700 -o pi -g pi /home/pi/.ssh
  printf '%s\n' "$LAB_AUTHORIZED_KEY" > /home/pi/.ssh/authorized_keys
  chown pi:pi /home/pi/.ssh/authorized_keys
  chmod 0600 /home/pi/.ssh/authorized_keys
fi
mkdir -p /run/sshd
for t in ed25519 ecdsa; do
  [ -s /etc/ssh/ssh_host_${t}_key ] || ssh-keygen -q -N '' -t $t -f /etc/ssh/ssh_host_${t}_key
done
exec /usr/sbin/sshd -D -e
EOF
chmod 0755 "$ROOT/usr/local/sbin/lab-sshd"

# keep apt lists (as on a used Pi) and build apt's package cache now: otherwise every Pi's
# first apt run spends ~1-2 min of emulated CPU on it. Drop downloaded .debs and logs.
in_root apt-cache gencaches >/dev/null
rm -f "$ROOT"/var/cache/apt/archives/*.deb
rm -rf "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
: >"$ROOT/etc/machine-id"

debootstrap_import "iotfleet.aws lab Pi Zero (Debian $SUITE armel)" \
  --change 'ENV QEMU_CPU=arm1176' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'EXPOSE 22' \
  --change 'CMD ["/usr/local/sbin/lab-sshd"]'
