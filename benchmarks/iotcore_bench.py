#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data-plane benchmark of the lab's AWS IoT Core stand-in (issue 8, part 5), in ONE run, on loopback.

Starts the stand-in (lab/iotcore via tests/support/iotcore.py: moto + AWS's checks, Mosquitto 2 whose
plugin asks the registry for every CONNECT, PUBLISH, SUBSCRIBE and Receive), registers N device
identities through its control plane (certificate ACTIVE + thing + the fleet policy of
roles/registry/defaults/main.yml), then, as N simulated devices with mTLS (paho-mqtt, client id =
thing name):
  - connects them all (K threads; mTLS handshake + CONNECT authorized by the registry) and holds them;
  - publishes 100 messages/s round-robin over the devices on `test`, received by one subscriber
    (its own identity, a separate process) and measures publish -> receive latency;
  - reads the broker's CPU and memory (mosquitto and the stand-in's Python process) from /proc;
then prints the figures beside AWS IoT Core's published quotas and PASS/FAIL per target.

    .venv/bin/python benchmarks/iotcore_bench.py            # 1,000 devices (~2-3 min)
    .venv/bin/python benchmarks/iotcore_bench.py --quick    # 100 devices, smoke run (< 1 min)

Traffic goes to 127.0.0.1 only; every wait is bounded; the only processes stopped are the ones this
script started (the stand-in through IoTCore.stop(), the subscriber by its PID).
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import paho.mqtt.client as mqtt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

HOST = "127.0.0.1"
TOPIC = "test"
TOPIC_RULE = "mydata"
POLICY_NAME = "iotfleet-device"
POLICY_SOURCE = os.path.join(ROOT, "roles", "registry", "defaults", "main.yml")
MONITOR = "bench-monitor"

# Targets (issue 8, part 5)
TARGET_CONNECTIONS = 1000
TARGET_CONNECT_RATE = 100.0      # connects/s
TARGET_P99_MS = 100.0            # publish -> receive at TARGET_MSG_RATE
TARGET_MSG_RATE = 100.0          # messages/s

# AWS IoT Core's published quotas, as /work/shared/LAB-FACTS.md records them (check Service Quotas).
QUOTAS = [
    ("connect requests per second, per account", "a few hundred (300 in an older table)", "connect_rate"),
    ("connect requests per second, per client id", "1", "per_client_connect"),
    ("publish requests per second, per connection", "100", "per_connection_publish"),
    ("subscriptions per connection / per SUBSCRIBE", "50 / 8", "subscriptions"),
    ("message payload", "128 KB", "payload"),
    ("slashes in a topic", "7", "slashes"),
    ("client id", "128 bytes", "client_id"),
]


# ------------------------------------------------------------------------------------- /proc readings
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_usage(pid):
    """CPU seconds (user + system, all threads), RSS and peak RSS (kB), threads and open fds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    kb = lambda key: int(status.get(key, "0 kB").split()[0])  # noqa: E731
    return dict(cpu=(int(fields[11]) + int(fields[12])) / CLK_TCK, rss_kb=kb("VmRSS"), hwm_kb=kb("VmHWM"),
                threads=int(status.get("Threads", "0")), fds=fds, t=time.monotonic())


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def established_on(port):
    """Established TCP connections whose local port is `port` (the broker's side), from /proc/net/tcp."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except OSError:
            pass
    return count


class Sampler:
    """Readings of the broker's two processes and this one at phase boundaries."""

    def __init__(self, pids):
        self.pids = pids  # name -> pid
        self.marks = {}

    def mark(self, name):
        m = {k: proc_usage(pid) for k, pid in self.pids.items()}
        m["bench"] = dict(cpu=self_cpu(), rss_kb=proc_usage(os.getpid())["rss_kb"])
        m["t"] = time.monotonic()
        self.marks[name] = m
        return m

    def delta(self, a, b, who):
        x, y = self.marks[a].get(who), self.marks[b].get(who)
        return (y["cpu"] - x["cpu"]) if x and y else float("nan")

    def wall(self, a, b):
        return self.marks[b]["t"] - self.marks[a]["t"]


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


# -------------------------------------------------------------------------------------- identities
def fleet_policy_document():
    """registry_policy_document from roles/registry/defaults/main.yml, with the topic rule name `mydata`."""
    import yaml

    with open(POLICY_SOURCE) as f:
        doc = yaml.safe_load(f)["registry_policy_document"]
    text = json.dumps(doc).replace("{{ registry_topic_rule_name }}", TOPIC_RULE)
    if "{{" in text:
        raise RuntimeError(f"unexpected template left in registry_policy_document ({POLICY_SOURCE}): {text}")
    return text


class Identity:
    __slots__ = ("name", "cert_path", "key_path", "cert_pem", "arn")

    def __init__(self, name, cert_path, key_path, cert_pem):
        self.name, self.cert_path, self.key_path, self.cert_pem = name, cert_path, key_path, cert_pem
        self.arn = None


def make_identities(x509mod, ca, ca_key, names, pki):
    """EC P-256 key + certificate (CN = thing name) per name, written to pki/ (0600 keys)."""
    os.makedirs(pki, mode=0o700, exist_ok=True)
    out = []
    for name in names:
        key = x509mod.generate_private_key("ec")
        cert = x509mod.issue_certificate(ca, ca_key, name, key.public_key())
        cert_path, key_path = os.path.join(pki, name + ".pem"), os.path.join(pki, name + ".key")
        pem = x509mod.certificate_pem(cert)
        with open(cert_path, "w") as f:
            f.write(pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(x509mod.private_key_pem(key))
        out.append(Identity(name, cert_path, key_path, pem))
    return out


def register_identities(core, ca_pem, identities, threads, timeout):
    """RegisterCertificate (ACTIVE), CreateThing, AttachPolicy, AttachThingPrincipal for each identity,
    through the stand-in's control plane in `threads` threads. Returns the number of API calls."""
    local = threading.local()
    calls = [0]
    lock = threading.Lock()

    def client():
        if not hasattr(local, "iot"):
            local.iot = core.client(retries=3)
        return local.iot

    def one(ident):
        iot = client()
        try:
            arn = iot.register_certificate(certificatePem=ident.cert_pem, caCertificatePem=ca_pem,
                                           setAsActive=True)["certificateArn"]
        except iot.exceptions.ResourceAlreadyExistsException:  # a retried call that had succeeded
            der = serialization.Encoding.DER
            from cryptography import x509 as cx509
            cid = hashlib.sha256(cx509.load_pem_x509_certificate(ident.cert_pem.encode()).public_bytes(der)).hexdigest()
            arn = iot.describe_certificate(certificateId=cid)["certificateDescription"]["certificateArn"]
        iot.create_thing(thingName=ident.name, attributePayload={"attributes": {"site": "bench"}})
        iot.attach_policy(policyName=POLICY_NAME, target=arn)
        iot.attach_thing_principal(thingName=ident.name, principal=arn)
        ident.arn = arn
        with lock:
            calls[0] += 4

    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, i) for i in identities]
        for fut in futures:
            fut.result(timeout=max(0.1, deadline - time.monotonic()))
    return calls[0]


