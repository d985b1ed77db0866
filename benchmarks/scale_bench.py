#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scale of the cloud side of provision.yml past 1,000 devices (issue 12 item 4, issue 13 progress).

The registry step exactly as provision.yml runs it - ``include_role: iotfleet.aws.registry,
tasks_from: devices`` on localhost, then the report template of provision.yml - through
ansible-playbook, with a generated inventory of N hosts in group ``pis`` that are never contacted,
against the IoT Core stand-in (tests/support/iotcore.py), through a counting proxy
(benchmarks/throttle_proxy.py without caps) that counts the API calls by operation. Cases
HOSTS:DEVICES (``--cases``): an inventory of HOSTS hosts of which DEVICES were prepared (registered),
each a first run (every device new) and a no-change rerun. Default (what ``make bench`` runs)
1000:1000 and 10000:10000: 10,000 new devices and their rerun (811 s at load 11-27); ``--cases
1000:1000,10000:1000`` keeps a fixed 1,000 new devices within a 10,000-host inventory (~4-5 min).
Printed per run:
wall, per-device wall, the controller's CPU and peak memory (ansible-playbook and its module process),
the play-level work (the device list from the inventory, the report) apart from the module process,
calls per device, the progress lines the operator saw. Then JITP (``--jitp-n``): the registry step in
registration jitp (certificates only, IoT calls counted: 0) and the stand-in provisioning the simulated
devices that connect at once. PASS/FAIL per target:

- per-device cost of the last case within 1.1x of the first (devices growing with hosts, the default:
  the whole run; a fixed number of devices: the module's, and the play-level cost of each extra host is
  printed);
- the rerun: reads/device <= 1.1, 0 writes, changed=0, with progress lines shown;
- play-level work per host linear (within 1.5x: it is small, so timer noise weighs more);
- JITP: 0 IoT calls from the controller, every device provisioned and verified, the fleet faster than
  the api mode's AWS floor (N >= 1,000).

    .venv/bin/python benchmarks/scale_bench.py                  # 10,000 new devices, then their rerun
    .venv/bin/python benchmarks/scale_bench.py --quick          # 100:100, 1000:100, JITP 100
    .venv/bin/python benchmarks/scale_bench.py --cases 1000:1000,10000:1000   # 1,000 new in 10,000 hosts
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from fleet_bench import PROXY, REGION, Child, Lab, ansible_env, http_json  # noqa: E402
from tests.support.iotcore import IoTCore, module_defaults  # noqa: E402
from tests.support.recorders import is_write_operation  # noqa: E402

REPORT_TEMPLATE = os.path.join(ROOT, "playbooks", "templates", "report.j2")
MODULE_TASK = "Register every device in one batched run"
REPORT_TASK = "Gather the report (one entry per Pi)"
DEVICE_LIST_TASK = "Build the device list (the registry role's expression, timed on its own)"

PLAYBOOK = """- name: The cloud side of provision.yml for {n} hosts (never contacted)
  hosts: localhost
  connection: local
  gather_facts: false
{module_defaults}
  vars:
    ansible_python_interpreter: "{python}"
    ca_certificate_path: "{ca_pem}"
    ca_private_key_path: "{ca_key}"
    registry_policy_name: {policy}
    registry_rate_limits: {rates}
    _report_hosts: "{{{{ groups['pis'] }}}}"
  tasks:
    - name: {device_list_task}
      ansible.builtin.set_fact:
        _bench_devices: "{{{{ groups['pis'] | iotfleet.aws.fleet_devices(hostvars) | length }}}}"
    - name: Register the fleet
      ansible.builtin.include_role:
        name: iotfleet.aws.registry
        tasks_from: devices
    - name: {report_task}
      ansible.builtin.set_fact:
        iotfleet_report: "{{{{ lookup('ansible.builtin.template', '{report}') | trim | from_json }}}}"
    - name: Count the report's entries
      ansible.builtin.debug:
        msg: "report entries {{{{ iotfleet_report | length }}}}, devices {{{{ registry_fleet.devices | length }}}}, changed devices {{{{ registry_fleet.devices | selectattr('changed') | list | length }}}}, failed {{{{ registry_fleet.failed_devices | length }}}}"
"""


