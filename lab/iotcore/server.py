#!/usr/bin/env python3
"""The AWS IoT Core stand-in: one registry, two planes, one process tree.

    server.py --state DIR --api HOST:PORT [--mqtt HOST:PORT ...]
              --endpoint-prefix PREFIX [--server-cert PEM --server-key PEM] [--region us-east-1]

Without --mqtt it is the control plane alone (the module tests' AWS API server).

- control plane: moto's IoT backend with AWS's checks (control.py) over HTTP on --api, and AWS KMS
  (moto's, with the checks AWS makes: kms.py) on the same endpoint, for a fleet CA key in KMS;
- data plane: Mosquitto 2 (MQTT 3.1.1 and 5, TLS >= 1.2, client certificates required) on every
  --mqtt listener, authenticating and authorizing through plugin/iotcore_auth.c, which asks this
  process (authz.py) over a Unix socket. Mosquitto verifies the client's chain against the CAs
  registered in the registry (written to DIR/cas as an OpenSSL hash directory, updated live);
  everything else (status, policies, JITP) is decided here.

Writes DIR/ready.json once both planes answer. SIGTERM stops Mosquitto, then this process.
Needs: mosquitto, gcc, mosquitto-dev, libmosquitto-dev, libssl-dev, openssl (lab/host-setup.sh).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from authz import Authorizer, AuthzServer  # noqa: E402
from control import DEFAULT_ACCOUNT, ControlPlane, _region  # noqa: E402
from kms import KeyService  # noqa: E402

log = logging.getLogger("iotcore")


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def wait_port(host: str, port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process died before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def build_plugin(out: Path) -> Path:
    src = HERE / "plugin" / "iotcore_auth.c"
    cmd = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(src), "-lcrypto"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building the broker plugin failed (needs gcc, mosquitto-dev, libmosquitto-dev, "
                           f"libssl-dev: lab/host-setup.sh):\n{r.stderr}")
    return out


class StandIn:
    def __init__(self, a):
        self.a = a
        self.state = Path(a.state).resolve()
        self.state.mkdir(parents=True, exist_ok=True)
        self.cas = self.state / "cas"
        self.cas.mkdir(exist_ok=True)
        self.mosquitto: subprocess.Popen | None = None
        self.kms = KeyService(_region, DEFAULT_ACCOUNT)
        self.control = ControlPlane(a.endpoint_prefix, a.seed or secrets.token_hex(16), self.write_cas,
                                    detach_delay=a.detach_delay, thing_type_delete_delay=a.thing_type_delete_delay)
        self.authz = Authorizer(self.control, a.region)

    def write_cas(self) -> None:
        """Every registered CA (any status: the plugin checks status) into the hash directory."""
        want = {}
        for backend in self.control.backends.values():
            for region_backend in backend.values():
                for ca in region_backend.ca_certificates.values():
                    want[f"{ca.certificate_id}.pem"] = ca.certificate_pem
        for f in self.cas.iterdir():
            if f.name.endswith(".pem") and f.name not in want:
                f.unlink()
        for name, text in want.items():
            if not (self.cas / name).exists():
                (self.cas / name).write_text(text)
        subprocess.run(["openssl", "rehash", str(self.cas)], capture_output=True, check=False)

    def wsgi(self):
        from moto.server import DomainDispatcherApplication, create_backend_app
        # IoT's own operations (control.py) first; KMS's with AWS's checks (kms.py); the rest is moto's
        inner = self.control.wsgi(self.kms.wsgi(DomainDispatcherApplication(create_backend_app)))
        authz, control = self.authz, self.control

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path == "/_iotcore/events":
                data = json.dumps({"refusals": authz.events, "generation": control.generation}).encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
                return [data]
            if path == "/moto-api/reset":
                with control.lock:
                    control.templates.clear()
                    control.ca_extra.clear()
                    control.detached.clear()
                    authz.conns.clear()
                    authz.events.clear()
                    control.generation += 1
                    result = inner(environ, start_response)
                self.write_cas()
                return result
            return inner(environ, start_response)
        return app

    def start_api(self) -> None:
        from moto.core.config import default_user_config
        from werkzeug.serving import WSGIRequestHandler, make_server
        default_user_config.setdefault("iot", {})["use_valid_cert"] = True
        WSGIRequestHandler.log_request = lambda *args, **kw: None   # quiet: one line per call is noise
        host, port = hostport(self.a.api)
        server = make_server(host, port, self.wsgi(), threaded=True)
        threading.Thread(target=server.serve_forever, name="iotcore-api", daemon=True).start()

    def start_broker(self) -> None:
        sock = self.state / "authz.sock"
        if len(str(sock)) > 100:   # sun_path holds 108 bytes
            sock = Path(tempfile.mkdtemp(prefix="iotcore-")) / "authz.sock"
        AuthzServer(str(sock), self.authz).start()
        plugin = build_plugin(self.state / "iotcore_auth.so")
        tls = (f"certfile {self.a.server_cert}\nkeyfile {self.a.server_key}\ncapath {self.cas}\n"
               "require_certificate true\nuse_identity_as_username false\ntls_version tlsv1.2\nmax_qos 1\n")
        conf = ["# Written by lab/iotcore/server.py: the AWS IoT Core stand-in's data plane",
                "user root", "per_listener_settings false", "allow_anonymous false", "persistence false",
                f"log_dest file {self.state / 'mosquitto.log'}", "log_type error", "log_type warning", "log_type notice",
                "log_type information", "connection_messages true", "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "max_keepalive 1200", "set_tcp_nodelay true",
                # AWS IoT: 128 KB payloads (+ room for topic and properties); QoS <= 1 per listener
                "max_packet_size 139264", f"plugin {plugin}", f"plugin_opt_socket {sock}", ""]
        for spec in self.a.mqtt:
            host, port = hostport(spec)
            conf += [f"listener {port} {host}", tls]
        (self.state / "mosquitto.conf").write_text("\n".join(conf))
        logf = open(self.state / "mosquitto.out", "ab")   # what mosquitto prints before its log is open
        self.mosquitto = subprocess.Popen(["mosquitto", "-c", str(self.state / "mosquitto.conf")],
                                          stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for spec in self.a.mqtt:
            wait_port(*hostport(spec), timeout=30, alive=lambda: self.mosquitto.poll() is None)

    def stop(self, *_):
        if self.mosquitto and self.mosquitto.poll() is None:
            self.mosquitto.terminate()
            try:
                self.mosquitto.wait(5)
            except subprocess.TimeoutExpired:
                self.mosquitto.kill()
        os._exit(0)

    def run(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # 1,000s of device connections
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.write_cas()
        self.start_api()
        wait_port(*hostport(self.a.api), timeout=30)
        if self.a.mqtt:
            self.start_broker()
        ready = {"pid": os.getpid(), "api": f"http://{self.a.api}", "mqtt": self.a.mqtt,
                 "endpoint": self.control.endpoint("iot:Data-ATS", self.a.region),
                 "mosquitto_pid": self.mosquitto.pid if self.mosquitto else None, "region": self.a.region}
        tmp = self.state / "ready.json.tmp"
        tmp.write_text(json.dumps(ready, indent=2))
        tmp.replace(self.state / "ready.json")
        log.info("ready: %s", ready)
        if self.mosquitto is None:
            signal.pause()
        while self.mosquitto.poll() is None:
            time.sleep(0.5)
        log.error("mosquitto exited with %s: see %s", self.mosquitto.returncode, self.state / "mosquitto.log")
        sys.exit(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--api", required=True, help="HOST:PORT of the control plane (HTTP)")
    ap.add_argument("--mqtt", action="append", default=[], help="HOST:PORT of an MQTT/TLS listener")
    ap.add_argument("--endpoint-prefix", default="a1b2c3d4e5f6g7",
                    help="the ATS endpoint is <prefix>-ats.iot.<region>.amazonaws.com")
    ap.add_argument("--server-cert")
    ap.add_argument("--server-key")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--seed", default=None, help="seed of the registration code (random)")
    ap.add_argument("--detach-delay", type=float, default=2.0,
                    help="seconds a DetachThingPrincipal takes to propagate (AWS: several seconds)")
    ap.add_argument("--thing-type-delete-delay", type=float, default=300.0,
                    help="seconds a thing type must have been deprecated before DeleteThingType (AWS: 5 minutes)")
    a = ap.parse_args(argv)
    if a.mqtt and not (a.server_cert and a.server_key):
        ap.error("--mqtt needs --server-cert and --server-key")
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    StandIn(a).run()


if __name__ == "__main__":
    main()
