#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Three concurrent AWX job slices of 1,000 new devices vs one run of 3,000 (issue 19 section 5).

The controller's plays of ``playbooks/provision.yml``, verbatim: the plays on localhost, taken from the
collection's playbook by its YAML (play 1: the fleet lock, the CA, the policy; play 3: the batched
registration and the drift step; the report play, which releases the lock), run as the user's
``ansible-playbook provision.yml -i pis.ini`` with hosts never contacted. (The plays over the Pis are left
out: with no Pi to reach they only skip, but their always-tagged per-host tasks - ``meta: end_host``, the
roles' argument validation - cost ansible-playbook ~0.15 s per host and play at load 20, which at 3,000
hosts would be most of the measurement.) Against the IoT Core stand-in's control plane (tests/support/iotcore.py, ``broker=False``) through the counting proxy
(benchmarks/throttle_proxy.py without caps, which also counts the stand-in's error answers by AWS error
code). Two cases, each on a fresh stand-in:

- **one run**: one controller directory, an inventory of N hosts;
- **slices**: K controller directories holding only the user's files (``pis.ini``, ``provision.yml``,
  ``ansible.cfg``, ``group_vars/``, and the fleet CA the AWX pattern keeps in the project, README "Protecting
  the fleet CA key"); each ``pis.ini`` holds the hosts of one slice as AWX builds a slice's inventory
  (``Inventory.get_script_data``: the hosts ordered by name, ``hosts[slice_number - 1::slice_count]``, with
  their groups and variables; localhost implicit), each run gets the extra variables AWX gives a slice job
  (``awx_job_slice_number``, ``awx_job_slice_count``); the K ``ansible-playbook`` processes start together.

Printed: wall, lock wait (the "Take the fleet lock" task) and the wait lines each run showed, the handover
gap between one run's release and the next one's take, API calls by operation, the stand-in's error answers
(lock races are ``VersionConflictException`` / ``ResourceAlreadyExistsException``), and the registry's
state afterwards read back with boto3. PASS/FAIL:

- every device registered exactly once (RegisterCertificate and CreateThing calls = N; one report entry per
  device with the certificate AWS holds); exactly one fleet CA; one ACTIVE certificate per thing and no
  ACTIVE certificate without a thing (no double issue); 0 failed devices; the lock free at the end;
- the slices serialise on the fleet lock (one writer at a time): the lock waits are reported, and no two
  runs held it at once (their hold intervals do not overlap);
- each handover (one run's release to the next run's take) within one poll pause of the waiter (15 s + 2 s);
- the slices' wall within 1.5x of the one run (at >= 1,000 devices a slice; ``--quick`` prints it, unjudged):
  they cannot be faster while they serialise, and what slicing adds is K-1 more runs' fixed part (the
  start, the CA and policy play, the report) and the handovers.

    .venv/bin/python benchmarks/slice_bench.py            # 3 slices x 1,000 vs 3,000
    .venv/bin/python benchmarks/slice_bench.py --quick    # 3 slices x 50 vs 150 (~2 min)
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from fleet_bench import PROXY, REGION, CREDENTIALS, Child, Lab, ansible_env, boto3_iot, http_json  # noqa: E402
from tests.support.iotcore import IoTCore  # noqa: E402

PROVISION_PLAYBOOK = os.path.join(ROOT, "playbooks", "provision.yml")
TAKE_TASK = "Take the fleet lock - one writer at a time (waits for another run; never a change)"
RELEASE_TASK = "Release the fleet lock (only if this run still holds it; never a change)"
REGISTER_TASK = "iotfleet.aws.registry : Register every device in one batched run"
WAIT_LINE = re.compile(r"iot_fleet_lock: waiting for the fleet lock")
# lock races and other conflicts the stand-in answered
CONFLICT_CODES = ("VersionConflictException", "ResourceAlreadyExistsException", "ConflictException",
                  "DeleteConflictException", "ConflictingResourceUpdateException")
MAX_POLL_PAUSE = 15.0   # _lock.MAX_PAUSE: a waiter's longest pause between polls


def host_names(n):
    return [f"pi-{i:05d}.bench.lan" for i in range(n)]


