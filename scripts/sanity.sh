#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of this checkout laid out as
# .../ansible_collections/iotfleet/aws (ansible-test needs that path; a symlink resolves to the
# real one). ansible-test bootstraps pip in its venvs with a script it downloads from a host
# this machine cannot reach: a local stand-in that uses ensurepip does the same job.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
export PATH="$venv/bin:$PATH"
pyver=$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
work=${SANITY_DIR:-$here/.cache/sanity}
dest=$work/ansible_collections/iotfleet/aws

pip_version=$("$venv/bin/python" -c '
import inspect, re
import ansible_test._internal.python_requirements as r
m = re.search(r"pip=.([0-9.]+).", inspect.getsource(r.get_venv_packages))
print(m.group(1) if m else "")
')
stub_dir="$HOME/.ansible/test/cache"
mkdir -p "$stub_dir"
for v in $pip_version; do
  cat > "$stub_dir/get_pip_${v//./_}.py" <<'PY'
# Stand-in for get-pip.py (the download host is unreachable here): bootstrap pip with
# ensurepip, then install what get-pip was asked for.
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
done

rm -rf "$dest"
mkdir -p "$dest"
cd "$here"
# Collection content only: lab/, scripts/ and benchmarks/ are developer tooling that
# galaxy.yml's build_ignore keeps out of the artifact.
git ls-files -co --exclude-standard \
  | grep -v -e '^\.cache/' -e '^\.lab/' -e '^lab/' -e '^scripts/' -e '^benchmarks/' \
  | tar -cf - -T - | tar -xf - -C "$dest"
# The collections this one depends on, beside it (the import test loads them from there).
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for dep in amazon/aws community/crypto; do
  if [ ! -d "$work/ansible_collections/$dep" ]; then
    mkdir -p "$work/ansible_collections/$(dirname "$dep")"
    cp -r "$site/ansible_collections/$dep" "$work/ansible_collections/$dep"
  fi
done
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1 || true
ansible-test sanity --venv --python "$pyver" --color no "$@"