def write_inventory(work, n, prefix="pi", devices=None):
    """N hosts in group pis. ``devices`` < N: the preparation play "ran" and prepared only the first
    ``devices`` hosts, so the registry registers those and the others are only inventory (as a fleet
    with hosts offline at provisioning time): the play-level work is over N hosts, the module over
    ``devices``."""
    d = os.path.join(work, f"inv-{prefix}-{n}-{devices or n}")
    os.makedirs(os.path.join(d, "group_vars"), exist_ok=True)
    partial = devices is not None and devices < n
    with open(os.path.join(d, "pis.ini"), "w") as f:
        f.write("localhost ansible_connection=local" + (" device_prepare_ran=True" if partial else "") + "\n[pis]\n")
        # names unique per case: each case registers its own devices; every 10th host names its thing and
        # attributes itself, as an operator's inventory does
        for i in range(n):
            host = f"{prefix}{n}x{devices or n}-{i:05d}.bench.lan"
            extra = " device_prepared=True" if partial and i < devices else ""
            if i % 10 == 0:
                extra += (f" iotfleet_thing_name={prefix}{n}x{devices or n}-named-{i:05d}"
                          f" iotfleet_thing_attributes='{{\"room\": \"r{i}\"}}'")
            f.write(host + extra + "\n")
    with open(os.path.join(d, "group_vars", "pis.yml"), "w") as f:
        f.write("---\niotfleet_thing_attributes:\n  site: bench\n")
    return d


