# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/debootstrap.sh, the image build both lab/image.sh and scripts/ee-base-image.sh source.

A real build takes 10-20 minutes of debootstrap (and root, podman, network to a Debian mirror), so
here the two external programs it drives, ``debootstrap`` and ``podman``, are small stand-ins on
PATH that record their arguments: the scripts themselves run for real (bash, tar, mktemp, flock,
their trap), end to end for scripts/ee-base-image.sh, and up to the cache for lab/image.sh (whose
configuration step chroots into an ARM root filesystem).
"""

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EE_BASE = ROOT / "scripts" / "ee-base-image.sh"
LAB_IMAGE = ROOT / "lab" / "image.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts refuse to run without root")

FAKE_DEBOOTSTRAP = """#!/bin/sh
# records its arguments; makes a small root filesystem in its last argument (or fails on request)
echo "$@" >> "$FAKE_LOG/debootstrap.args"
[ -n "$FAKE_DEBOOTSTRAP_FAIL" ] && { echo "E: Couldn't download packages"; exit 1; }
root=$(eval echo \\${$#})
mkdir -p "$root/etc" "$root/var/log/apt" "$root/usr/share/man/man1" "$root/var/lib/apt/lists"
echo 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' > "$root/etc/os-release"
echo 0123456789abcdef > "$root/etc/machine-id"
echo log > "$root/var/log/apt/history.log"
echo man > "$root/usr/share/man/man1/x.1"
echo list > "$root/var/lib/apt/lists/deb.debian.org_dists"
"""

FAKE_PODMAN = """#!/bin/sh
# podman image exists NAME: as FAKE_IMAGE_EXISTS says; podman import ...: the tar on stdin is kept
echo "$@" >> "$FAKE_LOG/podman.args"
case "$1 $2" in
  "image exists") [ -n "$FAKE_IMAGE_EXISTS" ]; exit $? ;;
  "image ls") echo "REPOSITORY TAG"; exit 0 ;;
esac
[ "$1" = import ] && { cat > "$FAKE_LOG/import.tar"; exit 0; }
exit 3
"""


@pytest.fixture()
def fakes(tmp_path):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, text in (("debootstrap", FAKE_DEBOOTSTRAP), ("podman", FAKE_PODMAN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(log),
               EE_BASE_IMAGE="localhost/iotfleet-test-ee-base:bookworm")
    for name in ("FAKE_IMAGE_EXISTS", "FAKE_DEBOOTSTRAP_FAIL"):
        env.pop(name, None)
    return env, log


def _root_of(stdout):
    line = next(x for x in stdout.splitlines() if " into /var/tmp/" in x)
    return Path(line.split(" into ", 1)[1].split(" ", 1)[0])


def test_ee_base_builds_imports_and_cleans_up(fakes):
    env, log = fakes
    proc = subprocess.run([str(EE_BASE), "--force"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    include = "--include=python3,python3-pip,python3-venv,ca-certificates"
    assert (log / "debootstrap.args").read_text().split()[:3] == ["--arch=amd64", "--variant=minbase", include]
    podman = (log / "podman.args").read_text()
    assert "--change ENV LANG=C.UTF-8 --change CMD [\"/bin/bash\"] --message iotfleet.aws EE base (Debian bookworm amd64)" in podman
    assert podman.rstrip().endswith("image ls localhost/iotfleet-test-ee-base:bookworm")
    with tarfile.open(log / "import.tar") as tar:
        names = set(tar.getnames())
        assert "./etc/os-release" in names
        assert tar.extractfile("./etc/machine-id").read() == b""      # emptied by the caller, in ROOT
        assert not [n for n in names if n.startswith(("./var/log/", "./usr/share/man/", "./var/lib/apt/lists/"))
                    and n.count("/") > 3]
    root = _root_of(proc.stdout)
    assert not root.exists() and not Path(f"{root}.debootstrap.log").exists()
    assert "ee-base-image.sh: import took" in proc.stdout and "debootstrap took" in proc.stdout


def test_a_failed_debootstrap_names_itself_and_leaves_nothing(fakes):
    env, log = fakes
    env["FAKE_DEBOOTSTRAP_FAIL"] = "1"
    proc = subprocess.run([str(EE_BASE), "--force"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "Couldn't download packages" in proc.stderr and "ee-base-image.sh: ERROR: debootstrap failed" in proc.stderr
    root = _root_of(proc.stdout)
    assert not root.exists() and not Path(f"{root}.debootstrap.log").exists()
    assert not (log / "import.tar").exists()


@pytest.mark.parametrize("script", [EE_BASE, LAB_IMAGE], ids=["ee-base-image.sh", "image.sh"])
def test_a_cached_image_is_not_built_again(fakes, script):
    if script == LAB_IMAGE and not Path("/proc/sys/fs/binfmt_misc/qemu-arm").is_file():
        pytest.skip("lab/image.sh checks the qemu-arm binfmt first (lab/host-setup.sh)")
    env, log = fakes
    env["FAKE_IMAGE_EXISTS"] = "1"
    proc = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exists (cached); use --force to rebuild" in proc.stdout
    assert proc.stdout.startswith(script.name + ": ")
    assert not (log / "debootstrap.args").exists()


@pytest.mark.parametrize("script, last_help_line", [(EE_BASE, "Needs root."), (LAB_IMAGE, "Needs root and lab/host-setup.sh.")],
                         ids=["ee-base-image.sh", "image.sh"])
def test_arguments(fakes, script, last_help_line):
    env, log = fakes
    helped = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and helped.stdout.startswith(f"# {script.parent.name}/{script.name}")
    assert helped.stdout.rstrip().endswith(last_help_line)
    bad = subprocess.run([str(script), "--bogus"], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr == f"{script.name}: unknown argument: --bogus\n"
    assert not (log / "podman.args").exists()
