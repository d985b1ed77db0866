#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device-side benchmark (issue 12 item 3): remote module runs and seconds per Pi.

For each key mode asked for, brings up a small lab (default 2 emulated ARMv6 Pi Zeros and the IoT
Core stand-in, `lab/lab.py up`), runs `ansible-playbook provision.yml -i pis.ini` twice (first run,
no-change rerun) with the test callback that counts remote module runs per host
(tests/molecule/callback_plugins/remote_runs.py), takes the lab down, and prints per Pi the runs
and seconds of each run, with PASS/FAIL against the bounds. The first mode's figures are also
written to --device-report (default .cache/device-report.json), which fleet_bench.py prints.

    .venv/bin/python benchmarks/device_bench.py                     # both key modes, 2 Pis
    .venv/bin/python benchmarks/device_bench.py --quick             # key mode controller only
    .venv/bin/python benchmarks/device_bench.py --pis 3 --json out.json

Exit status 0 when every bound holds, 1 otherwise. Needs the lab image (`make lab-image`).
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "molecule"))

# the lab test's own helpers: the lab, the user's command with the counting callback, the recap
from test_lab_fleet import PROVISION, _lab, _provision, _recap  # noqa: E402

# remote module runs per Pi, (first run, rerun), with the lab image's packages missing and no service
# (issue 12: at most 4 on a first run, 2 on a rerun, in both key modes). Key mode device: a new Pi's
# first module run is apt (then device_csr, bundle, verify); a known Pi's preparation is one
# device_bundle run that keeps the key and CSR and compares the files, so the install step makes none.
BOUNDS = {"controller": (4, 2), "device": (4, 2)}


def _per_pi(runs):
    return {host: entry for host, entry in runs.items() if host != "localhost"}


def measure(work, pis, key_mode):
    lab_dir = work / f"lab-{key_mode}"
    started = time.monotonic()
    _lab("up", "--dir", str(lab_dir), "--pis", str(pis))
    up_s = time.monotonic() - started
    try:
        (lab_dir / "provision.yml").write_text(PROVISION)
        extra = ("-e", f"iotfleet_key_mode={key_mode}")
        out = {"key_mode": key_mode, "pis": pis, "lab_up_seconds": round(up_s, 1)}
        for phase in ("first_run", "rerun"):
            proc, runs, wall = _provision(lab_dir, work, f"{key_mode}-{phase}", "pis.ini", *extra)
            recap = _recap(proc.stdout)
            per_pi = _per_pi(runs)
            out[phase] = {
                "ok": proc.returncode == 0 and len(per_pi) == pis,
                "changed": sum(r["changed"] for r in recap.values()),
                "verified": proc.stdout.count("verify=OK"),
                "runs_per_pi": max((e["runs"] for e in per_pi.values()), default=None),
                "seconds_per_pi": round(max((e["seconds"] for e in per_pi.values()), default=0.0), 2),
                "mean_seconds_per_pi": round(sum(e["seconds"] for e in per_pi.values()) / max(len(per_pi), 1), 2),
                "wall_seconds": round(wall, 1),
                "pis": {host: {"runs": e["runs"], "seconds": e["seconds"], "tasks": e["tasks"]}
                        for host, e in sorted(per_pi.items())},
            }
            if proc.returncode != 0:
                out[phase]["tail"] = proc.stdout[-3000:]
        return out
    finally:
        _lab("down", "--dir", str(lab_dir))


def verdicts(result):
    first_max, rerun_max = BOUNDS[result["key_mode"]]
    first, rerun = result["first_run"], result["rerun"]
    mode = f"key mode {result['key_mode']}"
    return [
        (first["ok"] and first["verified"] >= result["pis"],
         f"{mode}: first run succeeds, every Pi verified ({first['verified']}/{result['pis']})"),
        (first["runs_per_pi"] is not None and first["runs_per_pi"] <= first_max,
         f"{mode}: first run <= {first_max} remote module runs per Pi ({first['runs_per_pi']})"),
        (rerun["ok"] and rerun["changed"] == 0, f"{mode}: rerun changes nothing (changed={rerun['changed']})"),
        (rerun["runs_per_pi"] is not None and rerun["runs_per_pi"] <= rerun_max,
         f"{mode}: rerun <= {rerun_max} remote module runs per Pi ({rerun['runs_per_pi']})"),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Device side of provision.yml on the lab's emulated Pi Zeros.")
    parser.add_argument("--pis", type=int, default=2)
    parser.add_argument("--key-modes", default="controller,device", help="comma-separated: controller, device")
    parser.add_argument("--quick", action="store_true", help="key mode controller only")
    parser.add_argument("--json", help="write every figure (per Pi, per task) there")
    parser.add_argument("--device-report", default=os.environ.get("IOTFLEET_DEVICE_REPORT",
                                                                  str(ROOT / ".cache" / "device-report.json")),
                        help="the first mode's figures, as fleet_bench.py reads them")
    args, _unknown = parser.parse_known_args(argv)   # make bench passes BENCH_ARGS to every step
    modes = ["controller"] if args.quick else [m.strip() for m in args.key_modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in BOUNDS]
    if bad:
        parser.error(f"unknown key mode(s): {', '.join(bad)}")

    results = []
    with tempfile.TemporaryDirectory(prefix="iotfleet-device-bench-") as tmp:
        for mode in modes:
            print(f"key mode {mode}: lab of {args.pis} Pis up, provision.yml twice ...", flush=True)
            results.append(measure(pathlib.Path(tmp), args.pis, mode))

    print()
    print(f"Device side, {args.pis} emulated ARMv6 Pi Zeros (qemu), remote module runs and seconds per Pi:")
    print(f"{'key mode':<11} {'run':<10} {'runs/Pi':>8} {'bound':>6} {'s/Pi max':>9} {'s/Pi mean':>10} {'wall s':>7}  tasks")
    for r in results:
        for phase, bound in zip(("first_run", "rerun"), BOUNDS[r["key_mode"]]):
            d = r[phase]
            tasks = next(iter(d["pis"].values()), {}).get("tasks", [])
            print(f"{r['key_mode']:<11} {phase:<10} {d['runs_per_pi'] if d['runs_per_pi'] is not None else 'n/a':>8} "
                  f"{bound:>6} {d['seconds_per_pi']:>9} {d['mean_seconds_per_pi']:>10} {d['wall_seconds']:>7}  "
                  + "; ".join(t.split(" : ", 1)[-1] for t in tasks))
    print()
    checks = [v for r in results for v in verdicts(r)]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    for r in results:
        for phase in ("first_run", "rerun"):
            if "tail" in r[phase]:
                print(f"\n--- key mode {r['key_mode']}, {phase} failed; end of its output:\n{r[phase]['tail']}")

    if results and results[0]["first_run"]["runs_per_pi"] is not None:
        first = results[0]
        report = {"pis": first["pis"], "key_mode": first["key_mode"],
                  "first_run": {k: first["first_run"][k] for k in ("runs_per_pi", "seconds_per_pi", "wall_seconds")},
                  "rerun": {k: first["rerun"][k] for k in ("runs_per_pi", "seconds_per_pi", "wall_seconds")}}
        path = pathlib.Path(args.device_report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(ok for ok, _text in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
