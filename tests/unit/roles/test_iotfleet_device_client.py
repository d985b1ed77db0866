# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the device client (roles/device/files/iotfleet_device_client.py) without a broker.

The session state machine is driven by a fake paho module (FakeMqtt) that plays back what a broker
would do: the cases Mosquitto cannot produce (CONNACK refused, SUBACK 0x80, a broker that drops the
connection after PUBLISH as AWS IoT does for an unauthorised topic) are covered here; the real
broker cases are in tests/integration/test_device_client.py.
"""

import json
import ssl
import sys
import types
import zipfile

import pytest

from support.imports import load_device_client

dc = load_device_client("iotfleet_device_client_ut")

BASE = {
    "host": "example-ats.iot.eu-west-1.amazonaws.com",
    "thing_name": "pi-1",
    "certificate": "/etc/iotfleet/certificate.pem",
    "private_key": "/etc/iotfleet/private.key",
    "root_ca": "/etc/iotfleet/root-ca.pem",
}


# ---------------------------------------------------------------- configuration
def test_config_defaults():
    config = dc.load_config_dict(dict(BASE))
    assert config["port"] == 8883 and config["interval"] == 60.0
    assert config["topics"] == {"test": "test", "telemetry": "$aws/rules/mydata/{thing_name}"}
    assert dc.topic_for(config, "telemetry") == "$aws/rules/mydata/pi-1"


def test_config_topics_merge_and_port_string():
    config = dc.load_config_dict(dict(BASE, port="443", topics={"test": "check/{thing_name}"}))
    assert config["port"] == 443
    assert dc.topic_for(config, "test") == "check/pi-1"
    assert dc.topic_for(config, "telemetry") == "$aws/rules/mydata/pi-1"


@pytest.mark.parametrize("drop", ["host", "thing_name", "certificate", "private_key", "root_ca"])
def test_config_missing_key(drop):
    config = dict(BASE)
    del config[drop]
    with pytest.raises(dc.ClientError, match=drop):
        dc.load_config_dict(config)


def test_config_bad_port_and_not_object():
    with pytest.raises(dc.ClientError, match="port"):
        dc.load_config_dict(dict(BASE, port="eighty"))
    with pytest.raises(dc.ClientError, match="JSON object"):
        dc.load_config_dict(["not", "a", "dict"])


def test_load_config_file(tmp_path):
    path = tmp_path / "client.json"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    assert dc.load_config(str(path))["thing_name"] == "pi-1"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(dc.ClientError, match="cannot read"):
        dc.load_config(str(path))


def test_main_bad_config_prints_one_json_line(tmp_path, capsys):
    rc = dc.main(["--config", str(tmp_path / "missing.json"), "verify"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 2 and len(out) == 1
    res = json.loads(out[0])
    assert res["ok"] is False and res["step"] == "config"


# ---------------------------------------------------------------- pieces
def test_extend_sys_path_adds_dir_and_wheels(tmp_path, monkeypatch):
    wheel = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fakepkg_iotfleet/__init__.py", "VALUE = 42\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    added = dc.extend_sys_path(str(tmp_path))
    assert str(tmp_path) in added and str(wheel) in added
    import fakepkg_iotfleet  # noqa: PLC0415 - imported from the wheel just added

    assert fakepkg_iotfleet.VALUE == 42
    assert dc.extend_sys_path(str(tmp_path / "absent")) == []


def test_code_value():
    assert dc.code_value(5) == 5
    assert dc.code_value(types.SimpleNamespace(value=0x80)) == 0x80


@pytest.mark.parametrize(
    "text, kind",
    [
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer", "tls-server"),
        ("Hostname mismatch, certificate is not valid for 'x'", "tls-server"),
        ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca", "tls-client"),
        ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate", "tls-client"),
        ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required", "tls-client"),
        ("sslv3 alert certificate revoked", "tls-client"),
    ],
)
def test_classify_tls_error(text, kind):
    assert dc.classify_tls_error(text) == kind


@pytest.mark.parametrize(
    "state, text, step, words",
    [
        ("tcp", "Connection refused", "connect", "endpoint"),
        ("tls", "certificate verify failed", "tls", "root CA"),
        ("connecting", "failed to receive on socket: tlsv1 alert unknown ca", "tls", "ACTIVE"),
        ("connecting", "connection lost", "auth", "client id not the thing name"),
        ("refused", "", "auth", "client id not the thing name"),
        ("subscribing", "", "subscribe", "topicfilter/test"),
        ("publishing", "", "publish", "topic/test"),
        ("receiving", "", "timeout", "iot:Receive"),
    ],
)
def test_diagnose(state, text, step, words):
    got_step, cause = dc.diagnose(state, text, "test")
    assert got_step == step and words in cause


def test_telemetry_is_json_with_thing():
    body = json.loads(dc.telemetry(dc.load_config_dict(dict(BASE)), 3))
    assert body["thing_name"] == "pi-1" and body["seq"] == 3 and isinstance(body["ts"], int)


# ---------------------------------------------------------------- the session against a fake paho
class FakeMessage:
    def __init__(self, topic, payload):
        self.topic, self.payload = topic, payload


class FakeClient:
    """Plays a broker script. script: dict with connect_error, connack, suback, drop_after_publish, echo."""

    script = {}

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.queue = []
        self.mid = 0
        self.connected = False
        self._connect_timeout = 5.0

    def tls_set_context(self, context):
        self.context = context

    def reconnect_delay_set(self, a, b):
        pass

    def connect(self, host, port, keepalive=60):
        # script "attempts": one dict per connect (connect_error, connack, drop_before_connack), in turn
        attempts = self.script.get("attempts")
        step = (attempts.pop(0) if len(attempts) > 1 else attempts[0]) if attempts else self.script
        self.script.setdefault("connects", []).append(step)
        error = step.get("connect_error")
        if error:
            raise error
        self.connected = True
        if step.get("drop_before_connack"):
            self.queue.append("drop")
            return 0
        self.queue.append(lambda: self.on_connect(self, None, {}, step.get("connack", 0)))
        return 0

    def subscribe(self, topic, qos=0):
        self.mid += 1
        mid = self.mid
        if self.script.get("drop_after_subscribe"):
            self.queue.append("drop")
            return 0, mid
        self.queue.append(lambda: self.on_subscribe(self, None, mid, (self.script.get("suback", 1),)))
        self.topic = topic
        return 0, mid

    def publish(self, topic, payload, qos=0):
        self.mid += 1
        mid = self.mid
        if self.script.get("drop_after_publish"):
            self.queue.append("drop")
        else:
            self.queue.append(lambda: self.on_publish(self, None, mid))
            if self.script.get("echo", True):
                self.queue.append(lambda: self.on_message(self, None, FakeMessage(topic, payload)))
        return types.SimpleNamespace(mid=mid, rc=0)

    def loop(self, timeout=1.0):
        if not self.connected:
            return 4  # MQTT_ERR_NO_CONN
        if self.queue:
            item = self.queue.pop(0)
            if item == "drop":
                self.connected = False
                return 7  # MQTT_ERR_CONN_LOST
            item()
        return 0

    def disconnect(self):
        self.connected = False


def fake_mqtt(script, v2=True):
    FakeClient.script = script
    module = types.SimpleNamespace(Client=FakeClient, MQTTv311=4, MQTT_LOG_ERR=8, MQTT_LOG_WARNING=4)
    if v2:
        module.CallbackAPIVersion = types.SimpleNamespace(VERSION2="v2")
    return module


@pytest.fixture
def no_tls(monkeypatch):
    monkeypatch.setattr(dc, "make_tls_context", lambda config: object())


CONFIG = dc.load_config_dict(dict(BASE))


@pytest.mark.parametrize("v2", [True, False])
def test_make_client_paho_versions(v2):
    client = dc.make_client(fake_mqtt({}, v2=v2), "pi-1")
    assert client.kwargs["client_id"] == "pi-1" and client.kwargs["clean_session"] is True
    assert client.args == (("v2",) if v2 else ())


@pytest.mark.usefixtures("no_tls")
def test_fake_round_trip_ok():
    res = dc.verify(CONFIG, "test", 2, mqtt=fake_mqtt({}))
    assert res["ok"] is True and res["step"] == "done" and res["thing_name"] == "pi-1"


@pytest.mark.usefixtures("no_tls")
@pytest.mark.parametrize(
    "script, step, words",
    [
        ({"connect_error": ConnectionRefusedError(111, "Connection refused")}, "connect", "endpoint"),
        ({"connect_error": ssl.SSLCertVerificationError("certificate verify failed")}, "tls", "root CA"),
        ({"connack": 5}, "auth", "client id not the thing name"),
        ({"suback": 0x80}, "subscribe", "topicfilter/test"),
        ({"drop_after_publish": True}, "publish", "topic/test"),
        ({"echo": False}, "timeout", "iot:Receive"),
        # accepted, then dropped by the broker: AWS closes the older connection of a client id taken over
        ({"drop_after_subscribe": True}, "subscribe", "another connection with the same client id (pi-1) took over"),
        ({"drop_after_publish": True}, "publish", "or another connection with the same client id (pi-1)"),
    ],
)
def test_fake_failures_name_step_and_cause(script, step, words):
    res = dc.verify(CONFIG, "test", 0.5, mqtt=fake_mqtt(script, v2=False))
    assert res["ok"] is False and res["step"] == step, res
    assert words in res["cause"]
    assert res["elapsed"] < 2


@pytest.mark.usefixtures("no_tls")
def test_fake_publish_and_run_count():
    assert dc.publish(CONFIG, "t", "m", timeout=1, mqtt=fake_mqtt({}))["ok"] is True
    lines = []
    out = types.SimpleNamespace(write=lines.append, flush=lambda: None)
    assert dc.run(CONFIG, interval=0.01, count=2, mqtt=fake_mqtt({}), out=out) == 0
    assert [json.loads(line)["seq"] for line in lines] == [0, 1]


def test_tls_context_unreadable_files_is_config(tmp_path):
    config = dc.load_config_dict(dict(BASE, root_ca=str(tmp_path / "none.pem")))
    res = dc.verify(config, "test", 1, mqtt=fake_mqtt({}))
    assert res["ok"] is False and res["step"] == "config"


# ---------------------------------------------------------------- registration jitp: retry a refused first connect
JITP = dc.load_config_dict(dict(BASE, jitp=True))
TLS_REFUSED = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
TLS_UNTRUSTED = ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer certificate")


@pytest.fixture
def fast_retries(monkeypatch):
    """Back-off in tens of milliseconds, so a retry-until-the-deadline test takes a fraction of a second."""
    monkeypatch.setattr(dc, "RETRY_FIRST_DELAY", 0.02)
    monkeypatch.setattr(dc, "RETRY_MAX_DELAY", 0.08)
    monkeypatch.setattr(dc, "RETRY_MIN_ATTEMPT", 0.05)


def test_config_jitp_flag():
    assert dc.load_config_dict(dict(BASE))["jitp"] is False
    assert JITP["jitp"] is True
    with pytest.raises(dc.ClientError, match="jitp must be true or false"):
        dc.load_config_dict(dict(BASE, jitp="yes"))


@pytest.mark.usefixtures("no_tls")
@pytest.mark.parametrize(
    "first",
    [
        {"connack": 5},  # CONNACK not authorized (the stand-in; MQTT 3.1.1)
        {"drop_before_connack": True},  # connection closed before any CONNACK
        {"connect_error": TLS_REFUSED},  # the broker refuses the TLS handshake
    ],
    ids=["connack-refused", "closed-before-connack", "tls-refused-by-broker"],
)
def test_jitp_first_connect_refused_then_provisioned(first, monkeypatch):
    sleeps = []
    monkeypatch.setattr(dc.time, "sleep", sleeps.append)
    mqtt = fake_mqtt({"attempts": [first, {"connack": 0}]})
    res = dc.verify(JITP, "test", 10, mqtt=mqtt)
    assert res["ok"] is True and res["step"] == "done", res
    assert res["connect_attempts"] == 2 and len(FakeClient.script["connects"]) == 2
    # one pause, the first back-off step: AWS IoT allows one CONNECT per second and client id
    assert sleeps == [dc.RETRY_FIRST_DELAY] == [1.0]


@pytest.mark.usefixtures("no_tls")
def test_jitp_backoff_doubles_up_to_the_cap_within_the_deadline(monkeypatch):
    clock = {"now": 1000.0}
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(dc, "time", types.SimpleNamespace(monotonic=lambda: clock["now"], sleep=sleep, time=dc.time.time))
    res = dc.verify(JITP, "test", 30, mqtt=fake_mqtt({"connack": 5}))
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 8.0, 6.0], sleeps  # the last one leaves RETRY_MIN_ATTEMPT before the deadline
    assert res["ok"] is False and res["step"] == "auth" and res["connect_attempts"] == 7
    assert "just-in-time provisioning" in res["cause"] and "refused 7 time(s)" in res["detail"]


@pytest.mark.usefixtures("no_tls", "fast_retries")
def test_jitp_keeps_refused_until_the_deadline_then_fails_at_auth():
    res = dc.verify(JITP, "test", 0.5, mqtt=fake_mqtt({"connack": 5}))
    assert res["ok"] is False and res["step"] == "auth", res
    assert res["connect_attempts"] >= 4
    assert 0.3 <= res["elapsed"] < 1.0
    assert "CONNACK refused (code 5)" in res["detail"]


@pytest.mark.usefixtures("no_tls", "fast_retries")
def test_api_mode_refusal_fails_fast_without_retry(monkeypatch):
    sleeps = []
    monkeypatch.setattr(dc.time, "sleep", sleeps.append)
    res = dc.verify(CONFIG, "test", 10, mqtt=fake_mqtt({"attempts": [{"connack": 5}, {"connack": 0}]}))
    assert res["ok"] is False and res["step"] == "auth" and res["connect_attempts"] == 1
    assert sleeps == [] and res["elapsed"] < 1
    assert "just-in-time" not in res["cause"]


@pytest.mark.usefixtures("no_tls", "fast_retries")
@pytest.mark.parametrize(
    "error, step",
    [
        (ConnectionRefusedError(111, "Connection refused"), "connect"),  # no endpoint there
        (TLS_UNTRUSTED, "tls"),  # the broker's certificate is not trusted: wrong endpoint or root CA
    ],
)
def test_jitp_does_not_retry_what_retrying_cannot_fix(error, step, monkeypatch):
    sleeps = []
    monkeypatch.setattr(dc.time, "sleep", sleeps.append)
    res = dc.verify(JITP, "test", 10, mqtt=fake_mqtt({"attempts": [{"connect_error": error}, {"connack": 0}]}))
    assert res["ok"] is False and res["step"] == step and res["connect_attempts"] == 1, res
    assert sleeps == []


@pytest.mark.usefixtures("no_tls")
def test_jitp_publish_retries_too(monkeypatch):
    monkeypatch.setattr(dc.time, "sleep", lambda seconds: None)
    res = dc.publish(JITP, "t", "m", timeout=10, mqtt=fake_mqtt({"attempts": [{"connack": 5}, {"connack": 0}]}))
    assert res["ok"] is True and res["connect_attempts"] == 2
    res = dc.publish(CONFIG, "t", "m", timeout=10, mqtt=fake_mqtt({"attempts": [{"connack": 5}, {"connack": 0}]}))
    assert res["ok"] is False and res["step"] == "auth" and res["connect_attempts"] == 1


@pytest.mark.usefixtures("no_tls")
def test_jitp_main_prints_one_line_and_exit_status(tmp_path, monkeypatch, capsys):
    path = tmp_path / "client.json"
    path.write_text(json.dumps(dict(BASE, jitp=True)), encoding="utf-8")
    monkeypatch.setattr(dc.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(dc, "import_paho", lambda lib_dir: fake_mqtt({"attempts": [{"connack": 5}, {"connack": 0}]}))
    assert dc.main(["--config", str(path), "verify", "--timeout", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["connect_attempts"] == 2


def test_refused_by_broker_classification():
    def session(state, text="", connack=None):
        return types.SimpleNamespace(state=state, error_text=text, connack=connack)

    assert dc.refused_by_broker(session("refused", connack=5))
    assert dc.refused_by_broker(session("connecting", "connection lost (paho rc 7)"))
    assert dc.refused_by_broker(session("tls", str(TLS_REFUSED)))
    assert not dc.refused_by_broker(session("tls", str(TLS_UNTRUSTED)))
    assert not dc.refused_by_broker(session("connecting", "certificate verify failed"))
    assert not dc.refused_by_broker(session("tcp", "Connection refused"))


@pytest.mark.usefixtures("no_tls")
def test_suback_refusal_is_policy_not_takeover():
    res = dc.verify(CONFIG, "test", 0.5, mqtt=fake_mqtt({"suback": 0x80}, v2=False))
    assert res["step"] == "subscribe" and "policy" in res["cause"] and "same client id" not in res["cause"], res
    res = dc.verify(CONFIG, "test", 0.5, mqtt=fake_mqtt({"drop_after_subscribe": True}, v2=False))
    assert "policy" not in res["cause"] and "CONNACK 0" in res["detail"], res
