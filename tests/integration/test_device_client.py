# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: the device client (roles/device/files/iotfleet_device_client.py) against the lab's
AWS IoT Core stand-in (lab/iotcore), which decides as AWS does from the registry: certificate
status, CA, thing attachment and the fleet's IoT policy (roles/registry/defaults/main.yml).

The client must succeed with what the collection provisions, and when it fails, name the step and
the likely cause an operator checks first. The stand-in's broker certificate is valid for the
endpoint name and 127.0.0.1 only, so "localhost" is a wrong endpoint name that still reaches it.
One stand-in per module (per xdist worker), emptied between tests.
"""

import json
import os
import socket
import subprocess
import sys
import types

import pytest

from support.imports import DEVICE_CLIENT, load_device_client
from support.iotcore import fleet_policy, missing_tools
from support.procs import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_tools()), reason=f"the IoT Core stand-in needs {', '.join(missing_tools())}"
                       " (lab/host-setup.sh)"),
]

THING = "pi-zero-1"
POLICY = "iotfleet-device"


dc = load_device_client("iotfleet_device_client_it")


def _debian_python_with_paho1():
    """/usr/bin/python3 with Debian's python3-paho-mqtt (1.6.x), as on a Pi running bookworm."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return None
    probe = subprocess.run([python, "-c", "import paho.mqtt; print(paho.mqtt.__version__)"],
                           capture_output=True, text=True, check=False)
    return python if probe.returncode == 0 and probe.stdout.startswith("1.") else None


PYTHONS = pytest.mark.parametrize("python", [
    pytest.param(sys.executable, id="paho2"),
    pytest.param(_debian_python_with_paho1(), id="paho1.6", marks=pytest.mark.skipif(
        _debian_python_with_paho1() is None,
        reason="no /usr/bin/python3 with paho-mqtt 1.x (apt-get install python3-paho-mqtt)")),
])


# the broker's certificate names only 127.0.0.1 and the endpoint: "localhost" is a wrong name
STANDIN_SERVER_NAMES = ["127.0.0.1"]


@pytest.fixture
def ca(core):
    return core.register_ca()


def provision(core, ca, document=None):
    """The device as the registry role provisions it: ACTIVE certificate, thing, fleet policy."""
    core.put_policy(POLICY, document or fleet_policy())
    return core.make_device(ca, THING, policies=[POLICY])


def config_for(core, device, **overrides):
    config = {"host": "127.0.0.1", "port": core.mqtt_port, "thing_name": THING, "certificate": str(device.cert_path),
              "private_key": str(device.key_path), "root_ca": str(core.root_ca)}
    config.update(overrides)
    return dc.load_config_dict(config)


def cli(python, config, tmp_path, *args):
    path = tmp_path / ("client-%d.json" % len(list(tmp_path.glob("client-*.json"))))
    path.write_text(json.dumps(config), encoding="utf-8")
    out = subprocess.run([python, DEVICE_CLIENT, "--config", str(path), *args],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.returncode, [json.loads(line) for line in out.stdout.strip().splitlines()], out


# ---------------------------------------------------------------- against the registry's decisions
def test_verify_succeeds_with_fleet_identity_and_policy(core, ca):
    res = dc.verify(config_for(core, provision(core, ca)), "test", 10)
    assert res["ok"] is True, res
    assert res["step"] == "done" and res["thing_name"] == THING
    assert 0 < res["elapsed"] < 10
    assert core.refusals() == []


def test_verify_fails_at_subscribe_when_policy_lacks_subscribe(core, ca):
    res = dc.verify(config_for(core, provision(core, ca, fleet_policy(subscribe=False))), "test", 10)
    assert res["ok"] is False and res["step"] == "subscribe", res
    assert "policy" in res["cause"] and "iot:Subscribe on topicfilter/test" in res["cause"], res
    assert "SUBACK" in res["detail"], res
    assert res["elapsed"] < 5                                    # a SUBACK failure, not a timeout
    assert any("iot:Subscribe on topicfilter/test" in r for r in core.refusal_reasons(THING))


def test_verify_fails_at_auth_when_certificate_revoked(core, ca):
    device = provision(core, ca)
    core.iot.update_certificate(certificateId=device.id, newStatus="REVOKED")
    res = dc.verify(config_for(core, device), "test", 10)
    assert res["ok"] is False and res["step"] == "auth", res
    assert "not ACTIVE" in res["cause"] and "CONNACK refused" in res["detail"], res
    assert res["elapsed"] < 5
    assert any("REVOKED" in r for r in core.refusal_reasons(THING, "connect"))


def test_verify_refused_promptly_certificate_of_unregistered_ca(core):
    """The broker trusts only registered CAs: the handshake is refused, and the client says so at
    once (paho 2 would otherwise reconnect forever), as step tls naming the certificate and its CA.
    With TLS 1.3 the client's handshake ends before the broker checks the certificate; its alert
    comes later and is often lost to a connection reset: repeated, so that case is met."""
    device = core.issue(core.new_ca(), THING)
    for _attempt in range(8):
        res = dc.verify(config_for(core, device), "test", 10)
        assert res["ok"] is False and res["step"] == "tls", res
        assert "not ACTIVE" in res["cause"] and "CA" in res["cause"], res
        assert res["elapsed"] < 5
    assert core.refusals() == []                                 # refused at TLS, below MQTT


# ---------------------------------------------------------------- the client's own diagnosis
def test_tls_probe_tells_a_refused_certificate_from_an_accepted_one(core, ca):
    """The probe behind that diagnosis: the broker's alert for a certificate of an unregistered CA,
    nothing (None) for the fleet's own certificate, which the broker accepts and then waits on."""
    refused = dc.probe_certificate_refusal(config_for(core, core.issue(core.new_ca(), THING)), timeout=2)
    assert refused and dc.classify_tls_error(refused) == "tls-client", refused
    assert dc.probe_certificate_refusal(config_for(core, provision(core, ca)), timeout=0.5) is None


def test_verify_wrong_root_ca_is_tls(core, ca, tmp_path):
    device = provision(core, ca)
    other_root = tmp_path / "other-root.pem"
    other_root.write_text(core.new_ca().pem)
    res = dc.verify(config_for(core, device, root_ca=str(other_root)), "test", 10)
    assert res["ok"] is False and res["step"] == "tls", res
    assert "root CA" in res["cause"], res


def test_verify_wrong_endpoint_name_is_tls(core, ca):
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo("localhost", core.mqtt_port, socket.AF_INET)}
    except OSError:
        addresses = set()
    if "127.0.0.1" not in addresses:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    res = dc.verify(config_for(core, provision(core, ca), host="localhost"), "test", 10)
    assert res["ok"] is False and res["step"] == "tls", res
    assert "endpoint" in res["cause"], res


