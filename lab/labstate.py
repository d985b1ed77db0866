"""The lab's state: one directory (`lab.json` + files) per lab, and what every part of the lab
shares (the error, logging, running commands, constants). No podman, no processes here."""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (REPO / "tests", HERE / "iotcore"):   # tests/support (ports, processes), lab/iotcore (pki)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ansible_collections.iotfleet.aws.plugins.module_utils._files import write_file  # noqa: E402
from support.procs import LOOPBACK, wait_for as _wait_for  # noqa: E402

DEFAULT_IMAGE = os.environ.get("LAB_IMAGE", "localhost/iotfleet-pizero:bookworm")
MQTT_PORT = 8883                 # AWS IoT's MQTT/TLS port: the devices' default, unchanged in the lab
LABEL = "io.iotfleet.lab"        # container label: value = the lab's prefix
STATE_MARKER = "iotfleet-lab"    # lab.json "kind"
PORT_LOCK = "/var/lock/iotfleet-lab-ports.lock"
AWS_REGION = "us-east-1"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}

__all__ = ["LOOPBACK", "Lab", "LabError", "PortLock", "run", "say", "wait_for", "write_private", "write_text"]


class LabError(Exception):
    pass


T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"lab [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command (output captured as text); LabError with its output when check and it fails."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, check=False, **kw)
    if check and p.returncode != 0:
        raise LabError(f"command failed ({p.returncode}): {shlex.join(cmd)}\n"
                       f"{(p.stderr or '').strip()}\n{(p.stdout or '').strip()}".rstrip())
    return p


def wait_for(what: str, cond, timeout: float, interval: float = 0.2, max_interval: float = 2.0):
    """support.procs.wait_for as the lab uses it: backoff, any exception of cond() means "not
    yet" (the last one is named), a LabError ends the wait, a timeout is a LabError."""
    return _wait_for(cond, timeout, what, interval, max_interval, error=LabError, retry_on=(Exception,))


class PortLock:
    """Host-wide lock held while picking ports and starting listeners (parallel labs)."""

    def __enter__(self):
        self.f = open(PORT_LOCK, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically, never readable by others (a new parent directory is 0700)."""
    write_file(str(path), data, mode, dir_mode=0o700)


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    write_file(str(path), text.encode(), mode, dir_mode=0o755)


def new_state(directory: Path, image: str) -> dict:
    """The state of a lab about to be made: a random prefix (containers, network) and endpoint."""
    return {"kind": STATE_MARKER, "version": 1, "dir": str(directory),
            "prefix": f"iotfleet-lab-{secrets.token_hex(3)}",
            "endpoint_prefix": "a" + secrets.token_hex(7),
            "image": image, "complete": False,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


class Lab:
    """One lab's state directory and lab.json (the only record of what the lab started)."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir).resolve()
        self.json_path = self.dir / "lab.json"
        self.state: dict = {}
        if self.json_path.exists():
            self.state = json.loads(self.json_path.read_text())
            if self.state.get("kind") != STATE_MARKER:
                raise LabError(f"{self.json_path} is not an iotfleet lab state file")

    # paths
    @property
    def ssh_key(self) -> Path:
        return self.dir / "ssh" / "id_ed25519"

    @property
    def lab_root_pem(self) -> Path:
        return self.dir / "lab-root" / "lab-root.pem"

    @property
    def lab_root_key(self) -> Path:
        return self.dir / "lab-root" / "lab-root.key"

    @property
    def core_dir(self) -> Path:
        return self.dir / "iotcore"

    @property
    def aws_dir(self) -> Path:
        return self.dir / "aws"

    @property
    def endpoint(self) -> str:
        """The ATS data endpoint the stand-in's describe_endpoint returns (stable per lab)."""
        return f"{self.state['endpoint_prefix']}-ats.iot.{AWS_REGION}.amazonaws.com"

    def paths(self) -> dict[str, str]:
        """Every file of the lab a user or a test may want (lab.json "paths")."""
        return {
            "ssh_private_key": str(self.ssh_key),
            "ssh_public_key": str(self.ssh_key.with_suffix(".pub")),
            "lab_root_ca": str(self.lab_root_pem),
            "lab_root_ca_key": str(self.lab_root_key),
            "server_cert": str(self.core_dir / "server.pem"),
            "server_key": str(self.core_dir / "server.key"),
            "inventory": str(self.dir / "pis.ini"),
            "group_vars": str(self.dir / "group_vars" / "all" / "lab.yml"),
            "ansible_cfg": str(self.dir / "ansible.cfg"),
            "aws_config": str(self.aws_dir / "config"),
            "aws_credentials": str(self.aws_dir / "credentials"),
            "fleet_ca_cert": str(self.dir / "pki" / "ca" / "fleet-ca.pem"),
        }

    def create(self, image: str) -> None:
        """Start a new lab's state (refusing a non-empty directory that is no lab)."""
        if self.dir.exists() and any(self.dir.iterdir()):
            raise LabError(f"{self.dir} exists, is not empty and holds no lab.json: "
                           "refusing to use it as a lab state dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.state = new_state(self.dir, image)
        self.save()   # marker first: `down` can clean up whatever a failed `up` left

    def save(self) -> None:
        write_text(self.json_path, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def ssh_cmd(self, port: int, *remote: str) -> list[str]:
        return ["ssh", "-i", str(self.ssh_key), "-p", str(port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=10", f"pi@{LOOPBACK}", *remote]
