"""Start and stop the lab's AWS IoT Core stand-in (lab/iotcore/server.py) for host-side tests,
and the few helpers those tests share (a fleet CA, device identities, an MQTT probe).

    with IoTCore(tmp_path) as core:
        core.iot            # boto3 IoT client on its control plane (no retries)
        core.mqtt_port      # MQTT/TLS on 127.0.0.1 (client certificates required)
        core.root_ca        # the root that signed the broker's certificate (for endpoint + loopback)
        core.reset()        # empty registry (moto and the stand-in's own state)
        core.refusals()     # [[what, client id, reason], ...] the data plane refused since the reset

        ca = core.register_ca()                                  # the fleet CA, registered ACTIVE
        dev = core.make_device(ca, "pi-1", policies=["fleet"])   # key, cert, thing, attachments
        with core.probe(dev) as p:                               # MQTT 3.1.1 (protocol=MQTTv5 too)
            p.connack, p.subscribe("test"), p.publish("test", b"x"), p.wait_message("test")

Certificates are made with the collection's own X.509 helpers (plugins/module_utils/_x509.py), as
the `ca` role and the cloud modules make them. Only the process this class started is stopped, by PID.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "lab" / "iotcore" / "server.py"
sys.path.insert(0, str(ROOT / "lab" / "iotcore"))

import pki  # noqa: E402  (lab/iotcore/pki.py)
from .procs import free_port, wait_for  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
MQTTv311, MQTTv5 = 4, 5
JITP_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/iotfleet-jitp"


def module_defaults(endpoint: str, indent: int = 2, region: str = REGION) -> str:
    """The ``module_defaults`` block of a play against the stand-in (YAML, every line indented ``indent``
    spaces): every module of the iotfleet.aws.iot group with ``endpoint``, the region and the lab's
    credentials. The playbooks of the tests and the benchmarks put it where they wrote it out before."""
    lines = ["module_defaults:", "  group/iotfleet.aws.iot:", f'    endpoint_url: "{endpoint}"', f"    region: {region}",
             f"    access_key: {CREDENTIALS['aws_access_key_id']}", f"    secret_key: {CREDENTIALS['aws_secret_access_key']}"]
    return "\n".join(" " * indent + line for line in lines)


def missing_tools() -> list[str]:
    """What the stand-in needs on this host and lacks (the tests skip on it)."""
    return [tool for tool in ("mosquitto", "gcc", "openssl") if shutil.which(tool) is None]


def fleet_policy(rule: str = "mydata", subscribe: bool = True) -> dict:
    """The device policy of roles/registry/defaults/main.yml (registry_policy_document), rendered
    with registry_topic_rule_name=rule; subscribe=False drops its iot:Subscribe statement."""
    statements = [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": [f"arn:aws:iot:*:*:topic/$aws/rules/{rule}/*", "arn:aws:iot:*:*:topic/test"]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test"},
    ]
    if not subscribe:
        statements = statements[:2]
    return {"Version": "2012-10-17", "Statement": statements}


def policy_document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(actions, *resources: str, effect: str = "Allow") -> dict:
    """One statement; resources are ARN tails ('client/pi-1', 'topic/test', 'topicfilter/test')."""
    return {"Effect": effect, "Action": actions, "Resource": [f"arn:aws:iot:*:*:{r}" for r in resources]}


def register_ca_certificate(iot, ca_cert, ca_key, active=True, **extra):
    """Register a CA as AWS wants it (DEFAULT mode): with a verification certificate whose CN is
    this account's registration code, signed by the CA key. ``iot`` is a boto3 IoT client."""
    x = x509_helpers()
    code = iot.get_registration_code()["registrationCode"]
    verification = x.verification_certificate(ca_cert, ca_key, code)
    return iot.register_ca_certificate(caCertificate=x.certificate_pem(ca_cert), setAsActive=active,
                                       verificationCertificate=x.certificate_pem(verification), **extra)


def enable_fleet_indexing(iot, mode: str = "REGISTRY") -> None:
    """Fleet indexing on (dynamic thing groups need it, as on AWS). ``iot`` is a boto3 IoT client."""
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": mode})