def awx_slice(hosts, number, count):
    """The hosts of slice ``number`` (1-based) of ``count``, as AWX picks them (ordered by name, every count-th)."""
    return sorted(hosts)[number - 1::count]


def controller_plays(work):
    """playbooks/provision.yml's plays on localhost, verbatim (anchors resolved), as a playbook in ``work`` beside
    the templates/ it reads (the report). Returns its path."""
    import yaml

    with open(PROVISION_PLAYBOOK) as f:
        plays = [play for play in yaml.safe_load(f) if play.get("hosts") == "localhost"]
    path = os.path.join(work, "provision-controller-plays.yml")
    with open(path, "w") as f:
        f.write("---\n# the plays on localhost of playbooks/provision.yml (benchmarks/slice_bench.py)\n")
        yaml.safe_dump(plays, f, sort_keys=False, width=160)
    if not os.path.exists(os.path.join(work, "templates")):
        os.symlink(os.path.join(ROOT, "playbooks", "templates"), os.path.join(work, "templates"))
    return path


def controller_dir(work, name, hosts, proxy_url, ca_pem, ca_key, rates_lifted, playbook):
    """A controller directory holding only the user's files; the fleet CA's certificate and key in the project
    (the AWX pattern: vaulted there; plain here), pointed at by ca_certificate_path / ca_private_key_path."""
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "group_vars"))
    os.makedirs(os.path.join(d, "ca"))
    shutil.copy(ca_pem, os.path.join(d, "ca", "fleet-ca.pem"))
    shutil.copy(ca_key, os.path.join(d, "ca", "fleet-ca.key"))
    with open(os.path.join(d, "pis.ini"), "w") as f:
        f.write("[pis]\n" + "".join(h + "\n" for h in hosts))
    with open(os.path.join(d, "provision.yml"), "w") as f:
        f.write(f"---\n- name: Provision the fleet (its controller plays)\n  ansible.builtin.import_playbook: {playbook}\n")
    with open(os.path.join(d, "ansible.cfg"), "w") as f:
        f.write("[defaults]\nforks = 8\nhost_key_checking = False\nretry_files_enabled = False\n")
    group_vars = dict(
        iotfleet_aws_endpoint_url=proxy_url, iotfleet_aws_region=REGION,
        iotfleet_aws_access_key=CREDENTIALS["aws_access_key_id"],
        iotfleet_aws_secret_key=CREDENTIALS["aws_secret_access_key"],
        ca_certificate_path=os.path.join(d, "ca", "fleet-ca.pem"),
        ca_private_key_path=os.path.join(d, "ca", "fleet-ca.key"),
        ca_create=False,
        iotfleet_lock_wait=7200,
        iotfleet_progress_every=500,
        iotfleet_thing_attributes=dict(site="bench"),
        # the stand-in is the limit here, not AWS's rates (as scale_bench.py): pacing would measure the limiter
        registry_rate_limits=rates_lifted,
    )
    with open(os.path.join(d, "group_vars", "all.yml"), "w") as f:
        f.write("---\n" + json.dumps(group_vars, indent=2) + "\n")
    return d


def start_run(work, directory, tag, extra_vars=None):
    timer = os.path.join(work, f"timer-{tag}.json")
    env = ansible_env(work)
    env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="bench_timer",
               BENCH_TIMER_FILE=timer, ANSIBLE_CONFIG=os.path.join(directory, "ansible.cfg"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "provision.yml", "-i", "pis.ini"]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    log = open(os.path.join(work, f"run-{tag}.log"), "wb")
    started = time.time()
    proc = subprocess.Popen(argv, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)
    return dict(tag=tag, dir=directory, proc=proc, log=log, timer=timer, started=started)