def test_verify_closed_port_is_connect(core, ca):
    res = dc.verify(config_for(core, provision(core, ca), port=free_port()), "test", 5)
    assert res["ok"] is False and res["step"] == "connect", res
    assert "endpoint" in res["cause"]
    assert res["elapsed"] < 2                                    # refused at once, not a timeout


def test_verify_taken_over_by_a_second_connection_with_the_same_client_id(core, ca):
    """Two runs verifying the same Pi at once: the broker (as AWS IoT) closes the older connection when a
    second one with the same client id connects. Here the second one connects mid-round-trip, after the
    first one's CONNACK and before its SUBSCRIBE: the first must name the takeover, not the policy (the
    broker refused nothing); a run alone then succeeds."""
    import paho.mqtt.client as paho

    config = config_for(core, provision(core, ca))
    second = {}

    class TakenOver(paho.Client):
        def subscribe(self, *args, **kwargs):
            if not second:
                session, _attempts, _started, failure = dc.connected_session(config, "test", 10)
                assert failure is None, failure
                second["session"] = session
            return super().subscribe(*args, **kwargs)

    mqtt = types.SimpleNamespace(**dict(vars(paho), Client=TakenOver))
    try:
        res = dc.verify(config, "test", 10, mqtt=mqtt)
    finally:
        if second:
            second["session"].close()
    assert res["ok"] is False and res["step"] == "subscribe", res
    assert res["cause"] == ("another connection with the same client id (%s) took over - two runs verifying this Pi "
                            "at once?" % THING), res
    assert "policy" not in res["cause"] and "CONNACK 0" in res["detail"], res
    assert res["elapsed"] < 5                                    # the drop, not a timeout
    assert core.refusal_reasons(THING) == []                     # the broker refused nothing: no policy problem
    assert dc.verify(config, "test", 10)["ok"] is True           # one run at a time: fine


def test_verify_unreadable_key_is_config(core, ca, tmp_path):
    res = dc.verify(config_for(core, provision(core, ca), private_key=str(tmp_path / "missing.key")), "test", 5)
    assert res["ok"] is False and res["step"] == "config", res


# ---------------------------------------------------------------- the program as the Pi runs it
@PYTHONS
def test_cli_verify_publish_and_run(core, ca, tmp_path, python):
    """verify, publish and run (telemetry on $aws/rules/mydata/<thing>, which the fleet policy
    allows): all succeed, and the stand-in refused nothing."""
    config = config_for(core, provision(core, ca))
    rc, lines, out = cli(python, config, tmp_path, "verify", "--topic", "test", "--timeout", "10")
    assert rc == 0 and len(lines) == 1 and lines[0]["ok"] is True, out
    rc, lines, out = cli(python, config, tmp_path, "publish", "--topic", "test", "--message", "hello")
    assert rc == 0 and lines[0]["ok"] is True, out
    rc, lines, out = cli(python, config, tmp_path, "run", "--interval", "0.1", "--count", "2")
    assert rc == 0 and [r["seq"] for r in lines] == [0, 1] and all(r["ok"] for r in lines), out
    assert core.refusals() == []


@PYTHONS
def test_cli_failures_exit_status(core, ca, tmp_path, python):
    device = provision(core, ca, fleet_policy(subscribe=False))
    rc, lines, out = cli(python, config_for(core, device), tmp_path, "verify", "--timeout", "10")
    assert rc == 1 and lines[0]["step"] == "subscribe", out
    core.iot.update_certificate(certificateId=device.id, newStatus="REVOKED")
    rc, lines, out = cli(python, config_for(core, device), tmp_path, "verify", "--timeout", "10")
    assert rc == 1 and lines[0]["step"] == "auth", out
    rc, lines, out = cli(python, {"host": "127.0.0.1"}, tmp_path, "verify")
    assert rc == 2 and lines[0]["step"] == "config", out