def tls_context(root_ca, ident):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(root_ca))
    ctx.load_cert_chain(ident.cert_path, ident.key_path)
    return ctx


def set_nodelay(client):
    """TCP_NODELAY on the device's socket, so that the client's own Nagle delay is not measured."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def read_all(client):
    """loop_read until the socket and OpenSSL's buffer hold no complete packet (a TLS record may carry
    several MQTT packets: the socket then no longer polls readable although data is pending)."""
    rc = client.loop_read()
    sock = client.socket()
    while rc == mqtt.MQTT_ERR_SUCCESS and sock is not None and hasattr(sock, "pending") and sock.pending():
        rc = client.loop_read()
        sock = client.socket()
    return rc


# ------------------------------------------------------------------------------------------ devices
class Device:
    __slots__ = ("ident", "ctx", "client", "rc", "connected", "t0", "t1", "disconnects", "error", "sel", "acks",
                 "writing")

    def __init__(self, ident, ctx):
        self.ident, self.ctx = ident, ctx
        self.client = None
        self.rc = None
        self.connected = False
        self.t0 = self.t1 = None
        self.disconnects = 0
        self.error = None
        self.sel = None
        self.acks = 0
        self.writing = False


def _on_connect(client, dev, flags, reason_code, properties=None):
    dev.t1 = time.monotonic()
    dev.rc = reason_code
    dev.connected = not reason_code.is_failure


def _on_disconnect(client, dev, flags, reason_code, properties=None):
    if dev.connected:
        dev.disconnects += 1
    dev.connected = False


def _on_publish(client, dev, mid, reason_code, properties=None):
    dev.acks += 1


def _on_socket_close(client, dev, sock):
    if dev.sel is not None:
        try:
            dev.sel.unregister(sock)
        except (KeyError, ValueError):
            pass


def new_client(dev, keepalive_unused=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev.ident.name, protocol=mqtt.MQTTv311,
                    userdata=dev)
    c.tls_set_context(dev.ctx)
    c.on_connect, c.on_disconnect, c.on_publish, c.on_socket_close = (_on_connect, _on_disconnect, _on_publish,
                                                                      _on_socket_close)
    c.connect_timeout = 10.0
    return c


def connect_slice(devices, port, keepalive, timeout, deadline=None):
    """Connect devices one after the other (this thread): TCP + mTLS handshake + CONNECT, then wait for the
    CONNACK (the registry's decision) before the next one. Bounded by `timeout` per device and by `deadline`
    (time.monotonic()) for the whole slice: devices not started by then are left unconnected."""
    sel = selectors.DefaultSelector()
    for dev in devices:
        if deadline is not None and time.monotonic() >= deadline:
            dev.error = "connect phase deadline passed"
            continue
        dev.client = new_client(dev)
        dev.sel = sel
        dev.t0 = time.monotonic()
        try:
            dev.client.connect(HOST, port, keepalive)
        except (OSError, ssl.SSLError, ValueError) as e:
            dev.error = f"{type(e).__name__}: {e}"
            continue
        set_nodelay(dev.client)
        sock = dev.client.socket()
        sel.register(sock, selectors.EVENT_READ, dev)
        deadline = dev.t0 + timeout
        while dev.rc is None and dev.client.socket() is not None and time.monotonic() < deadline:
            if sel.select(max(0.0, deadline - time.monotonic())):
                read_all(dev.client)
        if dev.client.socket() is not None:
            try:
                sel.unregister(dev.client.socket())
            except (KeyError, ValueError):
                pass
        if dev.rc is None and dev.error is None:
            dev.error = "no CONNACK within %.0f s" % timeout if dev.client.socket() is not None else "connection closed"
        dev.sel = None
    sel.close()


def sequential_sample(root_ca, idents, port, keepalive, tls12=False):
    """Connect -> CONNACK -> disconnect, one device at a time: the latency of one connect on its own.
    Returns sorted latencies (s) and the negotiated TLS version."""
    lat, version = [], None
    for ident in idents:
        ctx = tls_context(root_ca, ident)
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        dev = Device(ident, ctx)
        connect_slice([dev], port, keepalive, 15.0)
        if dev.connected:
            lat.append(dev.t1 - dev.t0)
            version = dev.client.socket().version()
            dev.client.disconnect()
            try:
                dev.client.loop_write()
            except (OSError, ValueError):
                pass
        if dev.client is not None and dev.client.socket() is not None:
            dev.client.socket().close()
    return sorted(lat), version


def broker_option(core, name):
    """A global option of the stand-in's mosquitto.conf (None when absent)."""
    try:
        with open(os.path.join(str(core.dir), "mosquitto.conf")) as f:
            for line in f:
                if line.split(None, 1)[:1] == [name]:
                    return line.split(None, 1)[1].strip()
    except OSError:
        pass
    return None


class Fleet:
    """All connected devices on one selector, driven by this (the main) thread."""

    def __init__(self, devices):
        self.sel = selectors.DefaultSelector()
        self.devices = [d for d in devices if d.connected]
        for dev in self.devices:
            dev.sel = self.sel
            self.sel.register(dev.client.socket(), selectors.EVENT_READ, dev)
        self.last_misc = 0.0

    def want_write(self, dev):
        if dev.client.want_write() and not dev.writing and dev.client.socket() is not None:
            self.sel.modify(dev.client.socket(), selectors.EVENT_READ | selectors.EVENT_WRITE, dev)
            dev.writing = True

    def poll(self, timeout):
        for key, events in self.sel.select(max(0.0, timeout)):
            dev = key.data
            if events & selectors.EVENT_READ:
                read_all(dev.client)
            if events & selectors.EVENT_WRITE and dev.client.socket() is not None:
                dev.client.loop_write()
                if not dev.client.want_write() and dev.client.socket() is not None:
                    self.sel.modify(dev.client.socket(), selectors.EVENT_READ, dev)
                    dev.writing = False
        now = time.monotonic()
        if now - self.last_misc >= 1.0:  # keepalive (PINGREQ) bookkeeping, once a second
            self.last_misc = now
            for dev in self.devices:
                if dev.client.socket() is not None:
                    dev.client.loop_misc()
                    self.want_write(dev)

    def run_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(min(0.5, end - time.monotonic()))

    def held(self):
        return sum(1 for d in self.devices if d.connected and d.client.socket() is not None)

    def disconnect_all(self, timeout):
        for dev in self.devices:
            if dev.client.socket() is not None:
                dev.client.disconnect()
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(d.client.socket() is not None for d in self.devices):
            self.poll(0.05)
        self.sel.close()


# --------------------------------------------------------------------------------------- subscriber
def subscriber_main(cfg_json):
    """Child process: one MQTT client (its own identity) subscribed to TOPIC with QoS 1. Prints `ready` once
    the SUBACK grants it; on `stop` (stdin) or at the deadline prints one JSON line with the latencies."""
    cfg = json.loads(cfg_json)
    latencies, seqs, state = [], set(), {"dups": 0}
    ident = Identity(cfg["name"], cfg["cert"], cfg["key"], None)

    def on_connect(client, u, flags, rc, props=None):
        state["rc"] = str(rc)
        if not rc.is_failure:
            client.subscribe(TOPIC, qos=1)

    def on_subscribe(client, u, mid, rcs, props=None):
        state["granted"] = [str(r) for r in rcs]
        ok = all(not r.is_failure for r in rcs)
        print("ready" if ok else "refused " + json.dumps(state), flush=True)

    def on_message(client, u, msg):
        now = time.monotonic_ns()
        head = msg.payload.split(b" ", 2)
        seq, sent = int(head[0]), int(head[1])
        if seq in seqs:
            state["dups"] += 1
            return
        seqs.add(seq)
        latencies.append(now - sent)

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ident.name, protocol=mqtt.MQTTv311)
    c.tls_set_context(tls_context(cfg["root_ca"], ident))
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(HOST, cfg["port"], cfg["keepalive"])
    set_nodelay(c)
    sel = selectors.DefaultSelector()
    sel.register(c.socket(), selectors.EVENT_READ, "mqtt")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    deadline = time.monotonic() + cfg["deadline"]
    last_misc = 0.0
    stop = False
    while not stop and time.monotonic() < deadline and c.socket() is not None:
        for key, _ in sel.select(0.5):
            if key.data == "mqtt":
                read_all(c)
            else:
                data = os.read(sys.stdin.fileno(), 100)
                if not data or b"stop" in data:
                    stop = True
        if c.socket() is not None and c.want_write():
            c.loop_write()
        if time.monotonic() - last_misc > 1.0 and c.socket() is not None:
            last_misc = time.monotonic()
            c.loop_misc()
    print(json.dumps(dict(latencies_ns=latencies, seqs=len(seqs), dups=state["dups"], state=state,
                          connected=c.socket() is not None, cpu=self_cpu())), flush=True)
    if c.socket() is not None:
        c.disconnect()
    return 0


