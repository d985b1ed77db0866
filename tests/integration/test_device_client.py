# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: the device client (roles/device/files/iotfleet_device_client.py) against a real
Mosquitto with mutual TLS that trusts only a fleet CA, on a free loopback port.

Mosquitto stands in for the AWS IoT ATS endpoint as in the lab: its server certificate comes from a
separate root CA (the one the client is told to trust), client certificates must chain to the
fleet CA. Listener 1 allows everything; listener 2 has an ACL that denies the device every topic
(to see a refused subscription). Only the mosquitto process this module starts is stopped, by PID.
"""

import datetime
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed (apt-get install mosquitto)"),
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "roles", "device", "files", "iotfleet_device_client.py")
THING = "pi-zero-1"


def _load_client():
    spec = importlib.util.spec_from_file_location("iotfleet_device_client_it", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dc = _load_client()


# ---------------------------------------------------------------- certificates (cryptography)
def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data, mode=0o600):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject_cn, subject_key, issuer_cn=None, issuer_key=None, ca=False, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn or subject_cn))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or subject_key).public_key()), False
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key or subject_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("mosquitto exited with %s before listening on %s" % (proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("mosquitto does not listen on %s after %ss" % (port, timeout))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    lab_key, fleet_key, rogue_key = _key(), _key(), _key()
    lab_ca = _cert("iotfleet lab root", lab_key, ca=True)
    fleet_ca = _cert("iotfleet fleet CA", fleet_key, ca=True)
    rogue_ca = _cert("someone else's CA", rogue_key, ca=True)
    server_key = _key()
    server = _cert(
        "localhost", server_key, "iotfleet lab root", lab_key,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    dev_key, rogue_dev_key = _key(), _key()
    files = {
        "lab_ca": _write(d / "lab-root.pem", _pem(lab_ca), 0o644),
        "fleet_ca": _write(d / "fleet-ca.pem", _pem(fleet_ca), 0o644),
        "rogue_ca": _write(d / "rogue-ca.pem", _pem(rogue_ca), 0o644),
        "server_cert": _write(d / "server.pem", _pem(server), 0o644),
        "server_key": _write(d / "server.key", _pem_key(server_key)),
        "device_cert": _write(d / "device.pem", _pem(_cert(THING, dev_key, "iotfleet fleet CA", fleet_key)), 0o644),
        "device_key": _write(d / "device.key", _pem_key(dev_key)),
        "rogue_cert": _write(
            d / "rogue.pem", _pem(_cert(THING, rogue_dev_key, "someone else's CA", rogue_key)), 0o644
        ),
        "rogue_key": _write(d / "rogue.key", _pem_key(rogue_dev_key)),
    }
    return {k: str(v) for k, v in files.items()} | {"dir": str(d)}


@pytest.fixture(scope="module")
def broker(pki):
    d = pki["dir"]
    acl = os.path.join(d, "deny.acl")
    with open(acl, "w", encoding="ascii") as handle:
        handle.write("# the device may use no topic at all\nuser nobody-at-all\ntopic readwrite nothing\n")
    proc = None
    for _attempt in range(5):
        open_port, deny_port = _free_port(), _free_port()
        conf = os.path.join(d, "mosquitto.conf")
        lines = ["per_listener_settings true", "log_dest stderr", "log_type all", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")
        for port, extra in ((open_port, []), (deny_port, ["acl_file %s" % acl])):
            lines += [
                "listener %d 127.0.0.1" % port,
                "cafile %s" % pki["fleet_ca"],
                "certfile %s" % pki["server_cert"],
                "keyfile %s" % pki["server_key"],
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
            ] + extra
        with open(conf, "w", encoding="ascii") as handle:
            handle.write("\n".join(lines) + "\n")
        log = open(os.path.join(d, "mosquitto.log"), "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            _wait_for_port(open_port, proc)
            _wait_for_port(deny_port, proc)
            break
        except RuntimeError:
            continue  # a port was taken between picking and binding: pick again
    else:
        pytest.fail("could not start mosquitto; see %s" % os.path.join(d, "mosquitto.log"))
    try:
        yield {"open": open_port, "deny": deny_port, "log": os.path.join(d, "mosquitto.log")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _config(pki, port, cert="device_cert", key="device_key", root="lab_ca", thing=THING, host="127.0.0.1"):
    return dc.load_config_dict(
        {
            "host": host,
            "port": port,
            "thing_name": thing,
            "certificate": pki[cert],
            "private_key": pki[key],
            "root_ca": pki[root],
        }
    )


def _write_config(tmp_path, config):
    path = tmp_path / "client.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- the checks
def test_verify_accepted_with_fleet_certificate(pki, broker):
    res = dc.verify(_config(pki, broker["open"]), "test", 10)
    assert res["ok"] is True, res
    assert res["step"] == "done" and res["thing_name"] == THING
    assert 0 < res["elapsed"] < 10


def test_verify_refused_certificate_of_another_ca(pki, broker):
    res = dc.verify(_config(pki, broker["open"], cert="rogue_cert", key="rogue_key"), "test", 10)
    assert res["ok"] is False, res
    assert res["step"] in ("tls", "auth"), res
    assert "ACTIVE" in res["cause"] or "CA" in res["cause"], res
    assert res["elapsed"] < 10  # refused promptly, not a silent reconnect loop


def test_verify_wrong_root_ca_names_tls_and_endpoint(pki, broker):
    res = dc.verify(_config(pki, broker["open"], root="rogue_ca"), "test", 10)
    assert res["ok"] is False and res["step"] == "tls", res
    assert "root CA" in res["cause"], res


def test_verify_wrong_endpoint_name_is_tls(pki, broker):
    # the server certificate is for localhost/127.0.0.1; another name for the same address fails the check
    host = socket.gethostname()
    try:
        socket.getaddrinfo(host, broker["open"])
    except OSError:
        pytest.skip("the host name does not resolve")
    res = dc.verify(_config(pki, broker["open"], host=host), "test", 10)
    assert res["ok"] is False and res["step"] in ("tls", "connect"), res


def test_verify_nothing_listening_is_connect(pki):
    res = dc.verify(_config(pki, _free_port()), "test", 5)
    assert res["ok"] is False and res["step"] == "connect", res
    assert "endpoint" in res["cause"]


def test_verify_denied_topics(pki, broker):
    """Mosquitto 2.0 grants a denied MQTT 3.1.1 subscription and drops the messages (AWS IoT would
    refuse or disconnect): the nonce never comes back, and the step says so in time."""
    res = dc.verify(_config(pki, broker["deny"]), "test", 3)
    assert res["ok"] is False and res["step"] in ("subscribe", "timeout"), res
    assert "topic/test" in res["cause"]
    assert 3 <= res["elapsed"] < 5


def test_verify_unreadable_key_is_config(pki, broker, tmp_path):
    config = _config(pki, broker["open"])
    config["private_key"] = str(tmp_path / "missing.key")
    res = dc.verify(config, "test", 5)
    assert res["ok"] is False and res["step"] == "config", res


def test_cli_verify_publish_and_run_paho2(pki, broker, tmp_path):
    """The program as the Pi runs it, with this venv's paho-mqtt (2.x)."""
    path = _write_config(tmp_path, _config(pki, broker["open"]))
    out = subprocess.run(
        [sys.executable, CLIENT, "--config", path, "verify", "--topic", "test", "--timeout", "10"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 1, out
    assert json.loads(lines[0])["ok"] is True
    out = subprocess.run(
        [sys.executable, CLIENT, "--config", path, "publish", "--topic", "test", "--message", "hello"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True, out
    out = subprocess.run(
        [sys.executable, CLIENT, "--config", path, "run", "--interval", "0.1", "--count", "2"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    results = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert out.returncode == 0 and [r["seq"] for r in results] == [0, 1], out
    assert all(r["ok"] for r in results)


def test_cli_refused_exit_status(pki, broker, tmp_path):
    config = _config(pki, broker["open"], cert="rogue_cert", key="rogue_key")
    path = _write_config(tmp_path, config)
    out = subprocess.run(
        [sys.executable, CLIENT, "--config", path, "verify", "--timeout", "10"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 1, out
    assert json.loads(out.stdout)["step"] in ("tls", "auth")


def _debian_python_with_paho1():
    """/usr/bin/python3 with Debian's python3-paho-mqtt (1.6.x), as on a Pi running bookworm."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return None
    probe = subprocess.run(
        [python, "-c", "import paho.mqtt; print(paho.mqtt.__version__)"],
        capture_output=True, text=True, check=False,
    )
    if probe.returncode != 0 or not probe.stdout.startswith("1."):
        return None
    return python


def test_cli_with_paho_1_6(pki, broker, tmp_path):
    python = _debian_python_with_paho1()
    if python is None:
        pytest.skip("no /usr/bin/python3 with paho-mqtt 1.x (apt-get install python3-paho-mqtt)")
    ok_path = _write_config(tmp_path, _config(pki, broker["open"]))
    out = subprocess.run([python, CLIENT, "--config", ok_path, "verify", "--timeout", "10"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True, out
    (tmp_path / "bad").mkdir()
    bad_path = _write_config(tmp_path / "bad", _config(pki, broker["open"], cert="rogue_cert", key="rogue_key"))
    out = subprocess.run([python, CLIENT, "--config", bad_path, "verify", "--timeout", "10"],
                         capture_output=True, text=True, timeout=30, check=False)
    res = json.loads(out.stdout)
    assert out.returncode == 1 and res["step"] in ("tls", "auth"), out
    (tmp_path / "deny").mkdir()
    deny_path = _write_config(tmp_path / "deny", _config(pki, broker["deny"]))
    out = subprocess.run([python, CLIENT, "--config", deny_path, "verify", "--timeout", "3"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert json.loads(out.stdout)["step"] in ("subscribe", "timeout"), out
