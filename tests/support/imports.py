"""What importing a module pulls in, seen from a fresh interpreter: device-side code (Ansible
ships a module's module_utils to the Pi) must not need AWS libraries."""
from __future__ import annotations

import subprocess
import sys

AWS = ("botocore", "boto3", "ansible_collections.amazon")


def loaded_by(module: str, prefixes=AWS) -> list[str]:
    """The modules starting with one of ``prefixes`` that ``import module`` loads."""
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({tuple(prefixes)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()