def finish_run(run):
    rc = run["proc"].wait()
    ended = time.time()
    run["log"].close()
    with open(run["log"].name, errors="replace") as f:
        text = f.read()
    tasks = []
    if os.path.exists(run["timer"]):
        with open(run["timer"]) as f:
            tasks = json.load(f)
    take = next((t for t in tasks if t["task"] == TAKE_TASK), None)
    release = next((t for t in tasks if t["task"] == RELEASE_TASK), None)
    register = next((t for t in tasks if t["task"] == REGISTER_TASK), None)
    report = {}
    path = os.path.join(run["dir"], "iotfleet-report.json")
    if os.path.exists(path):
        with open(path) as f:
            report = json.load(f)
    return dict(
        tag=run["tag"], rc=rc, wall=ended - run["started"], started=run["started"], ended=ended,
        lock_wait=take["seconds"] if take else None,
        acquired=(take["start"] + take["seconds"]) if take else None,
        released=(release["start"] + release["seconds"]) if release else None,
        registration=register["seconds"] if register else None,
        wait_lines=len(WAIT_LINE.findall(text)),
        progress=re.findall(r"iot_fleet: (\d+/\d+ devices[^\n]*)", text),
        devices={d["host"]: d.get("certificate_id") for d in report.get("devices", [])},
        log=run["log"].name, tail=text[-3000:] if rc else "",
    )


