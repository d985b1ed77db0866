#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iotfleet device client: the small MQTT client the iotfleet.aws collection installs on each Pi.

Python 3 standard library + paho-mqtt (1.6.x as in Debian bookworm, or 2.x).  Configuration is a
JSON file (default /etc/iotfleet/client.json):

    {"host": "...-ats.iot.eu-west-1.amazonaws.com", "port": 8883, "thing_name": "pi-1",
     "certificate": "/etc/iotfleet/certificate.pem", "private_key": "/etc/iotfleet/private.key",
     "root_ca": "/etc/iotfleet/root-ca.pem",
     "topics": {"test": "test", "telemetry": "$aws/rules/mydata/{thing_name}"}, "interval": 60}

    "jitp": true (optional, set by the device role in registration jitp) - the device is provisioned
    just in time: AWS IoT refuses its first connect while it registers the certificate, so a refused
    connect (CONNACK refused, connection closed before the CONNACK, TLS handshake refused by the
    broker) is retried with backoff until the deadline. Without it a refusal fails at once.

Subcommands (each prints ONE JSON line per result on stdout):

    verify  --topic test --timeout 10   connect (client id = thing name, mutual TLS), subscribe,
                                        publish a nonce, and receive it back before the deadline
    publish --topic T --message M       publish one message (QoS 1) and wait for the broker's ack
    run     [--interval S] [--count N]  the service: publish telemetry every S seconds

Exit status: 0 success, 1 the broker check failed, 2 local problem (configuration, files, paho-mqtt).
"""

import argparse
import glob
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import time

LIB_DIR = "/opt/iotfleet/lib"
DEFAULT_CONFIG = "/etc/iotfleet/client.json"
DEFAULT_TOPICS = {"test": "test", "telemetry": "$aws/rules/mydata/{thing_name}"}
REQUIRED_KEYS = ("host", "thing_name", "certificate", "private_key", "root_ca")
# jitp: the first retry after 1 s (AWS IoT allows one CONNECT per second and client id), doubling up
# to 8 s; no new attempt with less than RETRY_MIN_ATTEMPT seconds left before the deadline
RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 8.0
RETRY_MIN_ATTEMPT = 1.0
# how long the TLS probe of a connection dropped before the CONNACK waits for the broker's alert
PROBE_TIMEOUT = 1.5

# The likely causes a failed step points at (what an operator checks first).
CAUSES = {
    "config": "the client configuration or its files (certificate, key, root CA) are missing or unreadable",
    "connect": "wrong endpoint host or port, or the network/firewall blocks it",
    "tls-server": "wrong endpoint or root CA: the broker's certificate is not trusted by the configured root CA",
    "tls-client": "certificate not ACTIVE, or not signed by a CA the broker trusts (registered fleet CA)",
    "auth": "client id not the thing name, or the policy does not allow iot:Connect for it "
    "(or the certificate is not ACTIVE / not attached to the thing)",
    "subscribe": "the policy does not allow iot:Subscribe on topicfilter/<topic>",
    "publish": "the policy does not allow iot:Publish on topic/<topic>",
    "timeout": "the policy does not allow iot:Receive on topic/<topic>, or the broker did not route the message",
    "timeout-connect": "wrong endpoint or port (no answer before the deadline)",
    # AWS IoT closes the older of two connections with one client id (no MQTT 3.1.1 packet says why)
    "takeover": "another connection with the same client id (<thing>) took over - two runs verifying this Pi at once?",
    "jitp": "just-in-time provisioning did not let the device in: is the fleet CA registered ACTIVE with "
    "auto-registration on and the template (iotfleet_registration=jitp on the controller), does the "
    "template's policy exist, is the certificate REVOKED or INACTIVE?",
}


class ClientError(Exception):
    """A local problem (exit status 2)."""


def extend_sys_path(lib_dir=LIB_DIR):
    """Wheel mode: make /opt/iotfleet/lib and every wheel in it importable (pure-Python wheels are zips)."""
    added = []
    if os.path.isdir(lib_dir):
        for entry in [lib_dir] + sorted(glob.glob(os.path.join(lib_dir, "*.whl"))):
            if entry not in sys.path:
                sys.path.insert(0, entry)
                added.append(entry)
    return added


def import_paho(lib_dir=LIB_DIR):
    extend_sys_path(lib_dir)
    try:
        import paho.mqtt.client as mqtt  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ClientError("paho-mqtt is not installed (apt: python3-paho-mqtt, or a wheel in %s): %s" % (lib_dir, exc))
    return mqtt


def paho_version():
    package = sys.modules.get("paho.mqtt")
    return getattr(package, "__version__", None)


def load_config(path):
    """Read and validate the JSON configuration; returns a dict with defaults filled in."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ClientError("cannot read configuration %s: %s" % (path, exc))
    return load_config_dict(config, path)


