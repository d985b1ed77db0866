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
"""
from __future__ import annotations

import argparse
import datetime as dt
import fcntl
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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
except ImportError:  # re-exec with the repo venv when started with a bare python3
    venv_py = REPO / ".venv" / "bin" / "python"
    if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve() \
            and not os.environ.get("IOTFLEET_LAB_REEXEC"):
        os.environ["IOTFLEET_LAB_REEXEC"] = "1"
        os.execv(str(venv_py), [str(venv_py), __file__, *sys.argv[1:]])
    sys.exit("lab.py: the 'cryptography' package is missing: run with <repo>/.venv/bin/python")

sys.path.insert(0, str(HERE / "iotcore"))
import pki  # noqa: E402  (lab/iotcore/pki.py: the lab root and the broker's certificate)

DEFAULT_IMAGE = os.environ.get("LAB_IMAGE", "localhost/iotfleet-pizero:bookworm")
LOOPBACK = "127.0.0.1"
MQTT_PORT = 8883                 # AWS IoT's MQTT/TLS port: the devices' default, unchanged in the lab
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
    def core_dir(self) -> Path: return self.dir / "iotcore"
    @property
    def aws_dir(self) -> Path: return self.dir / "aws"

    @property
    def endpoint(self) -> str:
        """The ATS data endpoint the stand-in's describe_endpoint returns (stable per lab)."""
        return f"{self.state['endpoint_prefix']}-ats.iot.{AWS_REGION}.amazonaws.com"

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
            "iotcore": proc_is(self.state.get("iotcore")) and
            port_open(LOOPBACK, self.state["iotcore"]["api_port"]) and
            port_open(LOOPBACK, self.state["iotcore"]["mqtt_host_port"]),
        }

    def is_up(self) -> bool:
        if not self.state.get("complete"):
            return False
        h = self.health()
        return bool(h["pis"]) and all(s == "running" for s in h["pis"].values()) \
            and h["iotcore"]

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
                          "endpoint_prefix": "a" + secrets.token_hex(7),
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
        self._ensure_network()
        self._ensure_pis(n, image)
        self._ensure_iotcore(timeout)
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
        # Amazon Root CA 1). The fleet CA is the collection's: its `ca` role makes it.
        if not (self.lab_root_pem.exists() and self.lab_root_key.exists()):
            cert, key = pki.make_ca(f"iotfleet lab root CA {self.state['prefix']}")
            write_private(self.lab_root_key, pki.key_pem(key))
            write_text(self.lab_root_pem, pki.pem(cert).decode())
        self.state["paths"] = {
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
        self.save()

    def _ensure_network(self) -> None:
        """The lab's own podman network: its gateway is where the Pis find the data endpoint."""
        name = self.state["prefix"]
        if run(["podman", "network", "exists", name], check=False).returncode != 0:
            run(["podman", "network", "create", "--label", f"{LABEL}={name}", name])
        info = json.loads(run(["podman", "network", "inspect", name]).stdout)[0]
        subnet = (info.get("subnets") or [{}])[0]
        gateway = subnet.get("gateway")
        if not gateway:
            raise LabError(f"podman network {name} has no gateway: {info}")
        self.state["network"] = {"name": name, "subnet": subnet.get("subnet"), "gateway": gateway}
        self.save()
        # the broker's server certificate names the endpoint, the gateway and loopback
        srv_pem, srv_key = self.core_dir / "server.pem", self.core_dir / "server.key"
        if not (srv_pem.exists() and srv_key.exists()):
            root_cert, root_key = pki.load(self.lab_root_pem, self.lab_root_key)
            cert, key = pki.issue_server(root_cert, root_key, [self.endpoint, gateway, LOOPBACK, "localhost"])
            write_private(srv_key, pki.key_pem(key))
            write_text(srv_pem, pki.pem(cert).decode())
        say(f"network {name}: {subnet.get('subnet')}, gateway {gateway}; endpoint {self.endpoint}")

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
                             "--network", self.state["network"]["name"],
                             "--add-host", f"{self.endpoint}:{self.state['network']['gateway']}",
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

    def _ensure_iotcore(self, timeout: float) -> None:
        """The AWS IoT Core stand-in (lab/iotcore/server.py): control plane on a loopback port,
        MQTT/TLS on the network's gateway port 8883 (the Pis) and on a loopback port (the host)."""
        d = self.core_dir
        d.mkdir(parents=True, exist_ok=True)
        gateway = self.state["network"]["gateway"]
        # the gateway address exists only while a container of the network runs: we start after the Pis
        wait_for(f"the lab network's gateway {gateway}", lambda: port_free(gateway, 0), 30)

        def ports_for(rec):
            if rec and port_free(LOOPBACK, rec["api_port"]) and port_free(LOOPBACK, rec["mqtt_host_port"]):
                return {"api_port": rec["api_port"], "mqtt_host_port": rec["mqtt_host_port"]}
            api = free_port(LOOPBACK)
            return {"api_port": api, "mqtt_host_port": free_port(LOOPBACK, exclude={api})}

        def cmd_for(ports):
            (d / "ready.json").unlink(missing_ok=True)
            return [sys.executable, str(HERE / "iotcore" / "server.py"), "--state", str(d),
                    "--api", f"{LOOPBACK}:{ports['api_port']}",
                    "--mqtt", f"{gateway}:{MQTT_PORT}", "--mqtt", f"{LOOPBACK}:{ports['mqtt_host_port']}",
                    "--endpoint-prefix", self.state["endpoint_prefix"], "--region", AWS_REGION,
                    "--server-cert", str(d / "server.pem"), "--server-key", str(d / "server.key")]

        def ready(ports):
            return (d / "ready.json").exists() and port_open(gateway, MQTT_PORT)

        rec = self._start_process("iotcore", cmd_for, ports_for, ready, d / "iotcore.log", min(timeout, 60), d)
        rec["endpoint_url"] = f"http://{LOOPBACK}:{rec['api_port']}"
        mosq = json.loads((d / "ready.json").read_text())["mosquitto_pid"]
        rec["mosquitto"] = {"pid": mosq, "starttime": proc_starttime(mosq)}
        self.save()
        say(f"AWS IoT Core stand-in (pid {rec['pid']}): API {rec['endpoint_url']}, MQTT {self.endpoint} = "
            f"{gateway}:{MQTT_PORT} (Pis), {LOOPBACK}:{rec['mqtt_host_port']} (host)")

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
                 "# of real Pis: hosts and SSH settings only.",
                 "[pis]"]
        lines += [f"{pi['name']} ansible_host={LOOPBACK} ansible_port={pi['port']}" for pi in s["pis"]]
        lines += ["", "[pis:vars]", "ansible_user=pi",
                  f"ansible_ssh_private_key_file={self.ssh_key}",
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
                  "ansible_python_interpreter=/usr/bin/python3", ""]
        write_text(self.dir / "pis.ini", "\n".join(lines))

        # The one lab-only variable: the root the Pis trust for the endpoint's server certificate
        # (on AWS: Amazon Root CA 1, the role's default). AWS endpoint and credentials come from the
        # environment or this lab's AWS config files (`lab.py env`), as for any amazon.aws module.
        gv = f"""# Written by lab/lab.py up. The lab's endpoint certificate comes from the lab root, not Amazon's.
device_root_ca_path: {self.lab_root_pem}
"""
        write_text(self.dir / "group_vars" / "all" / "lab.yml", gv)

        core = s["iotcore"]
        write_text(self.aws_dir / "config",
                   f"[default]\nregion = {AWS_REGION}\nendpoint_url = {core['endpoint_url']}\n")
        write_private(self.aws_dir / "credentials",
                      b"[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")

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
        gateway = s["network"]["gateway"]
        s["mqtt"] = {"endpoint": self.endpoint, "port": MQTT_PORT, "bridge_host": gateway,
                     "host": LOOPBACK, "host_port": core["mqtt_host_port"]}
        s["aws"] = {"endpoint_url": core["endpoint_url"], "region": AWS_REGION,
                    "access_key": "testing", "secret_key": "testing"}
        s["ssh"] = {"user": "pi", "host": LOOPBACK, "private_key": str(self.ssh_key)}

    def env(self) -> dict[str, str]:
        """What any AWS or MQTT tool needs to talk to this lab (printed as export lines)."""
        s = self.state
        return {
            "AWS_ENDPOINT_URL": s["aws"]["endpoint_url"],
            "AWS_ACCESS_KEY_ID": s["aws"]["access_key"],
            "AWS_SECRET_ACCESS_KEY": s["aws"]["secret_key"],
            "AWS_DEFAULT_REGION": s["aws"]["region"],
            "IOTFLEET_LAB_MQTT_HOST": s["mqtt"]["host"],
            "IOTFLEET_LAB_MQTT_PORT": str(s["mqtt"]["host_port"]),
            "IOTFLEET_LAB_ROOT_CA": s["paths"]["lab_root_ca"],
        }

    def print_summary(self) -> None:
        s = self.state
        print(f"\nlab up in {self.dir} (prefix {s['prefix']})")
        for pi in s["pis"]:
            print(f"  {pi['name']:6} {pi['container']}  ssh -i {self.ssh_key} -p {pi['port']} pi@{LOOPBACK}")
        core = s["iotcore"]
        print(f"  AWS IoT    {core['endpoint_url']}  (stand-in pid {core['pid']}, broker pid {core['mosquitto']['pid']})")
        print(f"  MQTT       {self.endpoint}:{MQTT_PORT} (Pis: {s['network']['gateway']}), "
              f"{LOOPBACK}:{core['mqtt_host_port']} (host)")
        print(f"  inventory  {self.dir / 'pis.ini'}  (+ group_vars/all/lab.yml: the lab root CA)")
        print(f"  AWS env    eval \"$({Path(sys.executable)} {HERE / 'lab.py'} env --dir {self.dir})\"")
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
        for key in ("iotcore", "mosquitto", "moto"):   # mosquitto/moto: labs of before the stand-in
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
        broker = (s.get("iotcore") or {}).get("mosquitto")
        if proc_is(broker):   # the stand-in's broker, when the stand-in died without stopping it
            os.kill(int(broker["pid"]), signal.SIGTERM)
        net = (s.get("network") or {}).get("name")
        if net:
            run(["podman", "network", "rm", "-f", net], check=False)
            say(f"removed network {net}")
        shutil.rmtree(self.dir)
        say(f"removed {self.dir}")

    # ------------------------------------------------------------------ check (self-test)
    def check(self) -> None:
        """Prove the lab: armv6l Pis; the stand-in's endpoint; its broker refuses an unregistered
        certificate; a Pi resolves the endpoint and trusts the broker's certificate (TLS, SNI)."""
        if not self.is_up():
            raise LabError(f"lab in {self.dir} is not up: {self.health()}")
        s = self.state
        ok = True
        for pi in s["pis"]:
            r = run(self.ssh_cmd(pi["port"], "uname -m; sudo -n uname -m; python3 -V"), check=False)
            print(f"  {pi['name']}: {' | '.join(r.stdout.split(chr(10))).strip(' |')}")
            ok &= r.stdout.split()[:2] == ["armv6l", "armv6l"]
        import boto3
        iot = boto3.client("iot", endpoint_url=s["aws"]["endpoint_url"], region_name=AWS_REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        ep = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        print(f"  control plane: describe_endpoint -> {ep}")
        ok &= ep == self.endpoint
        with tempfile.TemporaryDirectory(prefix="iotfleet-lab-check-") as td:
            t = Path(td)
            rogue, rogue_key = pki.make_ca("lab-check rogue")   # self-signed, registered nowhere
            write_text(t / "rogue.pem", pki.pem(rogue).decode())
            write_private(t / "rogue.key", pki.key_pem(rogue_key))
            r = run(["mosquitto_pub", "--cafile", str(self.lab_root_pem), "-h", LOOPBACK, "-p",
                     str(s["mqtt"]["host_port"]), "--cert", str(t / "rogue.pem"), "--key", str(t / "rogue.key"),
                     "-t", "test", "-m", "x", "-i", "lab-check"], check=False)
            print(f"  broker: unregistered certificate {'refused' if r.returncode else 'ACCEPTED (wrong!)'}")
            ok &= r.returncode != 0
        pi = s["pis"][0]
        py = ("import socket,ssl;c=ssl.create_default_context(cafile='/tmp/lab-root.pem');"
              f"s=c.wrap_socket(socket.create_connection(('{self.endpoint}',{MQTT_PORT}),10),"
              f"server_hostname='{self.endpoint}');print(s.version(),s.getpeercert()['subject'][-1][0][1])")
        r = run(self.ssh_cmd(pi["port"], f"cat > /tmp/lab-root.pem && python3 -c {shlex.quote(py)}"),
                check=False, input=self.lab_root_pem.read_text())
        print(f"  {pi['name']} -> {self.endpoint}:{MQTT_PORT} TLS: {(r.stdout or r.stderr).strip()}")
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
    for name in ("up", "down", "status", "check", "env"):
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
        elif a.cmd == "env":
            if not lab.state.get("complete"):
                raise LabError(f"no complete lab in {lab.dir}: run `lab.py up` first")
            for k, v in lab.env().items():
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