def proc_cpu(pid):
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat; 0 when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeSampler:
    """Samples the process tree of ``pid`` (ansible-playbook): per process its peak RSS (VmHWM), its
    command line, and when it was first and last seen (for the module process's lifetime)."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.procs = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _children(self):
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                threads = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for t in threads:   # every thread: the iot_fleet action plugin starts the module from one
                try:
                    with open(f"/proc/{p}/task/{t}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
                except OSError:
                    pass
        return out

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            for p in self._children():
                try:
                    with open(f"/proc/{p}/status") as f:
                        status = f.read()
                    with open(f"/proc/{p}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                if not m:
                    continue
                rec = self.procs.setdefault(p, dict(cmd=cmd, hwm_kb=0, first=now, last=now, cpu=0.0))
                rec["hwm_kb"] = max(rec["hwm_kb"], int(m.group(1)))
                rec["last"] = now
                rec["cpu"] = max(rec["cpu"], proc_cpu(p))
                if "AnsiballZ" in cmd or "iot_fleet" in cmd:
                    rec["cmd"] = cmd
            self._stop.wait(self.interval)

    def peak_mb(self, match):
        return max((r["hwm_kb"] for r in self.procs.values() if match(r["cmd"])), default=0) / 1024

    def module_cpu(self):
        return max((r["cpu"] for r in self.procs.values() if "AnsiballZ_iot_fleet" in r["cmd"]), default=0.0)

    def module_seconds(self):
        spans = [r["last"] - r["first"] for r in self.procs.values() if "AnsiballZ_iot_fleet" in r["cmd"]]
        return max(spans, default=0.0)


def run_playbook(work, core_url, lab, n, inventory_dir, tag, workers, progress_every, extra=None, policy="bench-device",
                 server_pid=None):
    play = os.path.join(work, f"scale-{tag}.yml")
    with open(play, "w") as f:
        f.write(PLAYBOOK.format(n=n, module_defaults=module_defaults(core_url, region=REGION), python=sys.executable,
                                ca_pem=lab.ca_pem_path, ca_key=lab.ca_key_path, policy=policy,
                                rates=json.dumps({op: 0 for op in ("RegisterCertificate", "CreateThing",
                                                                   "AttachPolicy", "AttachThingPrincipal",
                                                                   "DescribeThing", "DescribeCertificate",
                                                                   "ListPrincipalThings", "UpdateThing")}),
                                device_list_task=DEVICE_LIST_TASK, report_task=REPORT_TASK, report=REPORT_TEMPLATE))
    timer = os.path.join(work, f"timer-{tag}.json")
    env = ansible_env(work)
    env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="bench_timer",
               BENCH_TIMER_FILE=timer, ANSIBLE_FORKS="8")
    log = os.path.join(work, f"scale-{tag}.log")
    bin_dir = os.path.dirname(sys.executable)
    argv = [os.path.join(bin_dir, "ansible-playbook"), "-i", os.path.join(inventory_dir, "pis.ini"), play,
            "-e", json.dumps(dict(registry_workers=workers, registry_progress_every=progress_every, **(extra or {})))]
    server0 = proc_cpu(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=inventory_dir)
        with TreeSampler(proc.pid) as sampler:
            pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    server_cpu = (proc_cpu(server_pid) - server0) if server_pid else 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(log) as f:
        text = f.read()
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook {play} failed (rc {proc.returncode}), see {log}:\n{text[-3000:]}")
    with open(timer) as f:
        tasks = json.load(f)
    seconds = {t["task"]: t["seconds"] for t in tasks}
    m = re.search(r"report entries (\d+), devices (\d+), changed devices (\d+), failed (\d+)", text)
    module_task = seconds.get(MODULE_TASK, 0.0)
    module_proc = sampler.module_seconds()
    return dict(
        n=n, wall=wall, cpu=usage.ru_utime + usage.ru_stime,
        report_entries=int(m.group(1)), devices=int(m.group(2)), changed=int(m.group(3)), failed=int(m.group(4)),
        progress=re.findall(r"iot_fleet: (\d+/\d+ devices[^\n]*)", text),
        module_task=module_task, module_process=module_proc, module_cpu=sampler.module_cpu(), server_cpu=server_cpu,
        device_list=seconds.get(DEVICE_LIST_TASK, 0.0), report=seconds.get(REPORT_TASK, 0.0),
        peak_playbook_mb=sampler.peak_mb(lambda c: "ansible-playbook" in c and "AnsiballZ" not in c),
        peak_module_mb=sampler.peak_mb(lambda c: "AnsiballZ_iot_fleet" in c),
        log=log,
    )


# ---------------------------------------------------------------------------------------------- JITP
def device_client_constants():
    """The device client's own JITP retry schedule (roles/device/files/iotfleet_device_client.py)."""
    from tests.support.imports import load_device_client

    module = load_device_client("iotfleet_device_client_bench")
    return module.RETRY_FIRST_DELAY, module.RETRY_MAX_DELAY


def jitp_devices_connect(core, pki_dir, in_flight, deadline_s):
    """Every device whose key and certificate the registry step left under pki_dir connects as the device
    client does in registration jitp: the first connect of an unregistered certificate is refused while the
    stand-in runs the CA's JITP template; the device retries after the client's own backoff (1 s, doubling:
    AWS allows one CONNECT per second and client id) until CONNACK 0, then publishes QoS 1 on `test` and
    waits for the PUBACK (verified). ``in_flight`` devices at a time (threads; paho's loop uses select(),
    so file descriptors stay under 1,024). Returns per-device records."""
    import concurrent.futures

    from tests.support.iotcore import MQTTv311, Device as Identity

    first_delay, max_delay = device_client_constants()
    names = sorted(os.listdir(os.path.join(pki_dir, "devices")))
    start = time.monotonic()
    deadline = start + deadline_s
    stop = threading.Event()

    def one(name):
        d = os.path.join(pki_dir, "devices", name)
        ident = Identity(name, None, "", d + "/certificate.pem", d + "/private.key", "")
        t0, delay, attempts, refused = time.monotonic(), first_delay, 0, 0
        while time.monotonic() < deadline:
            attempts += 1
            probe = core.probe(ident, timeout=30.0, protocol=MQTTv311)
            try:
                if probe.connack == 0:
                    t_conn = time.monotonic()
                    acked = probe.publish("test", b"iotfleet jitp bench")
                    return dict(name=name, ok=acked, t0=t0, connected=t_conn, verified=time.monotonic(),
                                attempts=attempts, refused=refused)
                refused += 1
            finally:
                probe.close()
            stop.wait(min(delay, max(0.0, deadline - time.monotonic())))   # the device client's backoff
            delay = min(delay * 2, max_delay)
        return dict(name=name, ok=False, t0=t0, attempts=attempts, refused=refused)

    with concurrent.futures.ThreadPoolExecutor(max_workers=in_flight) as pool:
        records = list(pool.map(one, names))
    return records, time.monotonic() - start


