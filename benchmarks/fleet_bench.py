#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet-scale benchmark of the registry step (issue 5), in ONE run, against a moto server it starts.

Prints wall time, controller CPU and API calls per device of the batched path (ensure_fleet, as
iot_fleet runs it, and one real iot_fleet run through ansible-playbook), the per-host reference
(4 delegated module tasks per host), moto's own ceiling, a run through a throttling stand-in,
a no-change rerun, and the device side from a lab report if one exists; then PASS/FAIL per target.
Targets are ratios measured in the same run, since the machine is shared and noisy.

    .venv/bin/python benchmarks/fleet_bench.py            # full run (~3-5 min)
    .venv/bin/python benchmarks/fleet_bench.py --quick    # smoke run (< 60 s)
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
PROXY = os.path.join(HERE, "throttle_proxy.py")
REGION = "us-east-1"
CREDENTIALS = dict(aws_access_key_id="testing", aws_secret_access_key="testing")
POLICY = "bench-device"
# the operations a device's first run writes, capped in the throttling stand-in
CAPPED = ("RegisterCertificate", "CreateThing", "AttachPolicy", "AttachThingPrincipal")

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import MANAGED_THING_GROUP  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices  # noqa: E402
from tests.support.iotcore import IoTCore  # noqa: E402
from tests.support.procs import free_port  # noqa: E402
from tests.support.procs import port_open  # noqa: E402
from tests.support.procs import wait_for  # noqa: E402
from tests.support.recorders import ApiCallCounter  # noqa: E402


# ----------------------------------------------------------------------------------------- processes
def _listening(port, proc):
    """True once the child accepts connections on the loopback port; RuntimeError when it exited."""
    if proc.poll() is not None:
        raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}")
    return port_open("127.0.0.1", port, timeout=0.5)


