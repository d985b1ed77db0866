#!/usr/bin/env python3
"""The iotfleet.aws lab: emulated Pi Zeros and the AWS IoT Core stand-in (lab/iotcore).

    lab/lab.py up     [--pis N] [--dir STATEDIR] [--image IMAGE] [--timeout S]
    lab/lab.py down   [--dir STATEDIR]
    lab/lab.py status [--dir STATEDIR]
    lab/lab.py check  [--dir STATEDIR]     # self-test: SSH/armv6l, endpoint, broker refusals
    lab/lab.py env    [--dir STATEDIR]     # export lines: AWS endpoint/credentials, MQTT, root CA

Default STATEDIR is <repo>/.lab. Several labs may run at once in different state dirs:
container names and the podman network carry a per-lab random prefix, every host-side port is a
free loopback port, and each lab's broker listens on port 8883 of its own network's gateway.
Run as root with the repo venv (.venv/bin/python); needs lab/host-setup.sh and lab/image.sh
(`up` builds the image through lab/image.sh when it is missing).

This file is the CLI and the order of things; the parts live beside it: labstate.py (the state
dir, lab.json, shared helpers), pis.py (podman containers, SSH), network.py (podman network, lab
root and server certificates), standin.py (the stand-in process), inventory.py (what a user
gets: inventory, AWS config, env). Ports and processes: tests/support/procs.py; X.509: the
collection's plugins/module_utils/_x509.py through lab/iotcore/pki.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

try:
    import cryptography  # noqa: F401
    import ansible_collections.iotfleet.aws.plugins.module_utils._x509  # noqa: F401
except ImportError:  # re-exec with the repo venv (cryptography, the collection) when started with a bare python3
    venv_py = REPO / ".venv" / "bin" / "python"
    if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve() \
            and not os.environ.get("IOTFLEET_LAB_REEXEC"):
        os.environ["IOTFLEET_LAB_REEXEC"] = "1"
        os.execv(str(venv_py), [str(venv_py), __file__, *sys.argv[1:]])
    sys.exit("lab.py: 'cryptography' or the iotfleet.aws collection is missing: run with <repo>/.venv/bin/python")

import inventory  # noqa: E402
import network  # noqa: E402
import pis  # noqa: E402
import pki  # noqa: E402  (lab/iotcore/pki.py, on sys.path through labstate)
import standin  # noqa: E402
from labstate import AWS_REGION, CREDENTIALS, DEFAULT_IMAGE, LOOPBACK, MQTT_PORT  # noqa: E402
from labstate import Lab, LabError, run, say, write_private, write_text  # noqa: E402


# ----------------------------------------------------------------------------- status
def health(lab: Lab) -> dict:
    cs = pis.container_states(lab)
    return {
        "pis": {pi["name"]: cs.get(pi["container"], "missing") for pi in lab.state.get("pis", [])},
        "iotcore": standin.iotcore_up(lab),
    }


def is_up(lab: Lab) -> bool:
    if not lab.state.get("complete"):
        return False
    h = health(lab)
    return bool(h["pis"]) and all(s == "running" for s in h["pis"].values()) and h["iotcore"]


# ----------------------------------------------------------------------------- up / down
def up(lab: Lab, n: int, image: str, timeout: float) -> None:
    fresh = not lab.json_path.exists()
    if fresh:
        lab.create(image)
    else:
        have = len(lab.state.get("pis", []))
        if lab.state.get("pis") and have != n:
            raise LabError(f"the lab in {lab.dir} has {have} Pis, not {n}: run `down` first")
        if is_up(lab):
            say(f"lab in {lab.dir} is already up ({have} Pis); nothing to do")
            print(inventory.summary(lab))
            return
        say(f"lab in {lab.dir} is partly up: restarting what is dead")
        image = lab.state.get("image", image)
    try:
        _up(lab, n, image, timeout)
    except BaseException:
        if fresh and not os.environ.get("LAB_KEEP_ON_FAILURE"):
            say("up failed: tearing down what it started (LAB_KEEP_ON_FAILURE=1 keeps it)")
            try:
                down(lab)
            except Exception as e:  # noqa: BLE001
                say(f"cleanup after failure also failed: {e}")
        raise


def _up(lab: Lab, n: int, image: str, timeout: float) -> None:
    pis.ensure_image(image)
    pis.ensure_ssh_key(lab)
    network.ensure_lab_root(lab)
    lab.state["paths"] = lab.paths()
    lab.save()
    network.ensure_network(lab)
    pis.ensure_pis(lab, n, image)
    standin.ensure_iotcore(lab, timeout)
    pis.wait_pis(lab, timeout)
    inventory.write_inventory(lab)
    lab.state["complete"] = True
    lab.save()
    print(inventory.summary(lab))


def down(lab: Lab) -> None:
    if not lab.json_path.exists():
        if lab.dir.exists() and not any(lab.dir.iterdir()):
            lab.dir.rmdir()
        say(f"no lab in {lab.dir}: nothing to do")
        return
    pis.remove_pis(lab)
    standin.stop_processes(lab)
    network.remove_network(lab)
    shutil.rmtree(lab.dir)
    say(f"removed {lab.dir}")


# ----------------------------------------------------------------------------- check (self-test)
def check(lab: Lab) -> None:
    """Prove the lab: armv6l Pis; the stand-in's endpoint; its broker refuses an unregistered
    certificate; a Pi resolves the endpoint and trusts the broker's certificate (TLS, SNI)."""
    if not is_up(lab):
        raise LabError(f"lab in {lab.dir} is not up: {health(lab)}")
    s = lab.state
    ok = True
    for pi in s["pis"]:
        r = run(lab.ssh_cmd(pi["port"], "uname -m; sudo -n uname -m; python3 -V"), check=False)
        print(f"  {pi['name']}: {' | '.join(r.stdout.split(chr(10))).strip(' |')}")
        ok &= r.stdout.split()[:2] == [pis.ARCH, pis.ARCH]
    import boto3
    iot = boto3.client("iot", endpoint_url=s["aws"]["endpoint_url"], region_name=AWS_REGION,
                       aws_access_key_id=CREDENTIALS["access_key"], aws_secret_access_key=CREDENTIALS["secret_key"])
    ep = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    print(f"  control plane: describe_endpoint -> {ep}")
    ok &= ep == lab.endpoint
    with tempfile.TemporaryDirectory(prefix="iotfleet-lab-check-") as td:
        t = Path(td)
        rogue, rogue_key = pki.make_ca("lab-check rogue")   # self-signed, registered nowhere
        write_text(t / "rogue.pem", pki.pem(rogue).decode())
        write_private(t / "rogue.key", pki.key_pem(rogue_key))
        r = run(["mosquitto_pub", "--cafile", str(lab.lab_root_pem), "-h", LOOPBACK, "-p",
                 str(s["mqtt"]["host_port"]), "--cert", str(t / "rogue.pem"), "--key", str(t / "rogue.key"),
                 "-t", "test", "-m", "x", "-i", "lab-check"], check=False)
        print(f"  broker: unregistered certificate {'refused' if r.returncode else 'ACCEPTED (wrong!)'}")
        ok &= r.returncode != 0
    pi = s["pis"][0]
    py = ("import socket,ssl;c=ssl.create_default_context(cafile='/tmp/lab-root.pem');"
          f"s=c.wrap_socket(socket.create_connection(('{lab.endpoint}',{MQTT_PORT}),10),"
          f"server_hostname='{lab.endpoint}');print(s.version(),s.getpeercert()['subject'][-1][0][1])")
    r = run(lab.ssh_cmd(pi["port"], f"cat > /tmp/lab-root.pem && python3 -c {shlex.quote(py)}"),
            check=False, input=lab.lab_root_pem.read_text())
    print(f"  {pi['name']} -> {lab.endpoint}:{MQTT_PORT} TLS: {(r.stdout or r.stderr).strip()}")
    ok &= r.returncode == 0
    if not ok:
        raise LabError("lab check FAILED")
    print("lab check: OK")