def load_config_dict(config, path="<config>"):
    """Validate a configuration dict and fill in the defaults."""
    if not isinstance(config, dict):
        raise ClientError("configuration %s must be a JSON object" % path)
    missing = [key for key in REQUIRED_KEYS if not config.get(key)]
    if missing:
        raise ClientError("configuration %s lacks %s" % (path, ", ".join(missing)))
    config = dict(config)
    try:
        config["port"] = int(config.get("port", 8883))
        config["interval"] = float(config.get("interval", 60))
    except (TypeError, ValueError) as exc:
        raise ClientError("configuration %s: port and interval must be numbers: %s" % (path, exc))
    topics = dict(DEFAULT_TOPICS)
    topics.update(config.get("topics") or {})
    config["topics"] = topics
    config.setdefault("lib_dir", LIB_DIR)
    if not isinstance(config.get("jitp", False), bool):
        raise ClientError("configuration %s: jitp must be true or false" % path)
    config["jitp"] = config.get("jitp", False)
    return config


def topic_for(config, name):
    """A configured topic with {thing_name} expanded."""
    return config["topics"][name].replace("{thing_name}", config["thing_name"])


def make_tls_context(config):
    """Mutual TLS: trust only the configured root CA, present the device certificate and key."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config["root_ca"])
        context.load_cert_chain(config["certificate"], config["private_key"])
    except (OSError, ssl.SSLError) as exc:
        raise ClientError("cannot load root CA / certificate / private key: %s" % exc)
    if int(config["port"]) == 443:
        # AWS IoT: MQTT over TLS on 443 needs this ALPN protocol name
        context.set_alpn_protocols(["x-amzn-mqtt-ca"])
    return context


def make_client(mqtt, client_id):
    """A paho client for MQTT 3.1.1 with a clean session, for paho 1.6 and 2.x alike."""
    kwargs = {"client_id": client_id, "clean_session": True, "protocol": mqtt.MQTTv311}
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    return mqtt.Client(**kwargs)


def code_value(code):
    """paho 2 passes ReasonCode objects, paho 1.6 ints: return the int."""
    return getattr(code, "value", code)


def classify_tls_error(text):
    """Which side refused the TLS handshake, from an error text."""
    low = (text or "").lower()
    if "certificate verify failed" in low or "hostname" in low or "ip address mismatch" in low:
        return "tls-server"
    for marker in ("alert", "certificate required", "unknown ca", "bad certificate", "revoked", "expired"):
        if marker in low:
            return "tls-client"
    return "tls-client"


def diagnose(state, error_text, cause_topic):
    """Map where the session stopped (and the last error text) to (step, cause)."""
    low = (error_text or "").lower()
    if state == "tcp":
        return "connect", CAUSES["connect"]
    if state == "tls" or any(word in low for word in ("ssl", "tls", "alert", "certificate")):
        kind = classify_tls_error(error_text)
        return "tls", CAUSES[kind]
    if state in ("connecting", "refused"):
        return "auth", CAUSES["auth"]
    if state == "subscribing":
        return "subscribe", CAUSES["subscribe"].replace("<topic>", cause_topic)
    if state == "publishing":
        return "publish", CAUSES["publish"].replace("<topic>", cause_topic)
    return "timeout", CAUSES["timeout"].replace("<topic>", cause_topic)


def dropped_after_connack(session, outcome):
    """Whether the broker accepted the connection (CONNACK 0) and then closed it without a word: with MQTT 3.1.1
    that is what AWS IoT does to the older connection when another one with the same client id arrives, and to
    a publish the policy refuses. A refused subscription is a SUBACK 0x80 (the session stays), not a drop."""
    return outcome == "lost" and session.connack == 0 and not session.suback_refused


def takeover_cause(config, state, topic):
    """The (step, cause) of a connection the broker dropped after accepting it, by where the session was."""
    takeover = CAUSES["takeover"].replace("<thing>", str(config.get("thing_name")))
    if state == "publishing":
        # AWS IoT disconnects a client whose PUBLISH the policy refuses, too: both are possible here
        return "publish", "%s, or %s (the broker dropped the connection after the PUBLISH)" % (
            CAUSES["publish"].replace("<topic>", topic), takeover)
    return ("subscribe" if state == "subscribing" else "timeout"), takeover


def result(config, ok, step, cause="", detail="", started=None, **extra):
    out = {
        "thing_name": config.get("thing_name") if config else None,
        "ok": bool(ok),
        "step": step,
        "cause": cause,
        "detail": detail,
        "elapsed": round(time.monotonic() - started, 3) if started is not None else 0.0,
    }
    if config:
        out["host"] = config.get("host")
        out["port"] = config.get("port")
    out.update(extra)
    return out


class Session:
    """One MQTT session driven by our own loop with a deadline (never loop_start: paho 2 would
    silently reconnect forever when the broker refuses the certificate)."""

    def __init__(self, mqtt, config, deadline):
        self.mqtt = mqtt
        self.config = config
        self.deadline = deadline
        self.state = "tcp"
        self.error_text = ""
        self.connack = None
        self.subacked = None
        self.suback_refused = False
        self.published = set()
        self.messages = []
        self.client = make_client(mqtt, config["thing_name"])
        self.client.tls_set_context(make_tls_context(config))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_log = self._on_log
        self.client.reconnect_delay_set(1, 1)

    # callbacks: paho 1.6 and 2.x differ after the 4th positional argument; only use the common part
    def _on_connect(self, client, userdata, flags, rc, *rest):
        self.connack = code_value(rc)
        self.state = "connected" if self.connack == 0 else "refused"

    def _on_subscribe(self, client, userdata, mid, granted, *rest):
        codes = [code_value(code) for code in (granted if isinstance(granted, (list, tuple)) else [granted])]
        self.subacked = all(code is not None and code < 0x80 for code in codes)

    def _on_publish(self, client, userdata, mid, *rest):
        self.published.add(mid)

    def _on_message(self, client, userdata, message):
        self.messages.append((message.topic, bytes(message.payload)))

    def _on_log(self, client, userdata, level, buf):
        if level in (getattr(self.mqtt, "MQTT_LOG_ERR", 8), getattr(self.mqtt, "MQTT_LOG_WARNING", 4)):
            self.error_text = str(buf)

    def remaining(self):
        return self.deadline - time.monotonic()

    def connect(self):
        """TCP + TLS handshake (synchronous in paho), then send CONNECT."""
        remaining = self.remaining()
        if isinstance(getattr(type(self.client), "connect_timeout", None), property):
            self.client.connect_timeout = max(0.5, remaining)  # paho 2
        elif hasattr(self.client, "_connect_timeout"):
            self.client._connect_timeout = max(0.5, remaining)  # paho 1.6: no public setter
        # paho 1.6 bounds the TLS handshake by the keepalive: keep it within the deadline
        keepalive = int(max(5, min(60, remaining)))
        try:
            self.state = "tcp"
            self._tcp_then_connect(keepalive)
        except ssl.SSLError as exc:
            self.state = "tls"
            self.error_text = str(exc)
            return False
        except (socket.timeout, TimeoutError) as exc:
            self.error_text = "no answer from %s:%s: %s" % (self.config["host"], self.config["port"], exc)
            return False
        except OSError as exc:
            self.error_text = str(exc)
            return False
        self.state = "connecting"
        return True

    def _tcp_then_connect(self, keepalive):
        # paho resolves, opens TCP and does the TLS handshake in connect(): a TCP-level failure
        # (refused, unreachable, DNS) raises a plain OSError, a handshake failure an SSLError.
        self.client.connect(self.config["host"], self.config["port"], keepalive=keepalive)

    def pump(self, until):
        """Run the network loop until until() is true, the deadline passes or the connection drops."""
        while not until():
            remaining = self.remaining()
            if remaining <= 0:
                return "deadline"
            try:
                rc = self.client.loop(timeout=min(0.2, remaining))
            except ssl.SSLError as exc:
                self.error_text = str(exc)
                return "lost"
            except OSError as exc:
                self.error_text = str(exc)
                return "lost"
            if code_value(rc) not in (0,):
                if not self.error_text:
                    self.error_text = "connection lost (paho rc %s)" % code_value(rc)
                return "lost"
            if self.state == "refused":
                return "refused"
        return "ok"

    def close(self):
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.05)
        except Exception:  # pylint: disable=broad-except
            pass


def refused_by_broker(session):
    """Whether a failed connect is the broker refusing this device (what AWS IoT does to the first
    connect of a device it provisions just in time): CONNACK refused, the connection closed before
    any CONNACK, or the TLS handshake refused on the broker's side. Never an endpoint that does not
    answer or a broker certificate the device does not trust: those are retried in vain."""
    if session.state == "refused":
        return True
    if session.state == "connecting":
        return session.connack is None and classify_tls_error(session.error_text) != "tls-server"
    if session.state == "tls":
        return classify_tls_error(session.error_text) == "tls-client"
    return False


def probe_certificate_refusal(config, timeout=PROBE_TIMEOUT):
    """After a connection dropped before any CONNACK with no TLS error seen: the broker's TLS-level
    refusal of this device's certificate, as text, or None.

    With TLS 1.3 the client's side of the handshake ends before the broker has checked the client
    certificate. A broker that refuses it (unknown CA, not ACTIVE) sends an alert after that, and when
    the client's CONNECT is already on its way the broker's close turns into a connection reset that
    can lose the alert: the drop then looks like an MQTT-level refusal (step auth). This makes a fresh
    handshake and reads without sending anything: a refusing broker sends its alert, one that
    accepted the certificate waits for a CONNECT (the read times out: None)."""
    host, port = config["host"], int(config["port"])
    try:
        context = make_tls_context(config)
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.settimeout(timeout)
                tls.recv(1)
    except ssl.SSLError as exc:
        return str(exc) if classify_tls_error(str(exc)) == "tls-client" else None
    except (OSError, ClientError):   # timeout (accepted), reset, unreachable: nothing more is known
        return None
    return None   # the broker sent data or closed without an alert: no TLS-level refusal seen


def open_session(mqtt, config, deadline, sleep=None):
    """Connect (TCP, TLS, CONNECT) and wait for the CONNACK.

    Returns ``(session, outcome, attempts)``: outcome ``ok`` (connected), else how the last attempt
    ended (``lost``, ``refused``, ``deadline``). With ``jitp`` in the configuration a connect the
    broker refuses is retried after 1, 2, 4, 8, 8, ... seconds while the deadline leaves time for
    another attempt; without it the first refusal is final.
    """
    sleep = sleep or time.sleep
    delay = RETRY_FIRST_DELAY
    attempts = 0
    while True:
        attempts += 1
        session = Session(mqtt, config, deadline)
        if session.connect():
            outcome = session.pump(lambda: session.state != "connecting")
        else:
            outcome = "lost"
        if outcome in ("ok", "deadline") or not config.get("jitp") or not refused_by_broker(session):
            return session, outcome, attempts
        remaining = session.remaining()
        if remaining <= RETRY_MIN_ATTEMPT:
            return session, outcome, attempts
        session.close()
        sleep(min(delay, remaining - RETRY_MIN_ATTEMPT))
        delay = min(delay * 2, RETRY_MAX_DELAY)


def connect_failure(config, session, outcome, attempts, topic, started):
    """The result of a connect that did not succeed (after its retries in jitp mode)."""
    if outcome == "deadline" and session.state == "tcp":
        return result(config, False, "connect", CAUSES["timeout-connect"], session.error_text, started,
                      connect_attempts=attempts)
    step, cause = diagnose(session.state, session.error_text, topic)
    if outcome == "deadline" and step != "tls" and session.state == "connecting":
        step, cause = "auth", CAUSES["auth"] + " (no CONNACK before the deadline)"
    detail = session.error_text
    if step == "auth" and session.state == "connecting" and session.connack is None:
        refusal = probe_certificate_refusal(config)
        if refusal:
            step, cause = "tls", CAUSES["tls-client"]
            detail = "the broker refused the certificate after the TLS handshake (%s); first attempt: %s" % (
                refusal, detail or "connection closed before the CONNACK")
    if session.connack not in (None, 0):
        detail = "CONNACK refused (code %s) %s" % (session.connack, detail)
    if config.get("jitp") and step in ("auth", "tls") and refused_by_broker(session):
        cause = "%s; %s" % (cause, CAUSES["jitp"])
        detail = "refused %d time(s) until the deadline: %s" % (attempts, detail.strip())
    return result(config, False, step, cause, detail.strip(), started, connect_attempts=attempts)


def connected_session(config, topic, timeout, mqtt=None):
    """Start the clock and connect. Returns ``(session, attempts, started, failure)``: ``failure`` is
    the result dict when the config or paho is unusable or the connect did not succeed (the session,
    if any, closed), else None and the caller closes the session."""
    started = time.monotonic()
    try:
        mqtt = mqtt or import_paho(config.get("lib_dir", LIB_DIR))
        session, outcome, attempts = open_session(mqtt, config, started + float(timeout))
    except ClientError as exc:
        return None, 0, started, result(config, False, "config", CAUSES["config"], str(exc), started)
    if outcome != "ok":
        try:
            return session, attempts, started, connect_failure(config, session, outcome, attempts, topic, started)
        finally:
            session.close()
    return session, attempts, started, None


def verify(config, topic, timeout, mqtt=None):
    """Connect, subscribe to topic, publish a nonce on it and receive it back. Returns a result dict."""
    session, attempts, started, failure = connected_session(config, topic, timeout, mqtt)
    if failure is not None:
        return failure
    nonce = secrets.token_hex(16)
    payload = json.dumps({"nonce": nonce, "thing_name": config["thing_name"]}).encode()

    def fail(outcome):
        if dropped_after_connack(session, outcome):
            step, cause = takeover_cause(config, session.state, topic)
            detail = "the connection was accepted (CONNACK 0), then closed by the broker while %s: %s" % (
                session.state, session.error_text.strip() or "no error text")
            return result(config, False, step, cause, detail, started, connect_attempts=attempts)
        step, cause = diagnose(session.state, session.error_text, topic)
        if outcome == "deadline" and step not in ("tls",):
            if session.state in ("subscribing",):
                step, cause = "subscribe", CAUSES["subscribe"].replace("<topic>", topic) + " (no SUBACK)"
            elif session.state == "publishing":
                step, cause = "publish", CAUSES["publish"].replace("<topic>", topic) + " (no PUBACK)"
            else:
                step, cause = "timeout", CAUSES["timeout"].replace("<topic>", topic)
        return result(config, False, step, cause, session.error_text.strip(), started, connect_attempts=attempts)

    try:
        session.state = "subscribing"
        rc, _mid = session.client.subscribe(topic, qos=1)
        if code_value(rc) != 0:
            session.error_text = "subscribe not sent (paho rc %s)" % code_value(rc)
            return fail("lost")
        outcome = session.pump(lambda: session.subacked is not None)
        if outcome != "ok":
            return fail(outcome)
        if not session.subacked:
            session.suback_refused = True
            session.error_text = "SUBACK refused the subscription to %s" % topic
            return fail("lost")
        session.state = "publishing"
        info = session.client.publish(topic, payload, qos=1)
        outcome = session.pump(lambda: info.mid in session.published)
        if outcome != "ok":
            return fail(outcome)
        session.state = "receiving"
        outcome = session.pump(lambda: any(nonce.encode() in body for _t, body in session.messages))
        if outcome != "ok":
            return fail(outcome)
        return result(config, True, "done", "", "nonce received back on %s" % topic, started, paho=paho_version(),
                      connect_attempts=attempts)
    finally:
        session.close()


def publish(config, topic, message, timeout=10.0, mqtt=None):
    """Publish one message with QoS 1 and wait for the PUBACK."""
    session, attempts, started, failure = connected_session(config, topic, timeout, mqtt)
    if failure is not None:
        return failure
    try:
        session.state = "publishing"
        info = session.client.publish(topic, message.encode(), qos=1)
        outcome = session.pump(lambda: info.mid in session.published)
        if outcome != "ok":
            step, cause = diagnose(session.state, session.error_text, topic)
            if dropped_after_connack(session, outcome):
                step, cause = takeover_cause(config, session.state, topic)
            if outcome == "deadline":
                step, cause = "publish", CAUSES["publish"].replace("<topic>", topic) + " (no PUBACK)"
            return result(config, False, step, cause, session.error_text, started, connect_attempts=attempts)
        return result(config, True, "done", "", "published on %s" % topic, started, connect_attempts=attempts)
    finally:
        session.close()


def telemetry(config, seq):
    """One telemetry message: small, and only what the Pi knows about itself."""
    body = {"thing_name": config["thing_name"], "seq": seq, "ts": int(time.time())}
    try:
        with open("/proc/uptime", "r", encoding="ascii") as handle:
            body["uptime"] = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        body["load1"] = os.getloadavg()[0]
    except (OSError, AttributeError):
        pass
    return json.dumps(body, sort_keys=True)


def run(config, interval=None, count=None, mqtt=None, out=sys.stdout):
    """The service: publish telemetry every interval seconds; reconnect with backoff on failure."""
    interval = float(interval if interval is not None else config["interval"])
    topic = topic_for(config, "telemetry")
    stop = {"now": False}

    def handle_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    mqtt = mqtt or import_paho(config.get("lib_dir", LIB_DIR))
    seq, backoff, failures = 0, 1.0, 0
    while not stop["now"] and (count is None or seq < count):
        res = publish(config, topic, telemetry(config, seq), timeout=max(5.0, min(30.0, interval)), mqtt=mqtt)
        res["seq"] = seq
        out.write(json.dumps(res, sort_keys=True) + "\n")
        out.flush()
        if res["ok"]:
            seq += 1
            backoff, failures = 1.0, 0
            wait = interval
        else:
            failures += 1
            wait = backoff
            backoff = min(backoff * 2, 300.0)
        if count is not None and seq >= count:
            break
        end = time.monotonic() + wait
        while not stop["now"] and time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    return 0 if failures == 0 else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="iotfleet-device-client", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--config", default=os.environ.get("IOTFLEET_CLIENT_CONFIG", DEFAULT_CONFIG))
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    p_verify = sub.add_parser("verify", help="round trip a nonce through the broker")
    p_verify.add_argument("--topic", default=None)
    p_verify.add_argument("--timeout", type=float, default=10.0)
    p_pub = sub.add_parser("publish", help="publish one message")
    p_pub.add_argument("--topic", required=True)
    p_pub.add_argument("--message", required=True)
    p_pub.add_argument("--timeout", type=float, default=10.0)
    p_run = sub.add_parser("run", help="publish telemetry periodically (the service)")
    p_run.add_argument("--interval", type=float, default=None)
    p_run.add_argument("--count", type=int, default=None, help="stop after this many successful publishes")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ClientError as exc:
        print(json.dumps(result(None, False, "config", CAUSES["config"], str(exc)), sort_keys=True))
        return 2
    if args.command == "verify":
        res = verify(config, args.topic or topic_for(config, "test"), args.timeout)
    elif args.command == "publish":
        res = publish(config, args.topic, args.message, timeout=args.timeout)
    else:
        try:
            return run(config, interval=args.interval, count=args.count)
        except ClientError as exc:
            print(json.dumps(result(config, False, "config", CAUSES["config"], str(exc)), sort_keys=True))
            return 2
    print(json.dumps(res, sort_keys=True))
    if res["ok"]:
        return 0
    return 2 if res["step"] == "config" else 1


if __name__ == "__main__":
    sys.exit(main())