class Child:
    """A server process this script starts on a free loopback port and stops by its PID."""

    def __init__(self, argv_for_port, log):
        self.argv_for_port, self.log = argv_for_port, log
        self.proc = self.port = None

    def start(self):
        for _attempt in range(5):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(self.argv_for_port(self.port), stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: _listening(self.port, self.proc), 30.0, f"127.0.0.1:{self.port}")
                return self
            except RuntimeError:
                continue
        raise RuntimeError(f"could not start {self.argv_for_port(0)}; see {self.log}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait()


def http_json(url, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else None


def boto3_iot(endpoint, max_attempts=5, pool=32):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "iot",
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": max_attempts, "mode": "legacy"}, max_pool_connections=pool),
        **CREDENTIALS,
    )


class CPU:
    """Process CPU time (this process; children separately) and wall time of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child0 = c.ru_utime + c.ru_stime
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child_cpu = c.ru_utime + c.ru_stime - self.child0


# ------------------------------------------------------------------------------------------- fixture
class Lab:
    """The fleet CA (registered ACTIVE) and the device policy on the stand-in's control plane, and the CA's
    files the iot_fleet runs read."""

    def __init__(self, work, core, name="bench-fleet-ca", policy=POLICY, policy_document=None, **register):
        """``register``: core.register_ca's options (auto_registration, registration_config for JITP)."""
        self.work, self.core, self.moto_url = work, core, core.url
        ca = core.register_ca(core.new_ca(name), **register)
        self.ca_cert, self.ca_key = ca.cert, ca.key
        self.ca_pem_path = os.path.join(work, name + ".pem")
        self.ca_key_path = os.path.join(work, name + ".key")
        with open(self.ca_pem_path, "w") as f:
            f.write(ca.pem)
        with open(self.ca_key_path, "w") as f:
            f.write(_x509.private_key_pem(self.ca_key))
        os.chmod(self.ca_key_path, 0o600)
        core.put_policy(policy, policy_document or {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})

    def spec(self, prefix, n, pki_dir=None):
        devices = validate_devices(
            [dict(thing_name=f"{prefix}-{i:05d}", attributes=dict(site="bench", index=str(i))) for i in range(n)]
        )
        return FleetSpec(devices, self.ca_cert, self.ca_key, pki_dir or os.path.join(self.work, "pki-" + prefix),
                         policy_name=POLICY)


def batched(lab, endpoint, prefix, n, workers, rates=None, burst=1.0):
    """ensure_fleet in this process, as iot_fleet runs it; returns measurements."""
    raw = boto3_iot(endpoint, pool=max(10, workers + 2))
    counter = ApiCallCounter().attach(raw)
    limiter = RateLimiter(rates or {}, burst=burst)
    client = IoTClient(raw, limiter=limiter)
    spec = lab.spec(prefix, n)
    with CPU() as m:
        result = ensure_fleet(client, spec, workers=workers)
    calls = counter.snapshot()
    failed = [d for d in result["devices"] if d["failed"]]
    return dict(n=n, wall=m.wall, cpu=m.cpu, calls=calls, failed=len(failed),
                failures=[d["msg"] for d in failed[:3]], changed=sum(1 for d in result["devices"] if d["changed"]),
                limiter=limiter.stats())


def ceiling(endpoint, threads, seconds):
    """Bare boto3 calls/s against the server: describe_thing + create_thing loops in `threads` threads."""
    counts = [0] * threads
    tag = time.monotonic_ns()

    # made before the clock starts; botocore's default retries, as moto answers a rare HTTP 500 under concurrency
    clients = [boto3_iot(endpoint) for _t in range(threads)]

    def loop(t):
        raw = clients[t]
        i = 0
        while time.monotonic() < stop:  # `stop` is set below, just before the threads start
            name = f"ceiling-{tag}-{t}-{i}"
            try:
                raw.describe_thing(thingName=name)
            except raw.exceptions.ResourceNotFoundException:
                pass
            raw.create_thing(thingName=name)
            counts[t] += 2
            i += 1

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    stop = time.monotonic() + seconds
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


# The calls ensure_device makes for a new device, in its order: the replay makes exactly these.
REPLAY_CALLS = ("DescribeThing", "RegisterCertificate", "CreateThing", "AddThingToThingGroup", "AttachPolicy",
                "AttachThingPrincipal")


def replay_ceiling(lab, endpoint, threads, n, prefix):
    """Bare boto3 doing a new device's calls (REPLAY_CALLS: the managed thing group's mark included, as
    ensure_fleet makes it) for `n` devices whose certificates are made beforehand (not timed): the server's
    ceiling for exactly this work, without any of the collection's code. Returns calls/s."""
    import queue

    ca_pem = _x509.certificate_pem(lab.ca_cert)
    work = queue.Queue()
    for i in range(n):
        key = _x509.generate_private_key("ec")
        name = f"{prefix}-{i:05d}"
        work.put((name, _x509.certificate_pem(_x509.issue_certificate(lab.ca_cert, lab.ca_key, name,
                                                                      key.public_key()))))
    clients = [boto3_iot(endpoint) for _t in range(threads)]
    calls = [0] * threads
    try:   # the group ensure_fleet makes once per run (not timed)
        clients[0].create_thing_group(thingGroupName=MANAGED_THING_GROUP)
    except clients[0].exceptions.ResourceAlreadyExistsException:
        pass

    def loop(t):
        raw = clients[t]
        while True:
            try:
                name, pem = work.get_nowait()
            except queue.Empty:
                return
            try:
                raw.describe_thing(thingName=name)
            except raw.exceptions.ResourceNotFoundException:
                pass
            arn = raw.register_certificate(certificatePem=pem, caCertificatePem=ca_pem, status="ACTIVE")[
                "certificateArn"]
            raw.create_thing(thingName=name, attributePayload={"attributes": {"site": "bench"}})
            raw.add_thing_to_thing_group(thingGroupName=MANAGED_THING_GROUP, thingName=name)
            raw.attach_policy(policyName=POLICY, target=arn)
            raw.attach_thing_principal(thingName=name, principal=arn)
            calls[t] += len(REPLAY_CALLS)

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(calls) / (time.perf_counter() - t0)


# --------------------------------------------------------------------------------------- ansible runs
def ansible_env(work):
    env = dict(os.environ)
    env.update(ANSIBLE_HOME=os.path.join(work, "ansible-home"), ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="False",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    return env


MODULE_DEFAULTS = """  module_defaults:
    group/iotfleet.aws.iot:
      endpoint_url: "{endpoint}"
      region: {region}
      access_key: testing
      secret_key: testing
"""


def playbook(work, name, text, inventory, forks, log_name):
    bin_dir = os.path.dirname(sys.executable)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    log = os.path.join(work, log_name)
    with CPU() as m, open(log, "wb") as out:
        rc = subprocess.call([os.path.join(bin_dir, "ansible-playbook"), "-i", inventory, "-f", str(forks), path],
                             stdout=out, stderr=subprocess.STDOUT, env=ansible_env(work), cwd=work)
    if rc != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"ansible-playbook {name} failed (rc {rc}), see {log}:\n{tail}")
    return m


def module_run(lab, endpoint, prefix, n, workers):
    """One real iot_fleet run through ansible-playbook (Python start, imports, arg parsing included)."""
    devices = [dict(thing_name=f"{prefix}-{i:05d}", attributes=dict(site="bench", index=str(i))) for i in range(n)]
    vars_file = os.path.join(lab.work, f"{prefix}-devices.json")
    with open(vars_file, "w") as f:
        json.dump(dict(fleet_devices=devices), f)
    inventory = os.path.join(lab.work, "localhost.ini")
    with open(inventory, "w") as f:
        f.write(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    text = f"""- hosts: localhost
  gather_facts: false
{MODULE_DEFAULTS.format(endpoint=endpoint, region=REGION)}  vars_files: ["{vars_file}"]
  tasks:
    - iotfleet.aws.iot_fleet:
        ca_certificate: "{lab.ca_pem_path}"
        ca_private_key: "{lab.ca_key_path}"
        pki_dir: "{os.path.join(lab.work, 'pki-' + prefix)}"
        policy_name: {POLICY}
        workers: {workers}
        rate_limits: {json.dumps({op: 0 for op in DEFAULT_RATE_LIMITS})}
        devices: "{{{{ fleet_devices }}}}"
"""
    m = playbook(lab.work, f"{prefix}.yml", text, inventory, 1, f"{prefix}.log")
    return dict(n=n, wall=m.wall, cpu=m.child_cpu)


def per_host_run(lab, endpoint, prefix, n, forks):
    """The reference: every host runs 4 delegated module tasks (certificates made beforehand, not timed)."""
    pki = os.path.join(lab.work, "pki-" + prefix)
    os.makedirs(pki, exist_ok=True)
    for i in range(n):
        name = f"{prefix}-{i:05d}"
        key = _x509.generate_private_key("ec")
        cert = _x509.issue_certificate(lab.ca_cert, lab.ca_key, name, key.public_key())
        with open(os.path.join(pki, name + ".pem"), "w") as f:
            f.write(_x509.certificate_pem(cert))
    inventory = os.path.join(lab.work, f"{prefix}.ini")
    with open(inventory, "w") as f:
        f.write(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n[fleet]\n")
        f.write("".join(f"{prefix}-{i:05d}\n" for i in range(n)))
    text = f"""- hosts: fleet
  gather_facts: false
{MODULE_DEFAULTS.format(endpoint=endpoint, region=REGION)}  tasks:
    - name: Certificate
      iotfleet.aws.iot_certificate:
        certificate: "{pki}/{{{{ inventory_hostname }}}}.pem"
        ca_certificate: "{lab.ca_pem_path}"
        status: ACTIVE
      delegate_to: localhost
      register: cert
    - name: Thing
      iotfleet.aws.iot_thing:
        name: "{{{{ inventory_hostname }}}}"
        attributes: {{site: bench}}
      delegate_to: localhost
    - name: Policy attachment
      iotfleet.aws.iot_policy_attachment:
        policy_name: {POLICY}
        target: "{{{{ cert.certificate_arn }}}}"
      delegate_to: localhost
    - name: Thing principal
      iotfleet.aws.iot_thing_principal:
        thing_name: "{{{{ inventory_hostname }}}}"
        principal: "{{{{ cert.certificate_arn }}}}"
      delegate_to: localhost
"""
    m = playbook(lab.work, f"{prefix}.yml", text, inventory, forks, f"{prefix}.log")
    return dict(n=n, wall=m.wall, cpu=m.child_cpu, forks=forks)


# ------------------------------------------------------------------------------------------ throttle
def throttled_run(lab, moto_url, prefix, n, workers, cap, proxy_burst, limiter_burst, paced=True):
    rates = {op: cap for op in CAPPED}
    proxy = Child(
        lambda port: [sys.executable, PROXY, "--upstream", moto_url, "--port", str(port), "--rates",
                      json.dumps(rates), "--burst", str(proxy_burst)],
        os.path.join(lab.work, "proxy.log"),
    ).start()
    try:
        limits = dict(DEFAULT_RATE_LIMITS)
        limits.update(rates)
        if not paced:  # only the retries of ThrottlingException keep the devices from failing
            limits = {op: 0 for op in limits}
        result = batched(lab, proxy.url, prefix, n, workers, rates=limits, burst=limiter_burst)
        stats = http_json(proxy.url + "/__proxy/stats")
    finally:
        proxy.stop()
    per_op = {}
    for op in CAPPED:
        s = stats.get(op) or {}
        span = (s.get("last") or 0) - (s.get("first") or 0)
        achieved = (s.get("forwarded", 0) - 1) / span if span > 0 else 0.0
        per_op[op] = dict(forwarded=s.get("forwarded", 0), throttled=s.get("throttled", 0), rate=achieved,
                          fraction=achieved / cap)
    result.update(cap=cap, per_op=per_op, throttled=sum(s.get("throttled", 0) for s in stats.values()),
                  end_to_end=(n / result["wall"]) / cap)
    return result


# ------------------------------------------------------------------------------------------- report
def per_device(calls, n):
    return {op: round(c / n, 2) for op, c in sorted(calls.items())}


def fmt_calls(calls, n):
    return ", ".join(f"{op} {v:g}" for op, v in per_device(calls, n).items()) or "-"


def retried(run):
    return sum(run["calls"]["attempts"].values()) - sum(run["calls"]["calls"].values())


def device_side(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fleet-scale benchmark of the registry step (issue 5).")
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 60 s)")
    parser.add_argument("--sizes", default="200,1000", help="batched fleet sizes (the largest is rerun)")
    parser.add_argument("--module-n", type=int, default=200, help="devices of the real iot_fleet run")
    parser.add_argument("--per-host", default="50", help="per-host reference sizes, e.g. 50,200")
    parser.add_argument("--forks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--ceiling-seconds", type=float, default=6.0)
    parser.add_argument("--pairs", type=int, default=3,
                        help="the largest batched run and the new-device replay, measured this many times in turn "
                             "(the verdict takes the median pair)")
    parser.add_argument("--replay-n", type=int, default=0,
                        help="devices of the bare-boto3 new-device replay (default: the largest batched size, so the "
                             "reference does exactly the work it is compared with, ramp-up and tail included)")
    parser.add_argument("--throttle-workers", type=int, default=32,
                        help="workers of the throttled run: at least cap x per-device latency to keep every API busy")
    parser.add_argument("--cap", type=float, default=0.0,
                        help="per-operation cap (requests/s) of the throttling stand-in; default: 20, or less when the "
                             "measured server ceiling could not serve a first run's calls at that rate with 2x "
                             "headroom")
    parser.add_argument("--throttle-n", type=int, default=300)
    parser.add_argument("--proxy-burst", type=float, default=2.0)
    parser.add_argument("--limiter-burst", type=float, default=1.0)
    parser.add_argument("--device-report",
                        default=os.environ.get("IOTFLEET_DEVICE_REPORT",
                                               os.path.join(ROOT, ".cache", "device-report.json")),
                        help="the lab's device-side JSON (written by tests/molecule/test_lab_fleet.py: pis, "
                             "first_run/rerun with runs_per_pi and seconds_per_pi); default $IOTFLEET_DEVICE_REPORT "
                             "or .cache/device-report.json")
    parser.add_argument("--json", help="also write all measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.module_n, args.per_host, args.throttle_n, args.forks = "30,60", 30, "4", 40, 4
        args.ceiling_seconds = 2.0
    sizes = sorted(int(x) for x in args.sizes.split(",") if x)
    args.replay_n = args.replay_n or sizes[-1]
    per_host_sizes = [int(x) for x in args.per_host.split(",") if x]

    work = tempfile.mkdtemp(prefix="fleet-bench-")
    # the stand-in's control plane (moto's IoT backend with AWS's checks), no broker: the AWS API server of the tests
    core = IoTCore(os.path.join(work, "iotcore"), prefix="bench", broker=False)
    out = dict(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpus=os.cpu_count(),
               load=os.getloadavg()[0], args=vars(args))
    try:
        core.start()
        lab = Lab(work, core)
        print(f"# stand-in control plane on {core.url} (pid {core.proc.pid}), work dir {work}, load {out['load']:.1f} "
              f"on {out['cpus']} CPUs", flush=True)
        out["ceilings"] = [ceiling(core.url, args.workers, args.ceiling_seconds)]
        print(f"# ceiling {out['ceilings'][0]:.0f} calls/s", flush=True)
        unlimited = {op: 0 for op in DEFAULT_RATE_LIMITS}
        out["batched"] = {}
        big = sizes[-1]
        for n in sizes[:-1]:
            out["batched"][n] = batched(lab, core.url, f"b{n}", n, args.workers, rates=unlimited)
            print(f"# batched {n}: {out['batched'][n]['wall']:.1f} s", flush=True)
        # The largest run against the replay in interleaved pairs: each run right after a replay of the same
        # work, on the same server state (the server slows as it fills); the median pair is the figure, as one
        # pair swings by 15 % and more on a shared machine.
        out["pairs"] = []
        for k in range(args.pairs):
            rate = replay_ceiling(lab, core.url, args.workers, args.replay_n, f"r{k}")
            run = batched(lab, core.url, f"b{big}" if k == 0 else f"b{big}-{k}", big, args.workers, rates=unlimited)
            total = sum(run["calls"]["calls"].values())
            out["pairs"].append(dict(replay=rate, wall=run["wall"], calls=total, failed=run["failed"],
                                     x=run["wall"] / (total / rate)))
            if k == 0:
                out["batched"][big] = run   # its devices are the rerun's
            print(f"# pair {k + 1}: new-device replay {rate:.0f} calls/s, batched {big} {run['wall']:.1f} s = "
                  f"{out['pairs'][-1]['x']:.2f}x", flush=True)
        out["replays"] = [p["replay"] for p in out["pairs"]]
        out["ceilings"].append(ceiling(core.url, args.workers, args.ceiling_seconds))
        print(f"# after the N={big} runs: ceiling {out['ceilings'][-1]:.0f} calls/s", flush=True)
        out["ceiling"] = max(out["ceilings"])  # the higher one: the conservative reference for reads
        out["replay"] = statistics.median(out["replays"])
        out["rerun"] = batched(lab, core.url, f"b{big}", big, args.workers, rates=unlimited)
        print(f"# rerun {big}: {out['rerun']['wall']:.1f} s", flush=True)
        out["module"] = module_run(lab, core.url, f"m{args.module_n}", args.module_n, args.workers)
        print(f"# iot_fleet module {args.module_n}: {out['module']['wall']:.1f} s", flush=True)
        out["per_host"] = {}
        for n in per_host_sizes:
            out["per_host"][n] = per_host_run(lab, core.url, f"h{n}", n, args.forks)
            print(f"# per-host {n}: {out['per_host'][n]['wall']:.1f} s", flush=True)
        first = out["batched"][big]
        calls_per_device = sum(first["calls"]["calls"].values()) / big
        cap = args.cap or max(2.0, min(20.0, round(out["replay"] / calls_per_device / 2)))
        out["throttle"] = throttled_run(lab, core.url, f"t{args.throttle_n}", args.throttle_n, args.throttle_workers,
                                        cap, args.proxy_burst, args.limiter_burst)
        print(f"# throttled {args.throttle_n}: {out['throttle']['wall']:.1f} s", flush=True)
        n = max(1, args.throttle_n // 2)
        out["throttle_unpaced"] = throttled_run(lab, core.url, f"u{n}", n, args.throttle_workers, cap,
                                                args.proxy_burst, args.limiter_burst, paced=False)
        print(f"# throttled without client limiter {n}: {out['throttle_unpaced']['wall']:.1f} s", flush=True)
    finally:
        core.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out["device"] = device_side(args.device_report)
    verdicts = report(out, sizes, per_host_sizes, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return 0 if all(verdicts) else 1


def report(out, sizes, per_host_sizes, args):
    ceil, replay = out["ceiling"], out["replay"]
    print()
    print(f"Fleet registry benchmark - {out['started']} - {out['cpus']} CPUs, load {out['load']:.1f} at start")
    print(f"moto ceiling, bare boto3 in {args.workers} threads:")
    print(f"  describe_thing + create_thing loops:       {ceil:6.0f} calls/s "
          f"({', '.join(f'{c:.0f}' for c in out['ceilings'])}: before and after the largest runs, the higher one) - "
          "reference for reads (rerun)")
    print(f"  new-device replay ({', '.join(REPLAY_CALLS)}; "
          f"certificates made beforehand): {replay:.0f} calls/s ({', '.join(f'{c:.0f}' for c in out['replays'])}: "
          "one before each of the largest runs, the median) - reference for first runs (x ceil)")
    print()
    row = "{:<34} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7}  {}"
    print(row.format("run", "N", "wall s", "CPU s", "ms/dev", "calls/dev", "x ceil", "calls per device by operation"))
    print("-" * 140)
    for n in sizes:
        b = out["batched"][n]
        total = sum(b["calls"]["calls"].values())
        x = b["wall"] / (total / replay)
        b["x_ceiling"] = x
        b["x_simple_ceiling"] = b["wall"] / (total / ceil)
        print(row.format("batched ensure_fleet (in-process)", n, f"{b['wall']:.2f}", f"{b['cpu']:.2f}",
                         f"{1000 * b['wall'] / n:.1f}", f"{total / n:.2f}", f"{x:.2f}",
                         fmt_calls(b["calls"]["calls"], n)))
    r = out["rerun"]
    rn = sizes[-1]
    total = sum(r["calls"]["calls"].values())
    print(row.format("no-change rerun (in-process)", rn, f"{r['wall']:.2f}", f"{r['cpu']:.2f}",
                     f"{1000 * r['wall'] / rn:.1f}", f"{total / rn:.2f}", f"{r['wall'] / (total / ceil):.2f}",
                     fmt_calls(r["calls"]["calls"], rn)))
    m = out["module"]
    print(row.format("iot_fleet via ansible-playbook", m["n"], f"{m['wall']:.2f}", f"{m['cpu']:.2f}",
                     f"{1000 * m['wall'] / m['n']:.1f}", "", "", "(CPU: ansible-playbook + module processes)"))
    for n in per_host_sizes:
        h = out["per_host"][n]
        print(row.format(f"per-host 4 tasks, forks {h['forks']}", n, f"{h['wall']:.2f}", f"{h['cpu']:.2f}",
                         f"{1000 * h['wall'] / n:.1f}", "4 tasks", "", f"(CPU {h['cpu'] / n:.2f} s/device)"))
    t = out["throttle"]
    total = sum(t["calls"]["calls"].values())
    print(row.format(f"throttled stand-in, cap {t['cap']:g}/s", t["n"], f"{t['wall']:.2f}", f"{t['cpu']:.2f}",
                     f"{1000 * t['wall'] / t['n']:.1f}", f"{total / t['n']:.2f}", "",
                     fmt_calls(t["calls"]["calls"], t["n"])))
    print()
    print(f"Throttling stand-in (proxy token bucket {t['cap']:g}/s, burst {args.proxy_burst:g}; client limiter "
          f"{t['cap']:g}/s, burst {args.limiter_burst:g}; {args.throttle_workers} workers):")
    for op, s in t["per_op"].items():
        print(f"  {op:<22} forwarded {s['forwarded']:>5}  throttled {s['throttled']:>4}  achieved {s['rate']:6.2f}/s"
              f" = {100 * s['fraction']:5.1f} % of cap")
    print(f"  devices/s end to end: {t['n'] / t['wall']:.2f} = {100 * t['end_to_end']:.1f} % of cap;"
          f" throttled responses {t['throttled']}; HTTP retries inside botocore "
          f"{retried(t)};"
          f" failed devices {t['failed']}")
    u = out["throttle_unpaced"]
    print(f"  without the client limiter ({u['n']} devices, {args.throttle_workers} workers): throttled responses "
          f"{u['throttled']}, HTTP retries inside botocore {retried(u)}, "
          f"worst operation {100 * min(s['fraction'] for s in u['per_op'].values()):.1f} % of cap, "
          f"{u['n'] / u['wall']:.2f} devices/s, failed devices {u['failed']}")
    print()
    dev = out["device"]
    if dev:
        for phase in ("first_run", "rerun"):
            d = dev.get(phase) or {}
            runs = d.get("runs_per_pi", d.get("module_runs_per_pi", "n/a"))
            print(f"Device side ({dev.get('pis', d.get('pis', '?'))} emulated ARMv6 Pis), {phase}: "
                  f"{d.get('seconds_per_pi', 'n/a')} s per Pi, {runs} remote module runs per Pi"
                  + (f", wall {d['wall_seconds']} s" if "wall_seconds" in d else ""))
    else:
        print("Device side (ARMv6 Pis, seconds and remote module runs per Pi): not measured "
              f"(no device report at {args.device_report})")
    print()

    verdicts = []

    def verdict(ok, text, scale_dependent=False):
        if scale_dependent and args.quick and not ok:
            # a smoke run's N is too small for the fixed costs (ansible-playbook start) to amortise
            print(f"INFO  {text} [--quick: N too small for this ratio; not judged]")
            return
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    hn = max(per_host_sizes)
    h = out["per_host"][hn]
    per_host_ms = h["wall"] / hn
    module_ms = m["wall"] / m["n"]
    ratio = per_host_ms / module_ms
    in_proc = out["batched"][min(sizes)]
    verdict(ratio >= 50, f"batched >= 50x faster per device than per-host: {ratio:.0f}x (iot_fleet module run "
                         f"N={m['n']} {1000 * module_ms:.1f} ms/device vs per-host N={hn} "
                         f"{1000 * per_host_ms:.0f} ms/device; in-process ensure_fleet N={min(sizes)}: "
                         f"{per_host_ms / (in_proc['wall'] / in_proc['n']):.0f}x)", scale_dependent=True)
    b = out["batched"][sizes[-1]]
    # the replay made the module's own per-device calls (a run's few fleet-wide reads and the group aside)
    replayed = sorted(op for op, c in b["calls"]["calls"].items() if c >= sizes[-1] / 2) == sorted(REPLAY_CALLS)
    pairs = out["pairs"]
    failed = sum(p["failed"] for p in pairs)   # every run's failed devices: the median must not hide one
    x = statistics.median(p["x"] for p in pairs)
    each = "; ".join(f"{p['calls']} calls in {p['wall']:.1f} s vs {p['replay']:.0f} calls/s = {p['x']:.2f}x" for p in pairs)
    verdict(x <= 1.2 and failed == 0 and replayed,
            f"N={sizes[-1]} within 1.2x of the server ceiling: {x:.2f}x of the new-device replay, the median of "
            f"{len(pairs)} pairs (a replay, then the run: {each}; "
            f"{'the same operations' if replayed else 'NOT the operations the module made'}; the first run "
            f"{b['x_simple_ceiling']:.2f}x of the describe+create ceiling {ceil:.0f} calls/s; failed {failed})",
            scale_dependent=failed == 0)
    worst = min(s["fraction"] for s in t["per_op"].values())
    verdict(worst >= 0.95 and t["failed"] == 0,
            f"throttled: >= 95 % of cap: worst operation {100 * worst:.1f} %, failed devices {t['failed']}")
    verdict(u["failed"] == 0 and u["throttled"] > 0,
            f"throttled without the client limiter: {u['throttled']} ThrottlingException answers retried, "
            f"failed devices {u['failed']}")
    verdict(r["calls"]["writes"] == 0 and r["failed"] == 0 and r["changed"] == 0
            and r["calls"]["reads"] / rn <= 1.1,
            f"no-change rerun of {rn}: {r['calls']['writes']} writes, {r['calls']['reads'] / rn:.2f} reads/device "
            f"(target <= 1.1: the registry read in pages), {r['wall']:.1f} s, changed devices {r['changed']}",
            # the pages of the whole account's things are a fixed cost a smoke run's N cannot amortise
            scale_dependent=r["calls"]["writes"] == 0 and r["failed"] == 0 and r["changed"] == 0)
    for name, res in list(out["batched"].items()) + [("rerun", r), ("throttle", t), ("unpaced", u)]:
        if res["failed"]:
            print(f"  {name}: {res['failed']} failed, e.g. {res['failures']}")
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
