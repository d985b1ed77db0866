#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry step with the fleet CA key in AWS KMS against a key file (issue 19, section 5).

One stand-in control plane (moto's IoT and KMS with AWS's checks, over HTTP); two fleet CAs registered
with it: one whose key is a file, one whose key is a KMS key (ECC_NIST_P256, SIGN_VERIFY). The batched
registry step (ensure_fleet, as iot_fleet runs it, key mode controller) registers N new devices with
each, in the order file, kms, file (the server slows as it fills: kms is compared with the mean of the
two file runs around it), then reruns the kms fleet. IoT operations are not paced (the figure is the
collection's own cost); KMS Sign is paced at the collection's default (300/s, KMS's ECC quota).

    .venv/bin/python benchmarks/kms_bench.py            # N = 1000 (~3-6 min here)
    .venv/bin/python benchmarks/kms_bench.py --quick    # N = 100 (< 1 min)

Targets (PASS/FAIL, exit 1 on any FAIL): every device registered with both backends; exactly one KMS Sign
per new device (DescribeKey + GetPublicKey once per run); the no-change rerun signs nothing; kms wall
within 1.5x of file (a Sign is one call beside ~10 IoT calls per new device).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ansible_collections.iotfleet.aws.plugins.module_utils import _kms  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import ensure_ca_certificate  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet  # noqa: E402
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices  # noqa: E402
from benchmarks.fleet_bench import CPU, CREDENTIALS, REGION, boto3_iot  # noqa: E402
from tests.support.iotcore import IoTCore  # noqa: E402
from tests.support.recorders import ApiCallCounter  # noqa: E402

POLICY = "kms-bench-device"


def boto3_kms(endpoint, pool):
    import boto3
    from botocore.config import Config
    return boto3.client("kms", region_name=REGION, endpoint_url=endpoint,
                        config=Config(retries={"max_attempts": 5, "mode": "legacy"}, max_pool_connections=pool),
                        **CREDENTIALS)


def registry_step(core, work, prefix, n, workers, ca_cert, ca_key=None, kms_key=None):
    """ensure_fleet for ``n`` devices (new, or the same ones again), as iot_fleet runs it: the IoT calls not
    paced, KMS Sign at its default rate; the KMS signer made in the run (as the module makes it)."""
    rates = {op: 0 for op in DEFAULT_RATE_LIMITS}
    rates["Sign"] = DEFAULT_RATE_LIMITS["Sign"]
    limiter = RateLimiter(rates)
    iot = boto3_iot(core.url, pool=workers + 2)
    iot_calls = ApiCallCounter().attach(iot)
    kms_calls = None
    with CPU() as m:
        if kms_key is not None:
            kms = boto3_kms(core.url, pool=workers + 2)
            kms_calls = ApiCallCounter().attach(kms)
            ca_key = _kms.signing_key(IoTClient(kms, limiter=limiter), kms_key)
        devices = validate_devices([dict(thing_name=f"{prefix}-{i:05d}") for i in range(n)])
        spec = FleetSpec(devices, ca_cert, ca_key, os.path.join(work, "pki-" + prefix), policy_name=POLICY)
        result = ensure_fleet(IoTClient(iot, limiter=limiter), spec, workers=workers)
    failed = [d for d in result["devices"] if d["failed"]]
    return dict(n=n, wall=m.wall, cpu=m.cpu, failed=len(failed), failures=[d["msg"] for d in failed[:3]],
                changed=sum(1 for d in result["devices"] if d["changed"]),
                iot=iot_calls.snapshot()["calls"], kms=kms_calls.snapshot()["calls"] if kms_calls else {})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, N = 100")
    parser.add_argument("--n", type=int, default=1000, help="new devices per backend")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-ratio", type=float, default=1.5, help="kms wall / file wall target")
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.n
    work = tempfile.mkdtemp(prefix="kms-bench-")
    core = IoTCore(os.path.join(work, "iotcore"), prefix="kmsbench", broker=False)
    out = {}
    try:
        core.start()
        load = os.getloadavg()[0]
        print(f"# stand-in control plane on {core.url}, load {load:.1f} on {os.cpu_count()} CPUs, N={n}", flush=True)
        core.put_policy(POLICY, {"Version": "2012-10-17",
                                 "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
        file_ca = core.register_ca(core.new_ca("kms-bench file CA"))
        kms_client = IoTClient(boto3_kms(core.url, 4))
        made = _kms.ensure_fleet_ca(kms_client, "alias/kms-bench", os.path.join(work, "kms-ca.pem"),
                                    common_name="kms-bench KMS CA")
        kms_ca = _x509.load_certificate(path=os.path.join(work, "kms-ca.pem"))
        ensure_ca_certificate(IoTClient(boto3_iot(core.url)), kms_ca, _kms.signing_key(kms_client, made["key_arn"]))
        out["file"] = registry_step(core, work, "file-a", n, args.workers, file_ca.cert, ca_key=file_ca.key)
        print(f"# file: {out['file']['wall']:.1f} s", flush=True)
        out["kms"] = registry_step(core, work, "kms", n, args.workers, kms_ca, kms_key="alias/kms-bench")
        print(f"# kms: {out['kms']['wall']:.1f} s", flush=True)
        out["file2"] = registry_step(core, work, "file-b", n, args.workers, file_ca.cert, ca_key=file_ca.key)
        print(f"# file again: {out['file2']['wall']:.1f} s", flush=True)
        out["rerun"] = registry_step(core, work, "kms", n, args.workers, kms_ca, kms_key="alias/kms-bench")
        print(f"# kms rerun: {out['rerun']['wall']:.1f} s", flush=True)
    finally:
        core.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if report(out, n, args) else 1


def report(out, n, args):
    print()
    print(f"Registry step, fleet CA key in AWS KMS vs a key file - {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, N={n} new devices, {args.workers} workers, key mode controller")
    row = "{:<22} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}  {}"
    print(row.format("run", "N", "wall s", "CPU s", "ms/dev", "IoT c/dev", "KMS c/dev", "KMS calls"))
    print("-" * 110)
    for name, label in (("file", "file (before)"), ("kms", "kms"), ("file2", "file (after)"), ("rerun", "kms rerun")):
        r = out[name]
        print(row.format(label, r["n"], f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{1000 * r['wall'] / r['n']:.1f}",
                         f"{sum(r['iot'].values()) / r['n']:.2f}", f"{sum(r['kms'].values()) / r['n']:.3f}",
                         ", ".join(f"{op} {c}" for op, c in sorted(r["kms"].items())) or "-"))
    file_wall = (out["file"]["wall"] + out["file2"]["wall"]) / 2
    ratio = out["kms"]["wall"] / file_wall
    print()
    print(f"kms / file wall: {ratio:.2f} (file = mean of the runs before and after)")
    checks = [
        (all(out[k]["failed"] == 0 for k in out), "every device registered with both backends; the rerun failed none "
         f"(failed: {', '.join(f'{k} {out[k]['failed']}' for k in out)})"),
        (out["kms"]["kms"].get("Sign", 0) == n, f"one KMS Sign per new device ({out['kms']['kms'].get('Sign', 0)} for {n})"),
        (out["kms"]["kms"].get("DescribeKey", 0) == 1 and out["kms"]["kms"].get("GetPublicKey", 0) == 1,
         "DescribeKey and GetPublicKey once per run"),
        (out["rerun"]["kms"].get("Sign", 0) == 0 and out["rerun"]["changed"] == 0,
         f"the no-change rerun signs nothing ({out['rerun']['kms'].get('Sign', 0)} Sign, "
         f"{out['rerun']['changed']} changed)"),
        (ratio <= args.max_ratio, f"kms wall <= {args.max_ratio:g}x file wall ({ratio:.2f}x)"),
    ]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    for k in out:
        for msg in out[k]["failures"]:
            print(f"  {k}: {msg}")
    return all(ok for ok, _ in checks)


if __name__ == "__main__":
    sys.exit(main())
