"""What importing a module pulls in, seen from a fresh interpreter: device-side code (Ansible
ships a module's module_utils to the Pi) must not need AWS libraries. And the device client,
a stand-alone program (no package), loaded as a module."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_CLIENT = os.path.join(ROOT, "roles", "device", "files", "iotfleet_device_client.py")

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


def load_device_client(name="iotfleet_device_client"):
    """The device client (``roles/device/files/iotfleet_device_client.py``) as a module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, DEVICE_CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