class Subscriber:
    """The subscriber child process (started and stopped by this script, by its PID)."""

    def __init__(self, cfg):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--subscriber-child", json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def line(self, timeout):
        if self.sel.select(timeout):
            return self.proc.stdout.readline().strip()
        return None

    def wait_ready(self, timeout):
        line = self.line(timeout)
        if line != "ready":
            raise RuntimeError(f"the subscriber is not ready: {line!r}")

    def finish(self, timeout):
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        line = self.line(timeout)
        self.stop()
        return json.loads(line) if line else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------------------------ registry probe
def authz_socket(core):
    with open(os.path.join(str(core.dir), "mosquitto.conf")) as f:
        for line in f:
            if line.startswith("plugin_opt_socket "):
                return line.split(None, 1)[1].strip()
    return None


def probe_registry(core, ident, count):
    """Service time of the registry's decisions, asked directly on the plugin's Unix socket with the plugin's
    own protocol (C = connect decision, P = publish check, X = forget), for a pseudo-connection: what every
    CONNECT and every PUBLISH/Receive costs the broker's single thread, without TLS or MQTT."""
    path = authz_socket(core)
    if not path or not os.path.exists(path):
        return None
    from cryptography import x509 as cx509
    der = cx509.load_pem_x509_certificate(ident.cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    hexid = ident.name.encode().hex()
    conn = "bench-probe"
    out = {"C": [], "P": []}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        f = s.makefile("rb")

        def ask(line):
            t0 = time.perf_counter()
            s.sendall(line.encode() + b"\n")
            reply = f.readline().decode().strip()
            return time.perf_counter() - t0, reply

        for _ in range(count):
            dt, reply = ask(f"C {conn} 4 {hexid} {der.hex()}")
            if not reply.startswith("A"):
                return {"error": f"connect decision refused: {reply}"}
            out["C"].append(dt)
            dt, reply = ask(f"P {conn} 2 {hexid} {TOPIC.encode().hex()}")
            if reply != "A":
                return {"error": f"publish check refused: {reply}"}
            out["P"].append(dt)
        ask(f"X {conn}")
    return {k: sorted(v) for k, v in out.items()}


# -------------------------------------------------------------------------------------------- run
def run(args, work):
    from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
    from tests.support.iotcore import IoTCore

    out = dict(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpus=os.cpu_count(),
               load_start=os.getloadavg(), args={k: v for k, v in vars(args).items() if k != "subscriber_child"})
    n = args.devices
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)) if hard != resource.RLIM_INFINITY
                                                    else need, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        raise RuntimeError(f"RLIMIT_NOFILE is {soft} (hard {hard}): {n} devices need about {need}")
    out["nofile"] = soft

    t_all = time.monotonic()
    core = IoTCore(os.path.join(work, "iotcore"), prefix="bench").start()
    subscriber = None
    try:
        pids = {"mosquitto": core.ready["mosquitto_pid"], "registry": core.ready["pid"]}
        out["pids"] = pids
        sampler = Sampler(pids)
        print(f"# stand-in up: registry pid {pids['registry']}, mosquitto pid {pids['mosquitto']}, MQTT/TLS "
              f"{HOST}:{core.mqtt_port}; load {out['load_start'][0]:.1f} on {out['cpus']} CPUs", flush=True)
        sampler.mark("start")

        # ---- setup: CA, policy, identities (not part of the data-plane figures)
        iot = core.client(retries=3)
        t0 = time.monotonic()
        ca, ca_key = _x509.create_ca("iotfleet bench fleet CA")
        ca_pem = _x509.certificate_pem(ca)
        code = iot.get_registration_code()["registrationCode"]
        iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True,
                                    verificationCertificate=_x509.certificate_pem(
                                        _x509.verification_certificate(ca, ca_key, code)))
        iot.create_policy(policyName=POLICY_NAME, policyDocument=fleet_policy_document())
        seq_names = [f"bench-seq-{i:03d}" for i in range(2 * args.sequential)]
        names = [f"bench-{i:05d}" for i in range(n)] + seq_names + [MONITOR]
        identities = make_identities(_x509, ca, ca_key, names, os.path.join(work, "pki"))
        out["keygen_s"] = time.monotonic() - t0
        out["identities"] = len(identities)
        print(f"# {len(identities)} keys + certificates: {out['keygen_s']:.1f} s", flush=True)
        t0 = time.monotonic()
        out["setup_calls"] = register_identities(core, ca_pem, identities, args.setup_threads, args.setup_timeout)
        out["register_s"] = time.monotonic() - t0
        print(f"# registered {len(identities)} identities ({out['setup_calls']} calls) in {out['register_s']:.1f} s",
              flush=True)
        devices_ids, seq_ids, monitor = identities[:n], identities[n:-1], identities[-1]
        t0 = time.monotonic()
        devices = [Device(i, tls_context(core.root_ca, i)) for i in devices_ids]
        out["contexts_s"] = time.monotonic() - t0

        # ---- registry decision service time (diagnostic, on the plugin's socket)
        probe = probe_registry(core, devices_ids[0], args.probe_count)
        out["probe"] = probe

        # ---- one connect on its own (diagnostic): default TLS (1.3) and TLS 1.2, one device at a time
        half = args.sequential
        out["sequential"] = {}
        for label, ids, tls12 in (("default", seq_ids[:half], False), ("tls12", seq_ids[half:], True)):
            lat, version = sequential_sample(core.root_ca, ids, core.mqtt_port, args.keepalive, tls12)
            out["sequential"][label] = dict(latencies=lat, version=version)
        out["set_tcp_nodelay"] = broker_option(core, "set_tcp_nodelay")

        # ---- the subscriber (one more connection, its own identity and the same fleet policy)
        subscriber = Subscriber(dict(name=monitor.name, cert=monitor.cert_path, key=monitor.key_path,
                                     root_ca=str(core.root_ca), port=core.mqtt_port, keepalive=args.keepalive,
                                     deadline=args.duration + args.hold + 600))
        subscriber.wait_ready(30)
        print("# subscriber connected and subscribed", flush=True)

        # ---- connect phase
        sampler.mark("before_connect")
        slices = [devices[k::args.connect_threads] for k in range(args.connect_threads)]
        t_connect0 = time.monotonic()
        deadline = t_connect0 + args.connect_timeout
        threads = [threading.Thread(target=connect_slice, args=(s, core.mqtt_port, args.keepalive, 15.0, deadline),
                                    name=f"connect-{k}", daemon=True) for k, s in enumerate(slices)]
        for t in threads:
            t.start()
        for t in threads:  # a thread ends at most one device's timeout (15 s + TLS 10 s) after the deadline
            t.join(timeout=max(0.0, deadline + 30.0 - time.monotonic()))
        sampler.mark("after_connect")
        ok = [d for d in devices if d.connected]
        last = max((d.t1 for d in ok), default=t_connect0)
        connect_wall = last - t_connect0
        out["connect"] = dict(ok=len(ok), refused=sum(1 for d in devices if d.rc is not None and d.rc.is_failure),
                              errors=sum(1 for d in devices if d.error), wall=connect_wall,
                              rate=len(ok) / connect_wall if connect_wall > 0 else float("nan"),
                              latencies=sorted(d.t1 - d.t0 for d in ok),
                              examples=sorted({d.error or str(d.rc) for d in devices if not d.connected})[:3])
        first = next((d for d in ok), None)
        if first is not None:
            sock = first.client.socket()
            out["tls"] = f"{sock.version()} {sock.cipher()[0]}" if hasattr(sock, "cipher") else "?"
        print(f"# connected {len(ok)}/{n} in {connect_wall:.1f} s ({out['connect']['rate']:.0f}/s)", flush=True)

        fleet = Fleet(devices)
        # ---- hold: all connected, idle
        sampler.mark("before_hold")
        fleet.run_for(args.hold)
        sampler.mark("after_hold")
        out["held_after_hold"] = fleet.held()
        out["established_after_hold"] = established_on(core.mqtt_port)
        print(f"# holding {out['held_after_hold']} device connections (broker side: "
              f"{out['established_after_hold']} established incl. the subscriber)", flush=True)

        # ---- publish phase
        total = int(args.rate * args.duration)
        interval = 1.0 / args.rate
        pad = max(0, args.payload_bytes)
        lateness = []
        sampler.mark("before_publish")
        t_pub0 = time.monotonic()
        next_t = t_pub0
        seq = 0
        pub_fail = 0
        while seq < total:
            now = time.monotonic()
            if now >= next_t:
                dev = fleet.devices[seq % len(fleet.devices)] if fleet.devices else None
                if dev is None:
                    break
                lateness.append(now - next_t)
                head = b"%d %d " % (seq, time.monotonic_ns())
                info = dev.client.publish(TOPIC, head + b"x" * max(0, pad - len(head)), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    pub_fail += 1
                fleet.want_write(dev)
                seq += 1
                next_t += interval
                continue
            fleet.poll(next_t - now)
        t_pub1 = time.monotonic()
        drain_end = t_pub1 + 10.0
        sent_acks = lambda: sum(d.acks for d in fleet.devices)  # noqa: E731
        while sent_acks() < seq - pub_fail and time.monotonic() < drain_end:
            fleet.poll(0.05)
        fleet.run_for(0.5)  # the last deliveries reach the subscriber
        sampler.mark("after_publish")
        sub = subscriber.finish(15)
        subscriber = None
        out["publish"] = dict(sent=seq, failed=pub_fail, acks=sent_acks(), wall=t_pub1 - t_pub0,
                              rate=seq / (t_pub1 - t_pub0) if t_pub1 > t_pub0 else float("nan"),
                              lateness=sorted(lateness), subscriber=None)
        if sub:
            lat = sorted(x / 1e6 for x in sub["latencies_ns"])
            out["publish"].update(received=sub["seqs"], dups=sub["dups"], latencies_ms=lat,
                                  subscriber=dict(cpu=sub["cpu"], connected=sub["connected"]))
        out["held_after_publish"] = fleet.held()
        out["disconnects"] = sum(d.disconnects for d in devices)
        print(f"# published {seq} in {out['publish']['wall']:.1f} s, subscriber received "
              f"{out['publish'].get('received', '?')}", flush=True)

        # ---- disconnect
        sampler.mark("before_disconnect")
        t0 = time.monotonic()
        fleet.disconnect_all(30)
        out["disconnect_s"] = time.monotonic() - t0
        time.sleep(0.5)
        sampler.mark("after_disconnect")
        out["refusals"] = core.refusals()
        out["marks"] = sampler.marks
        out["phases"] = {
            ph: dict(wall=sampler.wall(f"before_{ph}", f"after_{ph}"),
                     **{who: sampler.delta(f"before_{ph}", f"after_{ph}", who)
                        for who in ("mosquitto", "registry", "bench")})
            for ph in ("connect", "hold", "publish", "disconnect")}
    finally:
        if subscriber is not None:
            subscriber.stop()
        core.stop()
    out["total_s"] = time.monotonic() - t_all
    out["load_end"] = os.getloadavg()
    return out


# ------------------------------------------------------------------------------------------ report
def paho_version():
    import paho.mqtt
    return getattr(paho.mqtt, "__version__", "?")


def mb(kb):
    return kb / 1024.0


def report(out, args):
    n = args.devices
    c, p, ph, marks = out["connect"], out["publish"], out["phases"], out["marks"]
    print()
    print(f"AWS IoT Core stand-in data-plane benchmark - {out['started']} - {out['cpus']} CPUs, load "
          f"{out['load_start'][0]:.1f} at start, {out['load_end'][0]:.1f} at end (1-min averages; 5-min "
          f"{out['load_start'][1]:.1f} -> {out['load_end'][1]:.1f})")
    print(f"stand-in: Mosquitto 2 (pid {out['pids']['mosquitto']}) + registry plugin -> lab/iotcore/server.py "
          f"(pid {out['pids']['registry']}), MQTT over {out.get('tls', 'TLS')} on {HOST}, client certificates "
          f"required; devices: paho-mqtt {paho_version()} MQTT 3.1.1, "
          f"EC P-256 certificates, client id = thing name, policy {POLICY_NAME} = registry_policy_document "
          f"(roles/registry/defaults/main.yml, topic rule {TOPIC_RULE})")
    print(f"setup (not in the figures below): {out['identities']} identities ({n} devices, the subscriber, "
          f"{2 * args.sequential} for the one-at-a-time sample): keys + certificates {out['keygen_s']:.1f} s; "
          f"control plane "
          f"{out['setup_calls']} calls (RegisterCertificate ACTIVE, CreateThing, AttachPolicy, AttachThingPrincipal) "
          f"in {out['register_s']:.1f} s = {out['setup_calls'] / out['register_s']:.0f} calls/s "
          f"({args.setup_threads} threads); {n} TLS contexts {out['contexts_s']:.1f} s")
    print()
    row = "{:<40} {:>7} {:>22} {:>15} {:>15} {:>12}"
    print(row.format("phase", "wall s", "result", "mosquitto CPU", "registry CPU", "bench CPU"))
    print("-" * 116)

    def cpu(v, wall):
        return f"{v:5.2f} s {100 * v / wall:4.0f}%" if wall > 0 else f"{v:.2f} s"

    for name, label, result in (
            ("connect", f"connect {n} ({args.connect_threads} threads)", f"{c['ok']} ok, {c['rate']:.0f}/s"),
            ("hold", f"hold {out['held_after_hold']} idle connections", f"{out['held_after_hold']} held"),
            ("publish", f"publish {args.rate:g}/s for {args.duration:g} s, QoS 1",
             f"{p['sent']} sent, {p.get('received', '?')} recv"),
            ("disconnect", f"disconnect {out['held_after_publish']}", f"{out['disconnect_s']:.1f} s")):
        x = ph[name]
        print(row.format(label, f"{x['wall']:.2f}", result, cpu(x["mosquitto"], x["wall"]),
                         cpu(x["registry"], x["wall"]), cpu(x["bench"], x["wall"])))
    print("  (CPU: user + system seconds of the process, all threads, from /proc/<pid>/stat; % of one core)")
    per_conn_m = 1000 * ph["connect"]["mosquitto"] / max(1, c["ok"])
    per_conn_r = 1000 * ph["connect"]["registry"] / max(1, c["ok"])
    per_msg_m = 1000 * ph["publish"]["mosquitto"] / max(1, p["sent"])
    per_msg_r = 1000 * ph["publish"]["registry"] / max(1, p["sent"])
    print(f"  per connect: mosquitto {per_conn_m:.2f} ms CPU (TLS handshake + CONNECT), registry {per_conn_r:.2f} ms CPU; "
          f"per message: mosquitto {per_msg_m:.2f} ms, registry {per_msg_r:.2f} ms (1 Publish + 1 Receive decision)")
    print()
    print("memory (RSS; peak = VmHWM):")
    for who in ("mosquitto", "registry"):
        b, a, h, e = (marks[k][who] for k in ("before_connect", "after_connect", "after_publish", "after_disconnect"))
        grow = (h["rss_kb"] - b["rss_kb"]) / max(1, c["ok"])
        print(f"  {who:<10} {mb(b['rss_kb']):7.1f} MB before connects -> {mb(a['rss_kb']):7.1f} MB with {c['ok']} "
              f"connected -> {mb(h['rss_kb']):7.1f} MB after publishing ({grow:.1f} kB per connection); peak "
              f"{mb(e['hwm_kb']):.1f} MB; {h['threads']} threads, {h['fds']} fds held")
    bb, ba = marks["before_connect"]["bench"], marks["after_publish"]["bench"]
    print(f"  bench (the {n} simulated devices) {mb(bb['rss_kb']):.1f} -> {mb(ba['rss_kb']):.1f} MB")
    print()
    cl = c["latencies"]
    print(f"connect: {c['ok']}/{n} connected, {c['refused']} refused, {c['errors']} errors in {c['wall']:.2f} s = "
          f"{c['rate']:.0f} connects/s with {args.connect_threads} devices connecting at a time; per connect "
          f"(TCP + mTLS + CONNECT -> CONNACK) p50 {1000 * percentile(cl, 50):.1f} ms, p99 "
          f"{1000 * percentile(cl, 99):.1f} ms, max {1000 * (cl[-1] if cl else float('nan')):.1f} ms"
          + (f"; e.g. {c['examples']}" if c["examples"] else ""))
    print(f"held: {out['held_after_hold']} after {args.hold:g} s idle, {out['held_after_publish']} after publishing; "
          f"broker side {out['established_after_hold']} established TCP connections on the MQTT port (devices + "
          f"subscriber); unexpected disconnects {out['disconnects']}; registry refusals {len(out['refusals'])}")
    lat = p.get("latencies_ms") or []
    late = p["lateness"]
    print(f"publish -> receive (QoS 1, {args.payload_bytes}-byte payload on `{TOPIC}`, round-robin over {n} devices, "
          f"1 subscriber in its own process): sent {p['sent']} at {p['rate']:.1f}/s, PUBACKs {p['acks']}, received "
          f"{p.get('received', 0)}, lost {p['sent'] - p.get('received', 0)}, duplicates {p.get('dups', 0)}; latency "
          f"p50 {percentile(lat, 50):.2f} ms, p90 {percentile(lat, 90):.2f} ms, p99 {percentile(lat, 99):.2f} ms, "
          f"max {(lat[-1] if lat else float('nan')):.2f} ms (publisher behind schedule: p99 "
          f"{1000 * percentile(late, 99):.2f} ms)")
    seq = out.get("sequential") or {}
    d, t12 = seq.get("default") or {}, seq.get("tls12") or {}
    if d.get("latencies") and t12.get("latencies"):
        dl, tl = d["latencies"], t12["latencies"]
        x = ph["connect"]
        cpu_ms = 1000 * (x["mosquitto"] + x["registry"] + x["bench"]) / max(1, c["ok"])
        print(f"one connect on its own ({len(dl)} devices one at a time): {d['version']} p50 "
              f"{1000 * percentile(dl, 50):.1f} ms (min {1000 * dl[0]:.1f}), {t12['version']} p50 "
              f"{1000 * percentile(tl, 50):.1f} ms (min {1000 * tl[0]:.1f}); CPU per connect in the fleet phase, "
              f"mosquitto + registry + client: {cpu_ms:.1f} ms")
        if percentile(dl, 50) - percentile(tl, 50) > 0.020 and out.get("set_tcp_nodelay") != "true":
            print(f"  NOTE: a {d['version']} connect waits ~{1000 * (percentile(dl, 50) - percentile(tl, 50)):.0f} ms "
                  "longer than a TLS 1.2 one with the same CPU: after the client's Finished, OpenSSL sends TLS 1.3 "
                  "NewSessionTicket records; Mosquitto's socket has Nagle on (mosquitto.conf has no "
                  "`set_tcp_nodelay true`), so the CONNACK waits behind them for the client's delayed ACK "
                  "(~40 ms). Fix in lab/iotcore/server.py: `set_tcp_nodelay true` in the generated mosquitto.conf "
                  "(a copy of that config with it: TLS 1.3 connect 46 -> 4 ms). The connect RATE above needs "
                  "connects in flight "
                  f"({args.connect_threads} here) because of it: one device at a time gets "
                  f"{1 / percentile(dl, 50):.0f}/s.")
    probe = out.get("probe")
    if probe and "error" not in probe:
        print(f"registry decisions on the plugin's socket ({len(probe['C'])} each, no TLS/MQTT; the broker's only "
              f"thread waits for each): CONNECT p50 {1000 * percentile(probe['C'], 50):.2f} ms p99 "
              f"{1000 * percentile(probe['C'], 99):.2f} ms; PUBLISH check p50 {1000 * percentile(probe['P'], 50):.3f}"
              f" ms p99 {1000 * percentile(probe['P'], 99):.3f} ms")
    elif probe:
        print(f"registry decisions: probe failed: {probe['error']}")
    print()
    print("AWS IoT Core published quotas, for scale (published quota, check Service Quotas; values as recorded in "
          "LAB-FACTS.md):")
    per_dev = args.rate / max(1, n)
    measured = {
        "connect_rate": f"stand-in: {c['rate']:.0f} connects/s measured",
        "per_client_connect": "bench: each client id connects once",
        "per_connection_publish": f"bench: {per_dev:.2f}/s per device ({args.rate:g}/s spread over {n})",
        "subscriptions": "bench: 1 subscription (the subscriber), 1 per SUBSCRIBE",
        "payload": f"bench: {args.payload_bytes} bytes",
        "slashes": f"bench: `{TOPIC}`, 0",
        "client_id": f"bench: {len('bench-00000')}-{len(MONITOR)} bytes (the thing names)",
    }
    for what, value, key in QUOTAS:
        print(f"  {what:<46} {value:<40} {measured[key]}")
    print("  concurrent connections per account: not recorded in LAB-FACTS.md (check Service Quotas); "
          f"stand-in: {out['held_after_hold']} held here")
    print()

    verdicts = []

    def verdict(ok, text, info=False):
        if info:
            print(f"INFO  {text}")
            return
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    all_held = (out["held_after_hold"] == n and out["held_after_publish"] == n and c["ok"] == n
                and out["disconnects"] == 0)
    text = (f"{TARGET_CONNECTIONS:,} concurrent device connections: {c['ok']} of {n} connected, "
            f"{out['held_after_hold']} held idle, {out['held_after_publish']} held after publishing, "
            f"{out['disconnects']} dropped (each its own ACTIVE certificate + thing + fleet policy)")
    if n < TARGET_CONNECTIONS:
        verdict(all_held, f"all {n} device connections held ({'--quick' if args.quick else '--devices'}: the "
                          f"{TARGET_CONNECTIONS:,} target is judged on a default run)")
    else:
        verdict(all_held, text)
    verdict(c["rate"] >= TARGET_CONNECT_RATE and c["ok"] == n,
            f"connect rate >= {TARGET_CONNECT_RATE:.0f}/s: {c['rate']:.0f}/s ({c['ok']} connects in {c['wall']:.2f} s, "
            f"mTLS + CONNECT authorized by the registry, {args.connect_threads} at a time)")
    p99 = percentile(lat, 99)
    lost = p["sent"] - p.get("received", 0)
    rate_ok = p["rate"] >= 0.95 * args.rate
    verdict(bool(lat) and p99 <= TARGET_P99_MS and lost == 0 and rate_ok and args.rate >= TARGET_MSG_RATE,
            f"publish -> receive p99 <= {TARGET_P99_MS:.0f} ms at {TARGET_MSG_RATE:.0f} messages/s: p99 "
            f"{p99:.2f} ms, p50 {percentile(lat, 50):.2f} ms at {p['rate']:.1f}/s, lost {lost}")
    if out["refusals"]:
        print(f"  registry refusals: {out['refusals'][:5]}")
    return verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description="Data-plane benchmark of the AWS IoT Core stand-in (issue 8).",
                                     allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 devices, 5 s of publishing")
    parser.add_argument("--devices", type=int, default=TARGET_CONNECTIONS, help="simulated devices (default 1000)")
    parser.add_argument("--connect-threads", type=int, default=16,
                        help="devices connecting at the same time (one thread each; each waits for its CONNACK)")
    parser.add_argument("--connect-timeout", type=float, default=300.0,
                        help="bound on the connect phase (s); devices not started by then stay unconnected")
    parser.add_argument("--sequential", type=int, default=20,
                        help="extra identities connected one at a time, with the default TLS and with TLS 1.2 each "
                             "(diagnostic: the latency of one connect)")
    parser.add_argument("--setup-threads", type=int, default=6, help="control-plane threads for registration")
    parser.add_argument("--setup-timeout", type=float, default=900.0, help="bound on the registration (s)")
    parser.add_argument("--rate", type=float, default=TARGET_MSG_RATE, help="messages/s, all devices together")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of publishing")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds all connections are held idle")
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--keepalive", type=int, default=60, help="MQTT keepalive of every device (s)")
    parser.add_argument("--probe-count", type=int, default=200, help="registry decisions timed on its socket")
    parser.add_argument("--json-file", help="also write all measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--subscriber-child", help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    if args.subscriber_child:
        return subscriber_main(args.subscriber_child)
    if unknown:  # `make bench BENCH_ARGS=...` passes fleet_bench.py's options here too
        print(f"# iotcore_bench: ignoring options meant for fleet_bench.py: {' '.join(unknown)}", flush=True)
    if args.quick:
        args.devices, args.duration, args.hold, args.probe_count, args.sequential = 100, 5.0, 2.0, 50, 10
    if shutil.which("mosquitto") is None or shutil.which("gcc") is None:
        print("iotcore_bench: needs mosquitto, gcc, mosquitto-dev, libmosquitto-dev, libssl-dev (make host)")
        return 2
    work = tempfile.mkdtemp(prefix="iotcore-bench-")
    t0 = time.monotonic()
    try:
        out = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    verdicts = report(out, args)
    print(f"(run time {time.monotonic() - t0:.0f} s{'; work dir ' + work if args.keep else ''})")
    if args.json_file:
        slim = dict(out)
        with open(args.json_file, "w") as f:
            json.dump(slim, f, indent=1, default=str)
    return 0 if verdicts and all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