def registry_state(url, expected_things):
    """What the registry holds afterwards: CAs, every thing's principals and their status, lone ACTIVE
    certificates, the lock's owner."""
    iot = boto3_iot(url, pool=16)
    cas = [c for page in iot.get_paginator("list_ca_certificates").paginate() for c in page["certificates"]]
    certificates = {c["certificateId"]: c["status"] for page in iot.get_paginator("list_certificates").paginate(
        PaginationConfig={"PageSize": 250}) for c in page["certificates"]}
    things = [t["thingName"] for page in iot.get_paginator("list_things").paginate(
        PaginationConfig={"PageSize": 250}) for t in page["things"]]

    def principals(thing):
        return thing, [p.rsplit("/", 1)[-1] for p in iot.list_thing_principals(thingName=thing)["principals"]]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        by_thing = dict(pool.map(principals, things))
    attached = {c for ids in by_thing.values() for c in ids}
    lock = iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")
    owner = ((lock.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("attributes", {}).get("owner")
    return dict(
        cas=len(cas), active_cas=sum(1 for c in cas if c["status"] == "ACTIVE"),
        things=len(things), missing_things=sorted(set(expected_things) - set(things))[:5],
        certificates=len(certificates),
        active_per_thing_not_one=sorted(t for t, ids in by_thing.items()
                                        if sum(1 for c in ids if certificates.get(c) == "ACTIVE") != 1)[:5],
        active_without_thing=sorted(c for c, s in certificates.items() if s == "ACTIVE" and c not in attached)[:5],
        identity={t: ids[0] for t, ids in by_thing.items() if len(ids) == 1},
        lock_owner=owner or None,
    )


def run_case(work, name, n, slices, rates_lifted):
    """One case on a fresh stand-in: ``slices`` = 1 is the one run, else that many concurrent slice runs."""
    case = os.path.join(work, name)
    os.makedirs(case)
    core = IoTCore(os.path.join(case, "iotcore"), prefix=name, broker=False)
    proxy = None
    try:
        core.start()
        proxy = Child(lambda port: [sys.executable, PROXY, "--upstream", core.url, "--port", str(port),
                                    "--rates", "{}"], os.path.join(case, "proxy.log")).start()
        lab = Lab(case, core)
        playbook = controller_plays(case)
        hosts = host_names(n)
        started = time.time()
        if slices == 1:
            d = controller_dir(case, "controller", hosts, proxy.url, lab.ca_pem_path, lab.ca_key_path, rates_lifted,
                               playbook)
            runs = [finish_run(start_run(case, d, f"{name}-one"))]
        else:
            pending = []
            dirs = [controller_dir(case, f"slice-{k}", awx_slice(hosts, k, slices), proxy.url, lab.ca_pem_path,
                                   lab.ca_key_path, rates_lifted, playbook) for k in range(1, slices + 1)]
            for k, d in enumerate(dirs, 1):   # started together: the directories are made first
                pending.append(start_run(case, d, f"{name}-{k}",
                                         dict(awx_job_slice_number=k, awx_job_slice_count=slices)))
            runs = [finish_run(r) for r in pending]
        wall = max(r["ended"] for r in runs) - started
        stats = http_json(proxy.url + "/__proxy/stats")
        state = registry_state(core.url, [h.replace(".", "-") for h in hosts])
    finally:
        if proxy is not None:
            proxy.stop()
        core.stop()
    calls = {op: s["forwarded"] for op, s in stats.items() if s["forwarded"]}
    errors = {}
    for op, s in stats.items():
        for code, count in s.get("errors", {}).items():
            errors[f"{op}:{code}"] = errors.get(f"{op}:{code}", 0) + count
    return dict(name=name, n=n, slices=slices, wall=wall, runs=runs, calls=calls, errors=errors, state=state)


def handovers(runs):
    """Hold intervals of the lock in the order taken, the gaps between one release and the next take, and
    whether two holds overlapped."""
    held = sorted((r["acquired"], r["released"] or r["ended"], r["tag"]) for r in runs if r["acquired"] is not None)
    gaps = [b[0] - a[1] for a, b in zip(held, held[1:])]
    return held, gaps, any(g < 0 for g in gaps)


def report(out):
    one, sliced = out["one"], out["slices"]
    k = sliced["slices"]
    print()
    print(f"AWX job slices vs one run - {out['started']} - {out['cpus']} CPUs, load {out['load']:.1f} at start; "
          f"provision.yml's controller plays (hosts never contacted) through a counting proxy to the stand-in's control plane; "
          f"{k} slices of {sliced['n'] // k} devices vs one run of {one['n']}")
    row = "{:<12} {:>7} {:>4} {:>8} {:>11} {:>6} {:>8} {:>8} {:>7}  {}"
    print(row.format("run", "devices", "rc", "wall s", "lock wait s", "polls", "held s", "regist s", "failed",
                     "progress (last)"))
    print("-" * 130)
    for case in (one, sliced):
        for r in case["runs"]:
            held = (r["released"] - r["acquired"]) if r["acquired"] and r["released"] else float("nan")
            failed = sum(1 for c in r["devices"].values() if not c)
            print(row.format(r["tag"], len(r["devices"]), r["rc"], f"{r['wall']:.1f}",
                             f"{r['lock_wait']:.1f}" if r["lock_wait"] is not None else "-", r["wait_lines"],
                             f"{held:.1f}", f"{r['registration']:.1f}" if r.get("registration") is not None else "-",
                             failed, r["progress"][-1] if r["progress"] else "-"))
    print("  (lock wait: the task that takes the fleet lock; polls: the wait lines it showed; held: from taking the lock "
          "to releasing it; regist: the batched registration task alone)")
    print()
    for case in (one, sliced):
        per = max(case["n"], 1)
        print(f"  {case['name']}: wall {case['wall']:.1f} s ({1000 * case['wall'] / per:.1f} ms/device); API calls "
              f"{sum(case['calls'].values())} ({sum(case['calls'].values()) / per:.2f}/device): "
              + ", ".join(f"{op} {c}" for op, c in sorted(case["calls"].items()) if c >= per // 2 or "ThingGroup" in op))
        print(f"  {case['name']}: error answers of the stand-in: "
              + (", ".join(f"{k_} {c}" for k_, c in sorted(case["errors"].items())) or "none"))
    held, gaps, overlap = handovers(sliced["runs"])
    t0 = min(r["started"] for r in sliced["runs"])
    print("  slices' lock holds (s after the start): " + "; ".join(f"{tag} {a - t0:.1f}-{b - t0:.1f}" for a, b, tag in held)
          + "; handover gaps " + (", ".join(f"{g:.1f} s" for g in gaps) or "none"))
    print()
    verdicts = []

    def verdict(good, text):
        verdicts.append(good)
        print(f"{'PASS' if good else 'FAIL'}  {text}")

    for case in (one, sliced):
        n, s = case["n"], case["state"]
        reported = {}
        for r in case["runs"]:
            for host, cert in r["devices"].items():
                reported.setdefault(host, []).append(cert)
        once = all(len(v) == 1 and v[0] for v in reported.values()) and len(reported) == n
        agree = all(s["identity"].get(h.replace(".", "-")) == v[0] for h, v in reported.items())
        conflicts = sum(c for key, c in case["errors"].items() if key.split(":", 1)[1] in CONFLICT_CODES)
        verdict(case["calls"].get("RegisterCertificate") == n and case["calls"].get("CreateThing") == n and once and agree
                and all(r["rc"] == 0 for r in case["runs"]),
                f"{case['name']}: every device registered exactly once - RegisterCertificate "
                f"{case['calls'].get('RegisterCertificate', 0)}, CreateThing {case['calls'].get('CreateThing', 0)} for {n} "
                f"devices; {len(reported)} reported, each in one run with the certificate AWS holds: {once and agree}; "
                f"runs' exit codes {[r['rc'] for r in case['runs']]}")
        verdict(s["cas"] == 1 and s["active_cas"] == 1 and s["things"] == n and not s["missing_things"]
                and s["certificates"] == n and not s["active_per_thing_not_one"] and not s["active_without_thing"]
                and s["lock_owner"] is None,
                f"{case['name']}: registry afterwards - CAs {s['cas']} ({s['active_cas']} ACTIVE; target 1), things "
                f"{s['things']} of {n}, certificates {s['certificates']} (target {n}: no double issue), things without "
                f"exactly one ACTIVE certificate {s['active_per_thing_not_one'] or 'none'}, ACTIVE certificates without a "
                f"thing {s['active_without_thing'] or 'none'}, lock {'free' if s['lock_owner'] is None else 'held by ' + s['lock_owner']}; "
                f"conflict answers {conflicts}")
    waits = [r["lock_wait"] or 0.0 for r in sliced["runs"]]
    verdict(not overlap and len(held) == k and all(g <= MAX_POLL_PAUSE + 2.0 for g in gaps),
            f"slices: one writer at a time - {len(held)} lock holds, none overlapping; each handed over within one poll "
            f"pause ({', '.join(f'{g:.1f} s' for g in gaps)}; target <= {MAX_POLL_PAUSE:g} s + 2 s: a waiter polls with "
            "backoff up to 15 s); lock waits "
            + ", ".join(f"{r['tag']} {w:.1f} s ({r['wait_lines']} wait lines)" for r, w in zip(sliced["runs"], waits)))
    ratio = sliced["wall"] / one["wall"]
    text = (f"slices' wall {sliced['wall']:.1f} s = {ratio:.2f}x one run's {one['wall']:.1f} s (the slices serialise on the "
            f"fleet lock: the cost of slicing is {k - 1} more runs' fixed part - start, CA and policy play, report - and "
            f"the handovers")
    if sliced["n"] < 1000 * k:
        print(f"INFO  {text}; not judged below 1,000 devices a slice, where the fixed part outweighs the registration)")
    else:
        verdict(ratio <= 1.5, text + "; target <= 1.5x)")
    print(f"(run time {out['seconds']:.0f} s)")
    return verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 slices of 50 vs 150 (smoke run)")
    parser.add_argument("--devices", type=int, default=3000, help="devices of the one run (the slices share them)")
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--json", help="also write all measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--report-only", metavar="JSON", help="print the report of a --json file again, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(args.report_only) as f:
            return 0 if all(report(json.load(f))) else 1
    if args.quick:
        args.devices = 150
    rates_lifted = {op: 0 for op in ("RegisterCertificate", "CreateThing", "AttachPolicy", "AttachThingPrincipal",
                                     "DescribeThing", "DescribeCertificate", "ListPrincipalThings", "UpdateThing")}
    work = tempfile.mkdtemp(prefix="slice-bench-")
    out = dict(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpus=os.cpu_count(),
               load=os.getloadavg()[0], quick=args.quick)
    t_all = time.monotonic()
    print(f"# work dir {work}, load {out['load']:.1f}", flush=True)
    try:
        out["one"] = run_case(work, "one-run", args.devices, 1, rates_lifted)
        print(f"# one run of {args.devices}: {out['one']['wall']:.1f} s", flush=True)
        out["slices"] = run_case(work, "slices", args.devices, args.slices, rates_lifted)
        print(f"# {args.slices} slices: {out['slices']['wall']:.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out["seconds"] = time.monotonic() - t_all
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return 0 if all(report(out)) else 1


if __name__ == "__main__":
    sys.exit(main())