def wait_thing_type_deletable(iot, name: str, delay: float) -> None:
    """Wait until thing type ``name`` has been deprecated for ``delay`` seconds (the stand-in's
    ``--thing-type-delete-delay``), by the deprecation date the stand-in reports."""
    import datetime as dt
    deprecated = iot.describe_thing_type(thingTypeName=name)["thingTypeMetadata"]["deprecationDate"]
    wait_for(lambda: dt.datetime.now(dt.timezone.utc) >= deprecated + dt.timedelta(seconds=delay),
             delay + 30, f"thing type {name} deprecated for {delay}s")


def x509_helpers():
    """The collection's X.509 helpers (plugins/module_utils/_x509.py)."""
    from ansible_collections.iotfleet.aws.plugins.module_utils import _x509 as module
    return module


@dataclass
class CA:
    cn: str
    cert: object
    key: object
    pem: str
    id: str | None = None       # None: not registered
    arn: str | None = None


@dataclass
class Device:
    name: str
    cert: object
    pem: str
    cert_path: Path
    key_path: Path
    id: str                      # AWS's certificate id (SHA-256 of the DER)
    arn: str | None = None       # None: not registered


class IoTCore:
    def __init__(self, state_dir, prefix: str = "standin", server_names: list[str] | None = None,
                 broker: bool = True, thing_type_delete_delay: float | None = None):
        """server_names: the broker certificate's names besides the endpoint (localhost, 127.0.0.1).
        broker=False: the control plane alone (the module tests' AWS API server).
        thing_type_delete_delay: seconds a thing type must have been deprecated before it can be
        deleted (None: the stand-in's default, AWS's 5 minutes)."""
        self.broker = broker
        self.thing_type_delete_delay = thing_type_delete_delay
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.server_names = server_names
        self.proc = None
        self._seq = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return f"{self.prefix}-ats.iot.{REGION}.amazonaws.com"

    def start(self) -> "IoTCore":
        if self.broker:
            self._server_certificate()
        for _attempt in range(5):
            self.api_port, self.mqtt_port = free_port(), free_port()
            mqtt = ["--mqtt", f"127.0.0.1:{self.mqtt_port}", "--server-cert", str(self.dir / "server.pem"),
                    "--server-key", str(self.dir / "server.key")] if self.broker else []
            delay = [] if self.thing_type_delete_delay is None else [
                "--thing-type-delete-delay", str(self.thing_type_delete_delay)]
            log = open(self.dir / "iotcore.log", "ab")
            self.proc = subprocess.Popen(
                [sys.executable, str(SERVER), "--state", str(self.dir), "--api", f"127.0.0.1:{self.api_port}",
                 "--endpoint-prefix", self.prefix, *mqtt, *delay],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            ready = self.dir / "ready.json"
            try:
                wait_for(lambda: ready.exists() or self.proc.poll() is not None, 60, "the stand-in")
            except TimeoutError:
                self.stop()
                raise
            if ready.exists():
                self.ready = json.loads(ready.read_text())
                return self
            if "in use" not in (self.dir / "iotcore.log").read_text(errors="replace"):
                break
        raise RuntimeError(f"the stand-in did not start:\n{(self.dir / 'iotcore.log').read_text()[-3000:]}")

    def _server_certificate(self) -> None:
        root, root_key = pki.make_ca("iotfleet test root CA")
        names = [self.endpoint, *(self.server_names if self.server_names is not None else ["localhost", "127.0.0.1"])]
        server, server_key = pki.issue_server(root, root_key, names)
        self.root_ca = self.dir / "root-ca.pem"
        self.root_ca.write_bytes(pki.pem(root))
        (self.dir / "server.pem").write_bytes(pki.pem(server))
        (self.dir / "server.key").write_bytes(pki.key_pem(server_key))
        os.chmod(self.dir / "server.key", 0o600)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self, retries: int = 1):
        import boto3
        from botocore.config import Config
        return boto3.client("iot", region_name=REGION, endpoint_url=self.url,
                            config=Config(retries={"max_attempts": retries, "mode": "standard"}), **CREDENTIALS)

    @property
    def iot(self):
        if not hasattr(self, "_iot"):
            self._iot = self.client()
        return self._iot

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).read()

    def refusals(self) -> list:
        with urllib.request.urlopen(self.url + "/_iotcore/events", timeout=10) as r:
            return json.loads(r.read())["refusals"]

    def refusal_reasons(self, client_id: str | None = None, what: str | None = None) -> list[str]:
        """The reasons the data plane gave, optionally for one client id / kind ('connect', 'iot:Publish')."""
        return [reason for kind, cid, reason in self.refusals()
                if (client_id is None or cid == client_id) and (what is None or kind == what)]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ registry helpers
    def new_ca(self, cn: str | None = None) -> CA:
        """A fleet CA (the `ca` role's kind), not registered. Each gets a unique name unless cn is given."""
        x = x509_helpers()
        cn = cn or f"iotfleet test CA {uuid.uuid4().hex[:12]}"
        cert, key = x.create_ca(cn)
        return CA(cn, cert, key, x.certificate_pem(cert))

    def register_ca(self, ca: CA | None = None, *, active: bool = True, auto_registration: bool = False,
                    registration_config: dict | None = None) -> CA:
        """Register a CA (a new one unless given) with a verification certificate made for this account."""
        ca = ca or self.new_ca()
        extra = {"allowAutoRegistration": auto_registration}
        if registration_config is not None:
            extra["registrationConfig"] = registration_config
        out = register_ca_certificate(self.iot, ca.cert, ca.key, active=active, **extra)
        ca.id, ca.arn = out["certificateId"], out["certificateArn"]
        return ca

    def issue(self, ca: CA, cn: str) -> Device:
        """A device key and certificate (CN = cn) issued by ca, written to files; not registered."""
        x = x509_helpers()
        key = x.generate_private_key()
        cert = x.issue_certificate(ca.cert, ca.key, cn, key.public_key())
        d = self.dir / "devices" / f"{next(self._seq):04d}-{cn}"
        d.mkdir(parents=True, exist_ok=True)
        pem = x.certificate_pem(cert)
        (d / "certificate.pem").write_text(pem)
        (d / "private.key").write_text(x.private_key_pem(key))
        os.chmod(d / "private.key", 0o600)
        return Device(cn, cert, pem, d / "certificate.pem", d / "private.key", x.certificate_id(cert))

    def put_policy(self, name: str, document: dict) -> str:
        return self.iot.create_policy(policyName=name, policyDocument=json.dumps(document))["policyArn"]

    def make_device(self, ca: CA, name: str, *, status: str | None = "ACTIVE", policies=(),
                    thing: bool = True, cn: str | None = None) -> Device:
        """A device as the collection provisions it: certificate issued by ca and registered with it
        (status None: not registered), thing `name` attached, the named policies attached."""
        dev = self.issue(ca, cn or name)
        if status is None:
            return dev
        out = self.iot.register_certificate(certificatePem=dev.pem, caCertificatePem=ca.pem, status=status)
        dev.arn = out["certificateArn"]
        for policy in policies:
            self.iot.attach_policy(policyName=policy, target=dev.arn)
        if thing:
            self.iot.create_thing(thingName=name)
            self.iot.attach_thing_principal(thingName=name, principal=dev.arn)
        return dev

    def probe(self, device: Device, client_id: str | None = None, protocol: int = MQTTv311,
              timeout: float = 5.0, max_tls: ssl.TLSVersion | None = None) -> "Probe":
        """An MQTT client for device, connected (or refused) already: see Probe."""
        return Probe(self, device, client_id or device.name, protocol, timeout, max_tls).connect()


