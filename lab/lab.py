#!/usr/bin/env python3
"""The iotfleet.aws lab: emulated Pi Zeros, an MQTT broker with mutual TLS, and moto.

    lab/lab.py up     [--pis N] [--dir STATEDIR] [--image IMAGE] [--timeout S]
    lab/lab.py down   [--dir STATEDIR]
    lab/lab.py status [--dir STATEDIR]
    lab/lab.py check  [--dir STATEDIR]     # self-test: SSH/armv6l, moto, mosquitto mTLS

Default STATEDIR is <repo>/.lab. Several labs may run at once in different state dirs:
container names carry a per-lab random prefix and every port is a free loopback port.
Run as root with the repo venv (.venv/bin/python); needs lab/host-setup.sh and lab/image.sh
(`up` builds the image through lab/image.sh when it is missing).
"""
from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # re-exec with the repo venv when started with a bare python3
    venv_py = REPO / ".venv" / "bin" / "python"
    if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve() \
            and not os.environ.get("IOTFLEET_LAB_REEXEC"):
        os.environ["IOTFLEET_LAB_REEXEC"] = "1"
        os.execv(str(venv_py), [str(venv_py), __file__, *sys.argv[1:]])
    sys.exit("lab.py: the 'cryptography' package is missing: run with <repo>/.venv/bin/python")

DEFAULT_IMAGE = os.environ.get("LAB_IMAGE", "localhost/iotfleet-pizero:bookworm")
BRIDGE_IP = "10.88.0.1"          # podman's default bridge (podman0), host side
LOOPBACK = "127.0.0.1"
LABEL = "io.iotfleet.lab"        # container label: value = the lab's prefix
STATE_MARKER = "iotfleet-lab"    # lab.json "kind"
PORT_LOCK = "/var/lock/iotfleet-lab-ports.lock"
AWS_REGION = "us-east-1"


# ----------------------------------------------------------------------------- helpers
class LabError(Exception):
    pass


T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"lab [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, **kw)
    if check and p.returncode != 0:
        raise LabError(f"command failed ({p.returncode}): {shlex.join(cmd)}\n"
                       f"{(p.stderr or '').strip()}\n{(p.stdout or '').strip()}".rstrip())
    return p


def wait_for(what: str, cond, timeout: float, interval: float = 0.2, max_interval: float = 2.0):
    """Poll cond() until it returns a truthy value or timeout; raise LabError on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            r = cond()
            if r:
                return r
        except LabError:
            raise
        except Exception as e:  # noqa: BLE001 - remember the last reason for the message
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, max_interval)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(*hosts: str, exclude: set[int] = frozenset()) -> int:
    """A port that is free on every given address (bind to 0 on the first, check the rest)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if port in exclude:
            continue
        if all(port_free(h, port) for h in hosts):
            return port
    raise LabError(f"no free port found on {hosts}")


