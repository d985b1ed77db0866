#!/usr/bin/env bash
# Create the development virtualenv (.venv) the Makefile, tests and lab use.
#  - Python 3.13 from pyenv when present (ansible-core 2.21, molecule 26), else python3.
#  - Pinned tools from requirements-dev.txt.
#  - amazon.aws, community.crypto and containers.podman extracted from the `ansible`
#    package's wheel (Galaxy is not reachable), and this checkout linked in as iotfleet.aws.
# Idempotent: a complete venv is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
ansible_pkg=${ANSIBLE_PKG_VERSION:-14.5.0}
stamp=$venv/.iotfleet-ready

want=$(cat "$here/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

py=""
if command -v pyenv >/dev/null 2>&1; then
  for v in 3.13.0 3.13 3.12.1; do
    cand="$(pyenv root)/versions/$v/bin/python3"
    if [ -x "$cand" ]; then py=$cand; break; fi
  done
fi
py=${py:-$(command -v python3)}
echo "setup-venv: creating $venv with $py"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-dev.txt"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ansible_pkg"
"$venv/bin/python" - "$tmp"/ansible-*.whl "$site" <<'PY'
import sys, zipfile
wheel, site = sys.argv[1], sys.argv[2]
wanted = ("ansible_collections/amazon/aws/", "ansible_collections/community/crypto/",
          "ansible_collections/containers/podman/")
with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if n.startswith(wanted)]
    zf.extractall(site, members=names)
print(f"setup-venv: extracted {len(names)} collection files")
PY
mkdir -p "$site/ansible_collections/iotfleet"
ln -sfn "$here" "$site/ansible_collections/iotfleet/aws"
echo "$want" > "$stamp"
echo "setup-venv: ready"
