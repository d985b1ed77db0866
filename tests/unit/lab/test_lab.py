# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the lab's parts that need no podman: its state dir, the files a user gets
(parsed by ansible-inventory), the lab root and the broker's certificate (a real TLS handshake
on loopback), the process record and stop (a real child process), the CLI without a lab, and
tests/support/procs.py, which the lab shares with the tests."""

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lab"))

import inventory  # noqa: E402  (lab/inventory.py)
import labstate  # noqa: E402
import network  # noqa: E402
import pis  # noqa: E402
import standin  # noqa: E402
from labstate import Lab, LabError  # noqa: E402
from support import procs  # noqa: E402

LAB_PY = ROOT / "lab" / "lab.py"


def _mode(path):
    return os.stat(path).st_mode & 0o777


def _raise(exc):
    raise exc


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path / "lab")
    lab.create("localhost/image:test")
    return lab


def _complete(lab):
    lab.state.update(
        pis=[dict(pis.pi_record(lab.state["prefix"], i), port=20000 + i) for i in (1, 2)],
        network={"name": lab.state["prefix"], "subnet": "10.89.0.0/24", "gateway": "10.89.0.1"},
        iotcore={"pid": 1, "starttime": "0", "api_port": 4566, "mqtt_host_port": 18883,
                 "endpoint_url": "http://127.0.0.1:4566", "mosquitto": {"pid": 2}},
        paths=lab.paths(), complete=True,
    )
    inventory.write_inventory(lab)
    lab.save()
    return lab


# ---------------------------------------------------------------- state
def test_create_and_reload(lab):
    state = json.loads(lab.json_path.read_text())
    assert state["kind"] == "iotfleet-lab" and state["prefix"].startswith("iotfleet-lab-")
    assert state["complete"] is False and state["image"] == "localhost/image:test"
    again = Lab(lab.dir)
    assert again.state == state
    assert again.endpoint == f"{state['endpoint_prefix']}-ats.iot.us-east-1.amazonaws.com"
    assert Lab(lab.dir.parent / "other").state == {}   # no lab there yet: nothing made
    assert not (lab.dir.parent / "other").exists()


def test_every_lab_is_its_own(tmp_path):
    one, two = Lab(tmp_path / "a"), Lab(tmp_path / "b")
    one.create("i"), two.create("i")
    assert one.state["prefix"] != two.state["prefix"] and one.endpoint != two.endpoint


def test_refuses_a_directory_that_is_no_lab(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("mine")
    with pytest.raises(LabError, match="refusing to use it as a lab state dir"):
        Lab(tmp_path / "x").create("i")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "lab.json").write_text('{"kind": "something else"}')
    with pytest.raises(LabError, match="is not an iotfleet lab state file"):
        Lab(tmp_path / "y")


def test_ssh_cmd(lab):
    cmd = lab.ssh_cmd(2222, "uname -m")
    assert cmd[:5] == ["ssh", "-i", str(lab.ssh_key), "-p", "2222"]
    assert cmd[-2:] == ["pi@127.0.0.1", "uname -m"] and "BatchMode=yes" in cmd


def test_run_and_wait_for():
    assert labstate.run(["true"]).returncode == 0
    with pytest.raises(LabError, match=r"command failed \(3\): sh -c 'echo oops >&2; exit 3'\noops"):
        labstate.run(["sh", "-c", "echo oops >&2; exit 3"])
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise RuntimeError("not yet")
        return "ok"

    assert labstate.wait_for("flaky", flaky, 5, 0.01) == "ok" and len(tries) == 3
    with pytest.raises(LabError, match=r"timed out after 0s waiting for never \(last error: nope\)"):
        labstate.wait_for("never", lambda: _raise(RuntimeError("nope")), 0.05, 0.01)
    started = time.monotonic()
    with pytest.raises(LabError, match="at once"):
        labstate.wait_for("fatal", lambda: _raise(LabError("at once")), 30, 0.01)
    assert time.monotonic() - started < 1


def test_private_and_public_files(tmp_path):
    labstate.write_private(tmp_path / "k" / "key", b"secret")
    labstate.write_text(tmp_path / "p" / "cfg", "x\n")
    assert _mode(tmp_path / "k") == 0o700 and _mode(tmp_path / "k" / "key") == 0o600
    assert _mode(tmp_path / "p") == 0o755 and _mode(tmp_path / "p" / "cfg") == 0o644


# ---------------------------------------------------------------- Pis (podman's output, the run line)
def test_parse_ps():
    out = json.dumps([{"Names": ["p-pi1"], "State": "running"}, {"Names": "p-pi2", "State": "Exited"}])
    assert pis.parse_ps(out) == {"p-pi1": "running", "p-pi2": "exited"}
    assert pis.parse_ps("") == {}


def test_podman_run_args(lab):
    lab.state["network"] = {"name": lab.state["prefix"], "gateway": "10.89.0.1"}
    pi = pis.pi_record(lab.state["prefix"], 1)
    args = pis.podman_run_args(lab, pi, 20001, "img", "ssh-ed25519 AAAA")
    assert args[:4] == ["podman", "run", "-d", "--init"] and args[-1] == "img"
    assert "-p" in args and args[args.index("-p") + 1] == "127.0.0.1:20001:22"   # loopback only
    assert args[args.index("--add-host") + 1] == f"{lab.endpoint}:10.89.0.1"
    assert "QEMU_CPU=arm1176" in args and "LAB_AUTHORIZED_KEY=ssh-ed25519 AAAA" in args
    assert args[args.index("--name") + 1] == f"{lab.state['prefix']}-pi1"


def test_ssh_key(lab):
    pis.ensure_ssh_key(lab)
    assert _mode(lab.ssh_key) == 0o600 and _mode(lab.ssh_key.parent) == 0o700
    assert lab.ssh_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert lab.ssh_key.with_suffix(".pub").read_text().startswith("ssh-ed25519 ")
    before = lab.ssh_key.read_bytes()
    pis.ensure_ssh_key(lab)
    assert lab.ssh_key.read_bytes() == before


# ---------------------------------------------------------------- network and certificates
def test_parse_network():
    info = {"name": "n", "subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]}
    assert network.parse_network(info) == {"name": "n", "subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}
    with pytest.raises(LabError, match="has no gateway"):
        network.parse_network({"name": "n", "subnets": []})


def test_the_broker_certificate_passes_a_real_handshake(lab, tmp_path):
    """A client trusting the lab root reaches a TLS server with the broker's certificate by the
    endpoint name (SNI + hostname check), as a Pi does; another root fails."""
    network.ensure_lab_root(lab)
    assert _mode(lab.lab_root_key) == 0o600 and _mode(lab.lab_root_key.parent) == 0o700
    root, root_key = network.pki.load(lab.lab_root_pem, lab.lab_root_key)
    cert, key = network.pki.issue_server(root, root_key, network.server_names(lab, "10.89.0.1"))
    (tmp_path / "s.pem").write_bytes(network.pki.pem(cert))
    (tmp_path / "s.key").write_bytes(network.pki.key_pem(key))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "s.pem", tmp_path / "s.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        for _attempt in range(2):
            conn, _addr = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(lab.lab_root_pem))
    with client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5), server_hostname=lab.endpoint) as tls:
        assert tls.recv(2) == b"ok"
    other, _other_key = network.pki.make_ca("someone else")
    (tmp_path / "other.pem").write_bytes(network.pki.pem(other))
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context(cafile=str(tmp_path / "other.pem")).wrap_socket(
            socket.create_connection(("127.0.0.1", port), 5), server_hostname=lab.endpoint)
    thread.join(5)
    listener.close()


# ---------------------------------------------------------------- what a user gets
def test_inventory_as_ansible_reads_it(lab):
    _complete(lab)
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i",
                          str(lab.dir / "pis.ini"), "--list"], capture_output=True, text=True, check=True).stdout
    inv = json.loads(out)
    assert sorted(inv["pis"]["hosts"]) == ["pi1", "pi2"]
    pi1 = inv["_meta"]["hostvars"]["pi1"]
    assert pi1["ansible_host"] == "127.0.0.1" and pi1["ansible_port"] == 20001 and pi1["ansible_user"] == "pi"
    assert pi1["ansible_ssh_private_key_file"] == str(lab.ssh_key)
    assert (lab.dir / "group_vars" / "all" / "lab.yml").read_text().endswith(f"device_root_ca_path: {lab.lab_root_pem}\n")
    assert _mode(lab.aws_dir / "credentials") == 0o600
    assert "endpoint_url = http://127.0.0.1:4566" in (lab.aws_dir / "config").read_text()


def test_env_and_cli(lab):
    _complete(lab)
    assert inventory.env(lab.state) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "IOTFLEET_LAB_MQTT_HOST": "127.0.0.1", "IOTFLEET_LAB_MQTT_PORT": "18883",
        "IOTFLEET_LAB_ROOT_CA": str(lab.lab_root_pem),
    }
    if os.geteuid() != 0:
        pytest.skip("lab.py runs as root only")
    out = subprocess.run([sys.executable, str(LAB_PY), "env", "--dir", str(lab.dir)],
                         capture_output=True, text=True, check=True).stdout
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566\n" in out and out.count("export ") == 7
    assert "pi1" in inventory.summary(lab) and "ssh -i" in inventory.summary(lab)


def test_cli_without_a_lab(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("lab.py runs as root only")

    def cli(*args):
        return subprocess.run([sys.executable, str(LAB_PY), *args], capture_output=True, text=True, check=False)

    status = cli("status", "--dir", str(tmp_path / "none"))
    assert status.returncode == 3 and "no lab in" in status.stdout
    env = cli("env", "--dir", str(tmp_path / "none"))
    assert env.returncode == 1 and "no complete lab" in env.stderr
    down = cli("down", "--dir", str(tmp_path / "none"))
    assert down.returncode == 0 and "nothing to do" in down.stdout
    assert cli("up", "--pis", "0", "--dir", str(tmp_path / "none")).returncode == 1


# ---------------------------------------------------------------- the stand-in's process record
def test_server_command(lab):
    lab.state["network"] = {"gateway": "10.89.0.1"}
    cmd = standin.server_command(lab, {"api_port": 4566, "mqtt_host_port": 18883})
    assert cmd[0] == sys.executable and cmd[1].endswith("lab/iotcore/server.py")
    assert cmd[cmd.index("--api") + 1] == "127.0.0.1:4566"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--mqtt"] == ["10.89.0.1:8883", "127.0.0.1:18883"]


def test_stop_processes_stops_only_the_recorded_process(lab):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        rec = {"pid": child.pid, "starttime": procs.wait_for(lambda: procs.proc_starttime(child.pid), 5, "child")}
        assert procs.proc_is(rec)
        stranger = {"pid": os.getpid(), "starttime": "1"}   # same PID, other start time: not ours
        assert not procs.proc_is(stranger) and procs.proc_is({"pid": os.getpid(),
                                                              "starttime": procs.proc_starttime(os.getpid())})
        lab.state["iotcore"] = dict(rec, mosquitto=stranger)
        lab.state["moto"] = stranger
        standin.stop_processes(lab)
        assert child.wait(5) is not None and not procs.proc_is(rec)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# ---------------------------------------------------------------- tests/support/procs.py
def test_ports():
    port = procs.free_port()
    assert procs.port_free("127.0.0.1", port) and not procs.port_open("127.0.0.1", port, 0.2)
    with socket.create_server(("127.0.0.1", port)):
        assert procs.port_open("127.0.0.1", port) and not procs.port_free("127.0.0.1", port)
        assert procs.free_port("127.0.0.1", exclude={port}) != port
    assert not procs.port_free("192.0.2.1", 0)   # an address this host does not have


def test_procs_wait_for():
    assert procs.wait_for(lambda: 5, 1, "five") == 5
    with pytest.raises(TimeoutError, match="timed out after 0s waiting for nothing"):
        procs.wait_for(lambda: None, 0.05, "nothing", 0.01)
    with pytest.raises(ZeroDivisionError):   # not in retry_on: propagates
        procs.wait_for(lambda: 1 / 0, 1, "division")