class PortLock:
    """Host-wide lock held while picking ports and starting listeners (parallel labs)."""

    def __enter__(self):
        self.f = open(PORT_LOCK, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if no such process
    or a zombie (a zombie is dead: PID 1 on this machine may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def proc_is(rec: dict | None) -> bool:
    """True when the recorded process is still the very process the lab started."""
    if not rec or not rec.get("pid"):
        return False
    st = proc_starttime(int(rec["pid"]))
    return st is not None and st == rec.get("starttime")


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- X.509
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotfleet lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(cn: str, key=None, days: int = 3650):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca_cert, ca_key, cn: str, server: bool, sans: list | None = None, days: int = 825):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(cert_path: Path, key_path: Path):
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert, key


# ----------------------------------------------------------------------------- the lab
class Lab:
    def __init__(self, state_dir: Path):
        self.dir = state_dir.resolve()
        self.json_path = self.dir / "lab.json"
        self.state: dict = {}
        if self.json_path.exists():
            self.state = json.loads(self.json_path.read_text())
            if self.state.get("kind") != STATE_MARKER:
                raise LabError(f"{self.json_path} is not an iotfleet lab state file")

    # paths
    @property
    def ssh_key(self) -> Path: return self.dir / "ssh" / "id_ed25519"
    @property
    def lab_root_pem(self) -> Path: return self.dir / "lab-root" / "lab-root.pem"
    @property
    def lab_root_key(self) -> Path: return self.dir / "lab-root" / "lab-root.key"
    @property
    def fleet_ca_pem(self) -> Path: return self.dir / "fleet-ca" / "fleet-ca.pem"
    @property
    def fleet_ca_key(self) -> Path: return self.dir / "fleet-ca" / "fleet-ca.key"
    @property
    def mosq_dir(self) -> Path: return self.dir / "mosquitto"
    @property
    def moto_dir(self) -> Path: return self.dir / "moto"

    def save(self) -> None:
        write_text(self.json_path, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def ssh_cmd(self, port: int, *remote: str) -> list[str]:
        return ["ssh", "-i", str(self.ssh_key), "-p", str(port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=10", f"pi@{LOOPBACK}", *remote]

    # ------------------------------------------------------------------ status
    def container_states(self) -> dict[str, str]:
        prefix = self.state.get("prefix")
        if not prefix:
            return {}
        p = run(["podman", "ps", "-a", "--filter", f"label={LABEL}={prefix}", "--format", "json"])
        out = {}
        for c in json.loads(p.stdout or "[]"):
            names = c.get("Names") or []
            for name in ([names] if isinstance(names, str) else names):
                out[name] = str(c.get("State", "")).lower()   # running, exited, created, ...
        return out

    def health(self) -> dict:
        cs = self.container_states()
        pis = self.state.get("pis", [])
        return {
            "pis": {pi["name"]: cs.get(pi["container"], "missing") for pi in pis},
            "mosquitto": proc_is(self.state.get("mosquitto")) and
            port_open(LOOPBACK, self.state["mosquitto"]["host_port"]),
            "moto": proc_is(self.state.get("moto")) and
            port_open(LOOPBACK, self.state["moto"]["port"]),
        }

    def is_up(self) -> bool:
        if not self.state.get("complete"):
            return False
        h = self.health()
        return bool(h["pis"]) and all(s == "running" for s in h["pis"].values()) \
            and h["mosquitto"] and h["moto"]

    # ------------------------------------------------------------------ up
    def up(self, n: int, image: str, timeout: float) -> None:
        fresh = not self.json_path.exists()
        if fresh:
            if self.dir.exists() and any(self.dir.iterdir()):
                raise LabError(f"{self.dir} exists, is not empty and holds no lab.json: "
                               "refusing to use it as a lab state dir")
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o755)
            self.state = {"kind": STATE_MARKER, "version": 1, "dir": str(self.dir),
                          "prefix": f"iotfleet-lab-{secrets.token_hex(3)}",
                          "image": image, "complete": False,
                          "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            self.save()   # marker first: `down` can clean up whatever a failed `up` left
        else:
            have = len(self.state.get("pis", []))
            if self.state.get("pis") and have != n:
                raise LabError(f"the lab in {self.dir} has {have} Pis, not {n}: run `down` first")
            if self.is_up():
                say(f"lab in {self.dir} is already up ({have} Pis); nothing to do")
                self.print_summary()
                return
            say(f"lab in {self.dir} is partly up: restarting what is dead")
            image = self.state.get("image", image)
        try:
            self._up(n, image, timeout)
        except BaseException:
            if fresh and not os.environ.get("LAB_KEEP_ON_FAILURE"):
                say("up failed: tearing down what it started (LAB_KEEP_ON_FAILURE=1 keeps it)")
                try:
                    self.down(quiet=True)
                except Exception as e:  # noqa: BLE001
                    say(f"cleanup after failure also failed: {e}")
            raise

    def _up(self, n: int, image: str, timeout: float) -> None:
        self._ensure_image(image)
        self._ensure_keys_and_certs()
        self._ensure_pis(n, image)
        self._ensure_mosquitto(timeout)
        self._ensure_moto(timeout)
        self._wait_pis(timeout)
        self._write_inventory()
        self.state["complete"] = True
        self.save()
        self.print_summary()

    def _ensure_image(self, image: str) -> None:
        if run(["podman", "image", "exists", image], check=False).returncode == 0:
            return
        if image != DEFAULT_IMAGE and "LAB_IMAGE" not in os.environ:
            raise LabError(f"image {image} not found")
        say(f"image {image} missing: building it with lab/image.sh (takes ~2 min)")
        env = dict(os.environ, LAB_IMAGE=image)
        r = subprocess.run([str(HERE / "image.sh")], env=env)
        if r.returncode != 0:
            raise LabError("lab/image.sh failed")

    def _ensure_keys_and_certs(self) -> None:
        # SSH key for the pi user
        if not self.ssh_key.exists():
            k = ed25519.Ed25519PrivateKey.generate()
            write_private(self.ssh_key, k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption()))
            pub = k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                              serialization.PublicFormat.OpenSSH)
            write_text(self.ssh_key.with_suffix(".pub"), pub.decode() + " iotfleet-lab\n")
            os.chmod(self.ssh_key.parent, 0o700)
        # lab root CA: issues the broker's server certificate (devices trust it instead of
        # Amazon Root CA 1)
        if not (self.lab_root_pem.exists() and self.lab_root_key.exists()):
            cert, key = make_ca(f"iotfleet lab root CA {self.state['prefix']}",
                                key=ec.generate_private_key(ec.SECP256R1()))
            write_private(self.lab_root_key, _key_pem(key))
            write_text(self.lab_root_pem, pem(cert).decode())
        # fleet CA: handed to the collection's `ca` role as an existing CA; the broker's cafile
        if not (self.fleet_ca_pem.exists() and self.fleet_ca_key.exists()):
            cert, key = make_ca(f"iotfleet lab fleet CA {self.state['prefix']}")
            write_private(self.fleet_ca_key, _key_pem(key))
            write_text(self.fleet_ca_pem, pem(cert).decode())
        os.chmod(self.fleet_ca_key, 0o600)
        # broker server certificate
        srv_pem, srv_key = self.mosq_dir / "server.pem", self.mosq_dir / "server.key"
        if not (srv_pem.exists() and srv_key.exists()):
            root_cert, root_key = load_ca(self.lab_root_pem, self.lab_root_key)
            sans = [x509.DNSName("host.containers.internal"), x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(BRIDGE_IP)),
                    x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            cert, key = issue(root_cert, root_key, "host.containers.internal", server=True, sans=sans)
            write_private(srv_key, _key_pem(key))
            write_text(srv_pem, pem(cert).decode())
        self.state["paths"] = {
            "ssh_private_key": str(self.ssh_key),
            "ssh_public_key": str(self.ssh_key.with_suffix(".pub")),
            "lab_root_ca": str(self.lab_root_pem),
            "lab_root_ca_key": str(self.lab_root_key),
            "fleet_ca_cert": str(self.fleet_ca_pem),
            "fleet_ca_key": str(self.fleet_ca_key),
            "mosquitto_server_cert": str(srv_pem),
            "mosquitto_server_key": str(srv_key),
            "inventory": str(self.dir / "pis.ini"),
            "group_vars": str(self.dir / "group_vars" / "all" / "lab.yml"),
            "ansible_cfg": str(self.dir / "ansible.cfg"),
        }
        self.save()

    def _ensure_pis(self, n: int, image: str) -> None:
        prefix = self.state["prefix"]
        pubkey = self.ssh_key.with_suffix(".pub").read_text().strip()
        pis = self.state.setdefault("pis", [])
        states = self.container_states()
        for i in range(1, n + 1):
            if len(pis) < i:
                pis.append({"name": f"pi{i}", "container": f"{prefix}-pi{i}", "port": None})
            pi = pis[i - 1]
            st = states.get(pi["container"])
            if st == "running":
                continue
            if st is not None:  # exists but stopped: start it again (same published port)
                say(f"{pi['container']}: {st}, starting it")
                run(["podman", "start", pi["container"]])
                continue
            for attempt in range(5):
                with PortLock():
                    port = pi["port"] if (pi["port"] and attempt == 0 and port_free(LOOPBACK, pi["port"])) \
                        else free_port(LOOPBACK)
                    r = run(["podman", "run", "-d", "--init", "--pull=never",
                             "--name", pi["container"], "--hostname", pi["name"],
                             "--label", f"{LABEL}={prefix}", "--label", f"{LABEL}.dir={self.dir}",
                             "-e", "QEMU_CPU=arm1176", "-e", f"LAB_AUTHORIZED_KEY={pubkey}",
                             "-p", f"{LOOPBACK}:{port}:22", image], check=False)
                if r.returncode == 0:
                    pi["port"] = port
                    say(f"{pi['container']}: started, ssh on {LOOPBACK}:{port}")
                    break
                run(["podman", "rm", "-f", "--ignore", pi["container"]], check=False)
                if "address already in use" not in (r.stderr or "") or attempt == 4:
                    raise LabError(f"podman run {pi['container']} failed:\n{r.stderr.strip()}")
            self.save()

    def _start_process(self, key: str, cmd_for_port, ports_for, ready, log_path: Path,
                       timeout: float, cwd: Path) -> dict:
        rec = self.state.get(key)
        if proc_is(rec):
            return rec
        last = ""
        for attempt in range(5):
            with PortLock():
                ports = ports_for(rec if attempt == 0 else None)
                cmd = cmd_for_port(ports)
                logf = open(log_path, "ab")
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=cwd, start_new_session=True, close_fds=True)
                logf.close()
                st = wait_for(f"/proc/{p.pid}", lambda: proc_starttime(p.pid), 5, 0.01)
                rec = {"pid": p.pid, "starttime": st, "cmd": cmd, "log": str(log_path), **ports}
                try:
                    wait_for(f"{key} to listen on {ports}",
                             lambda: (p.poll() is None or _raise(LabError(f"{key} exited ({p.returncode})")))
                             and ready(ports), timeout)
                except LabError as e:
                    if p.poll() is None:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                    last = str(e)
                    tail = log_path.read_text(errors="replace")[-1500:]
                    if "in use" in tail and attempt < 4:
                        continue
                    raise LabError(f"{last}\n--- {log_path} (tail) ---\n{tail}") from None
            self.state[key] = rec
            self.save()
            return rec
        raise LabError(last)

    def _ensure_mosquitto(self, timeout: float) -> None:
        d = self.mosq_dir
        d.mkdir(parents=True, exist_ok=True)
        # the bridge address exists only while a container runs: we start after the Pis
        wait_for(f"the podman bridge address {BRIDGE_IP}",
                 lambda: port_free(BRIDGE_IP, 0), 30)

        def ports_for(rec):
            if rec and port_free(LOOPBACK, rec["host_port"]) and port_free(BRIDGE_IP, rec["bridge_port"]):
                return {"host_port": rec["host_port"], "bridge_port": rec["bridge_port"]}
            port = free_port(LOOPBACK, BRIDGE_IP)
            return {"host_port": port, "bridge_port": port}

        def cmd_for(ports):
            tls = (f"cafile {self.fleet_ca_pem}\n"
                   f"certfile {d / 'server.pem'}\n"
                   f"keyfile {d / 'server.key'}\n"
                   "require_certificate true\n"
                   "use_identity_as_username true\n")
            conf = ("# iotfleet lab broker: mutual TLS, client certificates must chain to the fleet CA\n"
                    "user root\n"           # never drop privileges: the key files are 0600 root
                    "per_listener_settings false\n"
                    "persistence false\n"
                    "log_dest stderr\n"
                    "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                    "connection_messages true\n"
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
                    f"\nlistener {ports['bridge_port']} {BRIDGE_IP}\n{tls}"
                    f"\nlistener {ports['host_port']} {LOOPBACK}\n{tls}")
            write_text(d / "mosquitto.conf", conf)
            return ["mosquitto", "-c", str(d / "mosquitto.conf")]

        def ready(ports):
            return port_open(LOOPBACK, ports["host_port"]) and port_open(BRIDGE_IP, ports["bridge_port"])

        rec = self._start_process("mosquitto", cmd_for, ports_for, ready, d / "mosquitto.log",
                                  min(timeout, 30), d)
        say(f"mosquitto (pid {rec['pid']}): mTLS on {BRIDGE_IP}:{rec['bridge_port']} "
            f"and {LOOPBACK}:{rec['host_port']}")

    def _ensure_moto(self, timeout: float) -> None:
        d = self.moto_dir
        d.mkdir(parents=True, exist_ok=True)
        # the repo's launcher switches on moto's iot.use_valid_cert (certificate ids = SHA-256
        # of the DER, as AWS computes them); plain moto_server otherwise
        launcher = REPO / "scripts" / "moto_server.py"
        exe = Path(sys.executable).parent / "moto_server"
        base = [sys.executable, str(launcher)] if launcher.exists() else \
            [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]

        def ports_for(rec):
            if rec and port_free(LOOPBACK, rec["port"]):
                return {"port": rec["port"]}
            return {"port": free_port(LOOPBACK)}

        def cmd_for(ports):
            return [*base, "-H", LOOPBACK, "-p", str(ports["port"])]

        def ready(ports):
            return port_open(LOOPBACK, ports["port"])

        rec = self._start_process("moto", cmd_for, ports_for, ready, d / "moto.log", min(timeout, 60), d)
        rec["endpoint_url"] = f"http://{LOOPBACK}:{rec['port']}"
        self.save()
        say(f"moto (pid {rec['pid']}): {rec['endpoint_url']}")

    def _wait_pis(self, timeout: float) -> None:
        errors: dict[str, str] = {}

        def one(pi):
            def probe():
                st = self.container_states().get(pi["container"])
                if st != "running":
                    logs = run(["podman", "logs", "--tail", "20", pi["container"]], check=False)
                    raise LabError(f"container {pi['container']} is {st}:\n{logs.stdout}{logs.stderr}")
                r = run(self.ssh_cmd(pi["port"], "uname -m; sudo -n uname -m"), check=False, timeout=60)
                if r.returncode != 0:
                    raise RuntimeError((r.stderr or "").strip() or f"ssh rc {r.returncode}")
                return r.stdout.split()
            try:
                archs = wait_for(f"ssh to {pi['name']} ({LOOPBACK}:{pi['port']})", probe, timeout, 0.5, 3)
                if archs != ["armv6l", "armv6l"]:
                    raise LabError(f"{pi['name']}: `uname -m` / `sudo uname -m` said {archs}, "
                                   "expected armv6l twice (QEMU_CPU / binfmt flags? run lab/host-setup.sh)")
                pi["uname_m"] = archs[0]
                say(f"{pi['name']}: ssh ok, uname -m = {archs[0]}, sudo uname -m = {archs[1]}")
            except Exception as e:  # noqa: BLE001
                errors[pi["name"]] = str(e)

        threads = [threading.Thread(target=one, args=(pi,)) for pi in self.state["pis"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.save()
        if errors:
            raise LabError("Pis not ready:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(errors.items())))

    def _write_inventory(self) -> None:
        s = self.state
        lines = ["# Written by lab/lab.py up: the lab's emulated Pi Zeros, as a user writes an inventory",
                 "# of real Pis. Lab endpoints are in group_vars/all/lab.yml next to this file.",
                 "[pis]"]
        lines += [f"{pi['name']} ansible_host={LOOPBACK} ansible_port={pi['port']}" for pi in s["pis"]]
        lines += ["", "[pis:vars]", "ansible_user=pi",
                  f"ansible_ssh_private_key_file={self.ssh_key}",
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
                  "ansible_python_interpreter=/usr/bin/python3", ""]
        write_text(self.dir / "pis.ini", "\n".join(lines))

        m, moto = s["mosquitto"], s["moto"]
        gv = f"""# Written by lab/lab.py up: the lab's stand-ins for AWS (moto, Mosquitto with mTLS).
# Ansible loads this file for every inventory in {self.dir}.
iotfleet_aws_endpoint_url: {moto['endpoint_url']}
iotfleet_aws_region: {AWS_REGION}
iotfleet_aws_access_key: testing
iotfleet_aws_secret_key: testing

# the fleet CA exists already (made by the lab); the broker accepts only certificates it issued
ca_certificate_path: {self.fleet_ca_pem}
ca_private_key_path: {self.fleet_ca_key}
ca_create: false

# the data endpoint as the Pis reach it (the podman bridge), and the root they must trust
device_mqtt_host: {BRIDGE_IP}
device_mqtt_port: {m['bridge_port']}
device_root_ca_path: {self.lab_root_pem}
"""
        write_text(self.dir / "group_vars" / "all" / "lab.yml", gv)

        cfg = f"""# Written by lab/lab.py up. Use: ANSIBLE_CONFIG={self.dir / 'ansible.cfg'}
[defaults]
inventory = {self.dir / 'pis.ini'}
host_key_checking = False
interpreter_python = /usr/bin/python3
forks = 20
timeout = 30
retry_files_enabled = False
callback_result_format = yaml

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=30
"""
        write_text(self.dir / "ansible.cfg", cfg)
        s["mqtt"] = {"bridge_host": BRIDGE_IP, "bridge_port": m["bridge_port"],
                     "host": LOOPBACK, "host_port": m["host_port"],
                     "host_names": ["host.containers.internal", BRIDGE_IP, LOOPBACK, "localhost"]}
        s["aws"] = {"endpoint_url": moto["endpoint_url"], "region": AWS_REGION,
                    "access_key": "testing", "secret_key": "testing"}
        s["ssh"] = {"user": "pi", "host": LOOPBACK, "private_key": str(self.ssh_key)}

    def print_summary(self) -> None:
        s = self.state
        print(f"\nlab up in {self.dir} (prefix {s['prefix']})")
        for pi in s["pis"]:
            print(f"  {pi['name']:6} {pi['container']}  ssh -i {self.ssh_key} -p {pi['port']} pi@{LOOPBACK}")
        print(f"  moto       {s['moto']['endpoint_url']}  (pid {s['moto']['pid']})")
        print(f"  mosquitto  mqtts {BRIDGE_IP}:{s['mosquitto']['bridge_port']} (Pis), "
              f"{LOOPBACK}:{s['mosquitto']['host_port']} (host)  (pid {s['mosquitto']['pid']})")
        print(f"  inventory  {self.dir / 'pis.ini'}  (+ group_vars/all/lab.yml)")
        print(f"  config     ANSIBLE_CONFIG={self.dir / 'ansible.cfg'}")
        print(f"  state      {self.json_path}")

    # ------------------------------------------------------------------ down
    def down(self, quiet: bool = False) -> None:
        if not self.json_path.exists():
            if self.dir.exists() and not any(self.dir.iterdir()):
                self.dir.rmdir()
            say(f"no lab in {self.dir}: nothing to do")
            return
        s = self.state
        prefix = s.get("prefix")
        names = [pi["container"] for pi in s.get("pis", [])]
        if prefix:  # plus any container of this lab not yet recorded (failed up)
            names += [n for n in self.container_states() if n not in names]
        if names:
            run(["podman", "rm", "-f", "--ignore", "-t", "2", *names], check=False)
            left = [n for n in names if n in self.container_states()]
            if left:
                raise LabError(f"could not remove containers: {left}")
            say(f"removed containers: {' '.join(names)}")
        for key in ("mosquitto", "moto"):
            rec = s.get(key)
            if not rec:
                continue
            pid = int(rec["pid"])
            if not proc_is(rec):
                say(f"{key} (pid {pid}) is not running")
                continue
            os.kill(pid, signal.SIGTERM)
            try:
                wait_for(f"{key} (pid {pid}) to exit", lambda: not proc_is(rec), 10, 0.05, 0.5)
            except LabError:
                if proc_is(rec):
                    os.kill(pid, signal.SIGKILL)
                    wait_for(f"{key} (pid {pid}) to die", lambda: not proc_is(rec), 5, 0.05, 0.5)
            say(f"stopped {key} (pid {pid})")
        shutil.rmtree(self.dir)
        say(f"removed {self.dir}")

    # ------------------------------------------------------------------ check (self-test)
    def check(self) -> None:
        if not self.is_up():
            raise LabError(f"lab in {self.dir} is not up: {self.health()}")
        s = self.state
        ok = True
        for pi in s["pis"]:
            r = run(self.ssh_cmd(pi["port"], "uname -m; sudo -n uname -m; python3 -V"), check=False)
            print(f"  {pi['name']}: {' | '.join(r.stdout.split(chr(10))).strip(' |')}")
            ok &= r.stdout.split()[:2] == ["armv6l", "armv6l"]
        # moto answers IoT
        import boto3
        iot = boto3.client("iot", endpoint_url=s["moto"]["endpoint_url"], region_name=AWS_REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        ep = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        print(f"  moto: describe_endpoint -> {ep}")
        # mosquitto: fleet-CA client accepted, foreign-CA client refused (host listener)
        m = s["mosquitto"]
        with tempfile.TemporaryDirectory(prefix="iotfleet-lab-check-") as td:
            t = Path(td)
            fca, fkey = load_ca(self.fleet_ca_pem, self.fleet_ca_key)
            good, gk = issue(fca, fkey, "lab-check-good", server=False)
            rca, rkey = make_ca("rogue CA", key=ec.generate_private_key(ec.SECP256R1()))
            bad, bk = issue(rca, rkey, "lab-check-rogue", server=False)
            for nm, c, k in (("good", good, gk), ("bad", bad, bk)):
                write_text(t / f"{nm}.pem", pem(c).decode())
                write_private(t / f"{nm}.key", _key_pem(k))
            base = ["--cafile", str(self.lab_root_pem), "-h", LOOPBACK, "-p", str(m["host_port"])]
            nonce = secrets.token_hex(8)
            sub = subprocess.Popen(["mosquitto_sub", *base, "--cert", str(t / "good.pem"),
                                    "--key", str(t / "good.key"), "-t", "test", "-C", "1", "-W", "15",
                                    "-i", "lab-check-sub"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # publish until the subscriber has it (it may not be subscribed yet): bounded
            def pub_and_seen():
                run(["mosquitto_pub", *base, "--cert", str(t / "good.pem"), "--key", str(t / "good.key"),
                     "-t", "test", "-m", nonce, "-i", "lab-check-pub"])
                try:
                    out, err = sub.communicate(timeout=0.5)
                    return out.strip() == nonce or _raise(LabError(f"subscriber said {out!r} {err!r}"))
                except subprocess.TimeoutExpired:
                    return False
            try:
                wait_for("a fleet-CA client's publish to come back", pub_and_seen, 15)
                print("  mosquitto: client cert from the fleet CA accepted, publish on `test` came back")
            finally:
                if sub.poll() is None:
                    sub.kill()
                    sub.wait()
            r = run(["mosquitto_pub", *base, "--cert", str(t / "bad.pem"), "--key", str(t / "bad.key"),
                     "-t", "test", "-m", "x", "-i", "lab-check-rogue"], check=False)
            refused = r.returncode != 0
            print(f"  mosquitto: client cert from another CA {'refused' if refused else 'ACCEPTED (wrong!)'}"
                  f": {(r.stderr or r.stdout).strip()[:120]}")
            ok &= refused
            r = run(["mosquitto_pub", "--cafile", str(self.lab_root_pem), "-h", LOOPBACK, "-p",
                     str(m["host_port"]), "-t", "test", "-m", "x"], check=False)
            print(f"  mosquitto: client without cert {'refused' if r.returncode else 'ACCEPTED (wrong!)'}")
            ok &= r.returncode != 0
        # a Pi reaches the broker on the bridge and verifies its certificate against the lab root
        pi = s["pis"][0]
        py = ("import socket,ssl,sys;c=ssl.create_default_context(cafile='/tmp/lab-root.pem');"
              f"s=c.wrap_socket(socket.create_connection(('{BRIDGE_IP}',{m['bridge_port']}),10),"
              f"server_hostname='{BRIDGE_IP}');print(s.version(),s.getpeercert()['subject'][-1][0][1])")
        r = run(self.ssh_cmd(pi["port"], f"cat > /tmp/lab-root.pem && python3 -c {shlex.quote(py)}"),
                check=False, input=self.lab_root_pem.read_text())
        print(f"  {pi['name']} -> {BRIDGE_IP}:{m['bridge_port']} TLS: {(r.stdout or r.stderr).strip()}")
        ok &= r.returncode == 0
        if not ok:
            raise LabError("lab check FAILED")
        print("lab check: OK")


def _raise(e: Exception):
    raise e


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "check"):
        sp = sub.add_parser(name)
        sp.add_argument("--dir", default=os.environ.get("LAB_DIR", str(REPO / ".lab")),
                        help="lab state dir (default: <repo>/.lab or $LAB_DIR)")
        if name == "up":
            sp.add_argument("--pis", type=int, default=3, help="number of Pi Zeros (default 3)")
            sp.add_argument("--image", default=DEFAULT_IMAGE)
            sp.add_argument("--timeout", type=float, default=300,
                            help="seconds to wait for each Pi / service (default 300)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("lab.py: must run as root (rootful podman, binfmt; see lab/host-setup.sh)", file=sys.stderr)
        return 1
    try:
        lab = Lab(Path(a.dir))
        if a.cmd == "up":
            if a.pis < 1:
                raise LabError("--pis must be >= 1")
            lab.up(a.pis, a.image, a.timeout)
            say("up: done")
        elif a.cmd == "down":
            lab.down()
            say("down: done")
        elif a.cmd == "status":
            if not lab.state:
                print(f"no lab in {lab.dir}")
                return 3
            h = lab.health()
            print(json.dumps({"dir": str(lab.dir), "up": lab.is_up(), **h}, indent=2))
            return 0 if lab.is_up() else 3
        elif a.cmd == "check":
            lab.check()
    except LabError as e:
        print(f"lab.py {a.cmd}: ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lab.py {a.cmd}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