def jitp_part(work, core, proxy, n, in_flight, workers, progress_every):
    from ansible_collections.iotfleet.aws.plugins.filter.jitp_template import jitp_template
    from tests.support.iotcore import JITP_ROLE_ARN, fleet_policy

    policy = "bench-jitp-device"
    lab = Lab(work, core, name="bench-jitp-ca", policy=policy, policy_document=fleet_policy(),
              auto_registration=True,
              registration_config={"templateBody": json.dumps(jitp_template(policy)), "roleArn": JITP_ROLE_ARN})
    inventory = write_inventory(work, n, prefix="jitp")
    _calls, before = counted(proxy, {})
    r = run_playbook(work, proxy.url, lab, n, inventory, f"jitp-{n}", workers, progress_every,
                     extra=dict(iotfleet_registration="jitp"), policy=policy)
    r["calls"], _stats = counted(proxy, before)
    print(f"# jitp registry step, {n} hosts: {r['wall']:.1f} s, certificates made {r['changed']}, "
          f"IoT calls {sum(r['calls'].values())}", flush=True)
    records, wall = jitp_devices_connect(core, os.path.join(inventory, "pki"), in_flight, deadline_s=300)
    things = sum(1 for page in core.client(retries=3).get_paginator("list_things").paginate()
                 for t in page.get("things", []) if t["thingName"].startswith("jitp"))
    return dict(step=r, records=records, wall=wall, in_flight=in_flight, things=things)