# ----------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "check", "env"):
        sp = sub.add_parser(name)
        sp.add_argument("--dir", default=os.environ.get("LAB_DIR", str(REPO / ".lab")),
                        help="lab state dir (default: <repo>/.lab or $LAB_DIR)")
        if name == "up":
            sp.add_argument("--pis", type=int, default=3, help="number of Pi Zeros (default 3)")
            sp.add_argument("--image", default=DEFAULT_IMAGE)
            sp.add_argument("--timeout", type=float, default=300,
                            help="seconds to wait for each Pi / service (default 300)")
    return ap


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("lab.py: must run as root (rootful podman, binfmt; see lab/host-setup.sh)", file=sys.stderr)
        return 1
    try:
        lab = Lab(Path(a.dir))
        if a.cmd == "up":
            if a.pis < 1:
                raise LabError("--pis must be >= 1")
            up(lab, a.pis, a.image, a.timeout)
            say("up: done")
        elif a.cmd == "down":
            down(lab)
            say("down: done")
        elif a.cmd == "status":
            if not lab.state:
                print(f"no lab in {lab.dir}")
                return 3
            print(json.dumps({"dir": str(lab.dir), "up": is_up(lab), **health(lab)}, indent=2))
            return 0 if is_up(lab) else 3
        elif a.cmd == "check":
            check(lab)
        elif a.cmd == "env":
            if not lab.state.get("complete"):
                raise LabError(f"no complete lab in {lab.dir}: run `lab.py up` first")
            for k, v in inventory.env(lab.state).items():
                print(f"export {k}={shlex.quote(v)}")
    except LabError as e:
        print(f"lab.py {a.cmd}: ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lab.py {a.cmd}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