# ------------------------------------------------------------------ MQTT
# paho 2 reports an MQTT 3.1.1 CONNACK as an MQTT 5 reason code: back to the code on the wire
_V311_CONNACK = {"Success": 0, "Unsupported protocol version": 1, "Client identifier not valid": 2,
                 "Server unavailable": 3, "Bad user name or password": 4, "Not authorized": 5}


class Probe:
    """One paho-mqtt 2 client driven by its own loop with deadlines (never loop_start, never a sleep).

    After connect(): ``connack`` (the code on the wire: 0 accepted; 3.1.1 refusal 5, MQTT 5 0x87),
    or ``tls_error`` (the handshake or the first read failed: refused at TLS; with TLS 1.3 the
    client's handshake completes before the server checks the client certificate, and the server's
    alert may be lost to a connection reset, so only TLS 1.2 reliably shows it), and ``closed``
    (the server closed the connection). subscribe() returns the SUBACK codes, publish() waits for
    the PUBACK or the close, wait_message()/wait_closed() wait on a condition with a bound.
    """

    def __init__(self, core: IoTCore, device: Device, client_id: str, protocol: int, timeout: float,
                 max_tls: ssl.TLSVersion | None = None):
        import paho.mqtt.client as mqtt
        self.mqtt, self.core, self.device = mqtt, core, device
        self.client_id, self.protocol, self.timeout = client_id, protocol, timeout
        self.connack: int | None = None
        self.tls_error: str | None = None
        self.closed = False
        self.disconnect_reason: int | None = None
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(core.root_ca))
        context.load_cert_chain(str(device.cert_path), str(device.key_path))
        if max_tls is not None:
            context.maximum_version = max_tls
        self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_log = self._on_log
        self.log: list[str] = []

    # callbacks (paho 2, CallbackAPIVersion.VERSION2)
    def _on_connect(self, client, userdata, flags, reason, properties):
        self.connack = reason.value if self.protocol == MQTTv5 else _V311_CONNACK.get(reason.getName(), reason.value)

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        self.subacks[mid] = [r.value for r in reasons]

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.pubacks[mid] = reason.value

    def _on_message(self, client, userdata, message):
        self.messages.append((message.topic, bytes(message.payload)))

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self.closed = True
        self.disconnect_reason = getattr(reason, "value", reason)

    def _on_log(self, client, userdata, level, text):
        if level in (self.mqtt.MQTT_LOG_ERR, self.mqtt.MQTT_LOG_WARNING):
            self.log.append(str(text))

    # driving
    @property
    def connected(self) -> bool:
        return self.connack == 0 and not self.closed

    def run_until(self, cond, timeout: float | None = None) -> bool:
        """Run the network loop until cond() holds, the connection is gone or the time is up."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not cond():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return bool(cond())
            try:
                rc = self.client.loop(timeout=min(0.1, remaining))
            except ssl.SSLError as exc:
                self.tls_error = self.tls_error or str(exc)
                self.closed = True
                continue
            except OSError:
                self.closed = True
                continue
            if rc != self.mqtt.MQTT_ERR_SUCCESS:
                self.closed = True
        return True

    def connect(self) -> "Probe":
        try:
            self.client.connect("127.0.0.1", self.core.mqtt_port, keepalive=30)
        except ssl.SSLError as exc:
            self.tls_error, self.closed = str(exc), True
            return self
        self.run_until(lambda: self.connack is not None)
        if self.connack is None and self.closed and self.tls_error is None:
            # TLS 1.3: the client finishes its handshake before the server checks the client
            # certificate; the server's alert comes with the first read
            self.tls_error = "; ".join(self.log) or "connection closed before CONNACK"
        return self

    def subscribe(self, topic: str, qos: int = 1) -> list[int] | None:
        """The SUBACK codes (3.1.1: granted QoS or 0x80; MQTT 5: reason codes), None without SUBACK."""
        rc, mid = self.client.subscribe(topic, qos=qos)
        if rc != self.mqtt.MQTT_ERR_SUCCESS:
            return None
        self.run_until(lambda: mid in self.subacks)
        return self.subacks.get(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish; with QoS 1 wait for the PUBACK (or the close). True when the PUBACK came."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos == 0:
            self.run_until(lambda: info.mid in self.pubacks, timeout=0.2)
            return True
        return self.run_until(lambda: info.mid in self.pubacks)

    def received(self, topic: str | None = None, payload: bytes | None = None) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p in self.messages
                if (topic is None or t == topic) and (payload is None or p == payload)]

    def wait_message(self, topic: str | None = None, payload: bytes | None = None,
                     timeout: float | None = None) -> bool:
        return self.run_until(lambda: bool(self.received(topic, payload)), timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self.run_until(lambda: self.closed, timeout)

    def close(self) -> None:
        """Disconnect (best effort) and close the socket: nothing is left to the garbage collector."""
        with contextlib.suppress(Exception):
            if not self.closed:
                self.client.disconnect()
                self.client.loop(timeout=0.05)
        with contextlib.suppress(Exception):
            sock = self.client.socket()
            if sock is not None:
                sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