def counted(proxy, before):
    stats = http_json(proxy.url + "/__proxy/stats")
    calls = {op: s.get("forwarded", 0) - before.get(op, {}).get("forwarded", 0) for op, s in stats.items()}
    calls = {op: c for op, c in calls.items() if c}
    return calls, stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="cases 100:100,1000:100, JITP 100 devices")
    parser.add_argument("--full", action="store_true",
                        help="cases 1000:1000,10000:10000 (the default): 10,000 new devices, then their rerun "
                             "(measured: 21 min at load 11-27 with the stand-in's keyed lookups)")
    parser.add_argument("--cases", default="1000:1000,10000:10000",
                        help="HOSTS:DEVICES,...: inventories of HOSTS hosts of which DEVICES are prepared (registered); "
                             "the first case is the reference of the ratios")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--progress-every", type=int, default=500)
    parser.add_argument("--jitp-n", type=int, default=1000, help="devices of the JITP part (0: none)")
    parser.add_argument("--in-flight", type=int, default=250,
                        help="JITP: simulated devices connecting at a time (threads)")
    parser.add_argument("--json", help="also write all measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--report-only", metavar="JSON", help="print the report of a --json file again, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(args.report_only) as f:
            out = json.load(f)
        verdicts = report(out, [tuple(c) for c in out["cases"]])
        if out.get("jitp"):
            verdicts += report_jitp(out)
        return 0 if all(verdicts) else 1
    if args.quick:
        args.cases, args.progress_every, args.jitp_n = "100:100,1000:100", 50, 100
    if args.full:   # the default, kept for the command lines that name it
        args.cases = "1000:1000,10000:10000"
    cases = [tuple(int(v) for v in c.split(":")) for c in args.cases.split(",") if c]
    work = tempfile.mkdtemp(prefix="scale-bench-")
    core = IoTCore(os.path.join(work, "iotcore"), prefix="scale")   # with the broker, for the JITP part
    proxy = None
    out = dict(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpus=os.cpu_count(),
               load=os.getloadavg()[0], runs={}, cases=cases)
    t_all = time.monotonic()
    try:
        core.start()
        proxy = Child(lambda port: [sys.executable, PROXY, "--upstream", core.url, "--port", str(port),
                                    "--rates", "{}"], os.path.join(work, "proxy.log")).start()
        lab = Lab(work, core)
        print(f"# stand-in control plane {core.url} (pid {core.proc.pid}), counting proxy {proxy.url}, "
              f"work dir {work}, load {out['load']:.1f}", flush=True)
        for hosts, devices in cases:
            inventory = write_inventory(work, hosts, devices=devices)
            for phase in ("first", "rerun"):
                _calls, before = counted(proxy, {})
                r = run_playbook(work, proxy.url, lab, hosts, inventory, f"{hosts}x{devices}-{phase}", args.workers,
                                 args.progress_every, server_pid=core.proc.pid)
                r["calls"], _stats = counted(proxy, before)
                r["hosts"], r["phase"] = hosts, phase
                out["runs"][f"{hosts}x{devices}-{phase}"] = r
                print(f"# {phase} run, {hosts} hosts, {r['devices']} devices: {r['wall']:.1f} s, changed {r['changed']}, "
                      f"failed {r['failed']}, progress lines {len(r['progress'])}", flush=True)
        if args.jitp_n:
            out["jitp"] = jitp_part(work, core, proxy, args.jitp_n, args.in_flight, args.workers, args.progress_every)
    finally:
        if proxy is not None:
            proxy.stop()
        core.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out["seconds"] = time.monotonic() - t_all
    if args.json:   # before the report: the measurements survive a report bug
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    verdicts = report(out, cases)
    if out.get("jitp"):
        verdicts += report_jitp(out)
    else:
        print(f"(run time {out['seconds']:.0f} s)")
    return 0 if all(verdicts) else 1


def report(out, cases):
    print()
    print(f"Cloud side of provision.yml at scale - {out['started']} - {out['cpus']} CPUs, load {out['load']:.1f} at "
          "start; ansible-playbook with the registry role's devices tasks + provision.yml's report template, hosts "
          "never contacted, through a counting proxy to the stand-in's control plane")
    row = "{:<6} {:>6} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9}  {}"
    print(row.format("run", "hosts", "devices", "wall s", "ms/dev", "CPU s", "module s", "list ms/k", "report ms/k",
                     "play s", "peak MB", "calls/dev", "calls per device by operation"))
    print("-" * 160)
    for r in out["runs"].values():
        d = max(r["devices"], 1)
        total = sum(r["calls"].values())
        r["play_level"] = r["wall"] - r["module_process"]
        print(row.format(r["phase"], r["hosts"], r["devices"], f"{r['wall']:.1f}", f"{1000 * r['wall'] / d:.2f}",
                         f"{r['cpu']:.1f}", f"{r['module_process']:.1f}", f"{1e6 * r['device_list'] / r['hosts']:.0f}",
                         f"{1e6 * r['report'] / r['hosts']:.0f}", f"{r['play_level']:.1f}",
                         f"{r['peak_playbook_mb']:.0f}+{r['peak_module_mb']:.0f}", f"{total / d:.2f}",
                         ", ".join(f"{op} {c / d:.3g}" for op, c in sorted(r["calls"].items()))))
    print("  (ms/dev and calls/dev per registered device; module s: lifetime of the iot_fleet module process; play s: "
          "the rest of the wall - ansible-playbook's start, the inventory, the device list, the module's arguments and "
          "result, the report; list ms/k and report ms/k: the device list and the report alone, ms per 1,000 hosts; "
          "peak MB: ansible-playbook + the module process, VmHWM)")
    for key, r in out["runs"].items():
        shown = r["progress"]
        print(f"  progress lines, {key}: {len(shown)}" + (f" - first: iot_fleet: {shown[0]}; last: iot_fleet: {shown[-1]}"
                                                          if shown else ""))
    print()
    verdicts = []

    def verdict(ok, text):
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    (h0, d0), (h1, d1) = cases[0], cases[-1]
    grows = d1 * h0 == d0 * h1   # the devices grow with the hosts (--full)
    for phase in ("first", "rerun"):
        a, b = out["runs"][f"{h0}x{d0}-{phase}"], out["runs"][f"{h1}x{d1}-{phase}"]
        x = (b["wall"] / d1) / (a["wall"] / d0)
        xm = (b["module_cpu"] / d1) / max(a["module_cpu"] / d0, 1e-9)
        xc = (b["cpu"] / d1) / (a["cpu"] / d0)
        calls_a, calls_b = max(sum(a["calls"].values()), 1), max(sum(b["calls"].values()), 1)
        xs = (b["server_cpu"] / calls_b) / max(a["server_cpu"] / calls_a, 1e-9)
        figures = (f"wall {1000 * b['wall'] / d1:.1f} vs {1000 * a['wall'] / d0:.1f} ms/device = {x:.2f}x; "
                   f"iot_fleet module CPU {1000 * b['module_cpu'] / d1:.2f} vs {1000 * a['module_cpu'] / d0:.2f} "
                   f"ms/device = {xm:.2f}x; controller CPU (ansible-playbook + module) {xc:.2f}x; the stand-in's CPU "
                   f"per API call {1000 * b['server_cpu'] / calls_b:.2f} vs {1000 * a['server_cpu'] / calls_a:.2f} ms "
                   f"= {xs:.2f}x; failed {b['failed']}")
        if grows:
            # the collection's cost is the controller's; the wall also holds the stand-in's per-call cost, which
            # moto makes grow with the registry (its lookups by ARN and thing name scan every certificate/thing)
            verdict(xc <= 1.1 and b["failed"] == 0,
                    f"{phase} run: controller cost per device at {h1} hosts / {d1} devices {xc:.2f}x of {h0} / {d0} "
                    f"(target <= 1.1; {figures})")
        else:
            extra = (b["wall"] - a["wall"] * d1 / d0) / (h1 - h0) if h1 != h0 else 0.0
            verdict(xm <= 1.1 and b["failed"] == 0,
                    f"{phase} run: the iot_fleet module's CPU per device with {h1} hosts / {d1} devices {xm:.2f}x of "
                    f"{h0} / {d0} (target <= 1.1; {figures}); each host beyond {h0} adds {1000 * extra:.2f} ms of "
                    "play-level wall")
    for hosts, devices in cases:
        r = out["runs"][f"{hosts}x{devices}-rerun"]
        writes = sum(c for op, c in r["calls"].items() if is_write_operation(op))
        reads = sum(c for op, c in r["calls"].items() if not is_write_operation(op))
        verdict(writes == 0 and r["changed"] == 0 and reads / devices <= 1.1 and r["report_entries"] == hosts,
                f"rerun of {devices} devices ({hosts} hosts): {reads / devices:.3f} reads/device (target <= 1.1), "
                f"{writes} writes, changed {r['changed']}, {len(r['progress'])} progress lines, "
                f"{r['report_entries']} report entries")
    a, b = out["runs"][f"{h0}x{d0}-rerun"], out["runs"][f"{h1}x{d1}-rerun"]
    pa, pb = (a["device_list"] + a["report"]) / h0, (b["device_list"] + b["report"]) / h1
    verdict(pb / pa <= 1.5, f"play-level work per host (device list + report) at {h1} hosts {pb / pa:.2f}x of {h0} "
                            f"hosts (target <= 1.5: linear; {1e3 * pb:.3f} vs {1e3 * pa:.3f} ms/host)")
    big_first = out["runs"][f"{h1}x{d1}-first"]
    print(f"controller peak memory with {h1} hosts / {d1} devices: ansible-playbook {big_first['peak_playbook_mb']:.0f} "
          f"MB, iot_fleet module process {big_first['peak_module_mb']:.0f} MB (VmHWM)")
    return verdicts


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


# AWS's published default rates (as recorded in /work/shared/LAB-FACTS.md; see benchmarks/README.md)
AWS_REGISTER_CERTIFICATE_RATE = 10.0     # RegisterCertificate requests/s per account: the api mode's bottleneck
AWS_CONNECT_RATE = 300.0                 # CONNECT requests/s per account ("a few hundred"; 300 in the older table)


def report_jitp(out):
    j = out["jitp"]
    step, records = j["step"], j["records"]
    n = step["n"]
    ok = [r for r in records if r["ok"]]
    latency = [r["verified"] - r["t0"] for r in ok]
    first_ok = [r for r in ok if r["attempts"] == 2]
    span = (max(r["verified"] for r in ok) - min(r["t0"] for r in records)) if ok else float("nan")
    step_calls = sum(step["calls"].values())
    print()
    print(f"JITP (registration jitp), {n} new devices - controller: the registry step through ansible-playbook (keys "
          f"and certificates signed by the fleet CA, no AWS call); stand-in: {n} simulated devices (paho-mqtt, "
          f"loopback, {j['in_flight']} connecting at a time), each refused on its first connect while the CA's "
          "JITP template provisions it, retrying with the device client's backoff, verified = CONNACK 0 + PUBACK on test")
    print(f"  controller registry step: {step['wall']:.1f} s wall ({1000 * step['wall'] / n:.2f} ms/device; module "
          f"process {step['module_process']:.1f} s), {step['changed']} certificates made, IoT API calls {step_calls} "
          f"({', '.join(f'{op} {c}' for op, c in sorted(step['calls'].items())) or 'none'}), peak memory "
          f"{step['peak_playbook_mb']:.0f}+{step['peak_module_mb']:.0f} MB")
    print(f"  stand-in: {len(ok)}/{n} verified, {j['things']} things provisioned, in {span:.1f} s = "
          f"{len(ok) / span:.1f} devices/s; first connect -> verified p50 {pct(latency, 50):.2f} s, p99 "
          f"{pct(latency, 99):.2f} s, max {max(latency, default=float('nan')):.2f} s; connects per device "
          f"{sum(r['attempts'] for r in records) / n:.2f} ({len(first_ok)} in exactly 2: refused, then in)")
    api = out["runs"].get(f"{n}x{n}-first")
    jitp_total = step["wall"] + span
    api_floor = n / AWS_REGISTER_CERTIFICATE_RATE
    jitp_floor = max(2 * n / AWS_CONNECT_RATE, 1.0)
    if api:
        print(f"  api mode, same N ({n}x{n}-first above): {api['wall']:.1f} s = {n / api['wall']:.1f} devices/s on the "
              f"stand-in, {sum(api['calls'].values()) / n:.2f} IoT calls/device")
    print(f"  AWS floor for {n} devices at the published default rates: api >= {api_floor:.0f} s (RegisterCertificate "
          f"{AWS_REGISTER_CERTIFICATE_RATE:g}/s); jitp >= {jitp_floor:.1f} s of connects (2 CONNECTs per device at "
          f"{AWS_CONNECT_RATE:g}/s per account; 1 CONNECT/s per client id) + the 1 s retry")
    print()
    verdicts = []

    def verdict(good, text):
        verdicts.append(good)
        print(f"{'PASS' if good else 'FAIL'}  {text}")

    verdict(step_calls == 0 and step["changed"] == n and step["failed"] == 0,
            f"jitp registry step: {step['changed']} of {n} certificates made, {step_calls} IoT API calls (target 0), "
            f"failed {step['failed']}")
    verdict(len(ok) == n and j["things"] == n,
            f"jitp: {len(ok)} of {n} devices provisioned by the stand-in and verified, {j['things']} things")
    if n < 1000 and jitp_total >= api_floor:
        print(f"INFO  jitp fleet time {jitp_total:.1f} s vs the api mode's AWS floor {api_floor:.0f} s for {n} devices "
              "[N too small: ansible-playbook's start weighs more than the floor; not judged]")
        print(f"(run time {out['seconds']:.0f} s)")
        return verdicts
    verdict(jitp_total < api_floor,
            f"jitp fleet time (registry step + every device verified) {jitp_total:.1f} s < the api mode's AWS floor "
            f"{api_floor:.0f} s for {n} devices")
    print(f"(run time {out['seconds']:.0f} s)")
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
