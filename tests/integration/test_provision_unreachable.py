# -*- coding: utf-8 -*-
"""provision.yml when EVERY Pi is unreachable (their SSH ports are closed loopback ports), against
the stand-in's control plane.

Ansible ends a run at a play whose every host failed. The run must still reach the registry step
(which then registers no Pi: none passed the preparation) and the report, whose JSON file is written
beside the inventory with every Pi named. With iotfleet_register_offline=true the same run registers
every Pi: what the first run leaves out, it leaves out because of the preparation.
"""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from support.iotcore import CREDENTIALS, REGION, free_port
from support.procs import wait_for

pytestmark = pytest.mark.integration
BIN = os.path.dirname(sys.executable)
PROVISION = "---\n- name: Provision the fleet\n  ansible.builtin.import_playbook: iotfleet.aws.provision\n"
PIS = ("pi-a", "pi-b")


def _recap(output):
    return {m.group(1): dict(ok=int(m.group(2)), unreachable=int(m.group(3)), failed=int(m.group(4)))
            for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)",
                                 output, re.M)}


def _command(tmp_path, moto, *extra):
    """The user's files in ``tmp_path`` and ``(argv, env)`` of the user's command there."""
    # free_port() binds and closes: nothing listens there, so SSH is refused at once
    hosts = "\n".join(f"{name} ansible_host=127.0.0.1 ansible_port={free_port()}" for name in PIS)
    (tmp_path / "pis.ini").write_text(
        f"[pis]\n{hosts}\n\n[pis:vars]\nansible_user=pi\n"
        "ansible_ssh_common_args='-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
        f"\n[all:vars]\niotfleet_aws_endpoint_url={moto.url}\niotfleet_aws_region={REGION}\n"
        f"iotfleet_aws_access_key={CREDENTIALS['aws_access_key_id']}\n"
        f"iotfleet_aws_secret_key={CREDENTIALS['aws_secret_access_key']}\n")
    (tmp_path / "provision.yml").write_text(PROVISION)
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False", AWS_MAX_ATTEMPTS="2",
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return [os.path.join(BIN, "ansible-playbook"), "provision.yml", "-i", "pis.ini", *extra], env


def _run(tmp_path, moto, *extra):
    argv, env = _command(tmp_path, moto, *extra)
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_every_pi_unreachable_registers_none_and_writes_the_report(moto, boto3_iot, tmp_path):
    proc = _run(tmp_path, moto)
    out = proc.stdout
    recap = _recap(out)
    assert proc.returncode != 0, out[-6000:]
    assert all(recap[name]["unreachable"] == 1 for name in PIS), out[-6000:]
    assert recap["localhost"]["failed"] == 0, out[-6000:]   # the cloud side and the report ran

    # no Pi passed the preparation: no identity for any (not in AWS IoT, not on the controller)
    assert "Register every device in one batched run" in out, out[-6000:]
    assert boto3_iot.list_things()["things"] == [] and boto3_iot.list_certificates()["certificates"] == []
    assert not any((tmp_path / "pki" / "devices").glob("*"))

    report = json.loads((tmp_path / "iotfleet-report.json").read_text())
    assert sorted(d["host"] for d in report["devices"]) == list(PIS)
    for device in report["devices"]:
        assert not device["verify_ok"] and device["certificate_id"] is None, device
        assert device["result"].startswith("NOT VERIFIED (unreachable in preparation; no identity made"), device

    # the fleet lock was taken and, although every Pi failed, released by the report play
    assert "Take the fleet lock" in out and "Release the fleet lock" in out, out[-6000:]
    lock = boto3_iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")
    attributes = lock["thingGroupProperties"]["attributePayload"]["attributes"]
    assert not attributes.get("owner") and lock["version"] == 3, lock   # taken, extended, released


def test_every_pi_unreachable_register_offline_registers_all_and_writes_the_report(moto, boto3_iot, tmp_path):
    proc = _run(tmp_path, moto, "-e", "iotfleet_register_offline=true")
    out = proc.stdout
    assert proc.returncode != 0, out[-6000:]
    assert all(_recap(out)[name]["unreachable"] == 1 for name in PIS), out[-6000:]
    assert sorted(t["thingName"] for t in boto3_iot.list_things()["things"]) == list(PIS)
    report = json.loads((tmp_path / "iotfleet-report.json").read_text())
    for device in report["devices"]:
        assert re.fullmatch(r"[0-9a-f]{64}", device["certificate_id"] or ""), device
        assert not device["verify_ok"] and device["result"].startswith("NOT VERIFIED"), device


def _certificates(tmp_path):
    return {name: (tmp_path / "pki" / "devices" / name / "certificate.pem").read_bytes() for name in PIS}


def test_known_pis_skip_the_check_and_a_due_renewal_of_an_unreachable_pi_keeps_its_identity(moto, boto3_iot, tmp_path):
    """Pis whose identity the controller holds make no check of their own in the preparation (their
    first module run is the bundle), also when their certificate is due for renewal: the registry
    step leaves a due certificate live (ACTIVE, attached, the controller's files untouched) and the
    renewal waits for a Pi that verifies; an unreachable Pi is reported "renewal=PENDING" and fails."""
    assert _run(tmp_path, moto, "-e", "iotfleet_register_offline=true").returncode != 0
    certs = _certificates(tmp_path)
    ids = sorted(c["certificateId"] for c in boto3_iot.list_certificates()["certificates"])
    assert len(ids) == 2

    known = _run(tmp_path, moto)
    out = known.stdout
    assert "Check Python and privilege escalation" not in out, out[-6000:]
    assert "Install the device's identity, root CA" in out and all(
        _recap(out)[name]["unreachable"] == 1 for name in PIS), out[-6000:]
    results = [d["result"] for d in json.loads((tmp_path / "iotfleet-report.json").read_text())["devices"]]
    assert results == ["NOT VERIFIED (unreachable or failed installing its identity)"] * 2, results

    for extra in ((), ("--check",)):
        due = _run(tmp_path, moto, "-e", "iotfleet_renew_before_days=4000", *extra)   # 3650-day certificates: due
        out = due.stdout
        assert due.returncode != 0 and "Check Python and privilege escalation" not in out, out[-6000:]
        assert all(_recap(out)[name]["unreachable"] == 1 for name in PIS), out[-6000:]
        assert _certificates(tmp_path) == certs and not (tmp_path / "pki" / "staged").exists()
        assert sorted(c["certificateId"] for c in boto3_iot.list_certificates()["certificates"]) == ids
        assert all(c["status"] == "ACTIVE" for c in boto3_iot.list_certificates()["certificates"])
        for name in PIS:
            (principal,) = boto3_iot.list_thing_principals(thingName=name)["principals"]
            assert principal.rsplit("/", 1)[-1] in ids
        report = json.loads((tmp_path / "iotfleet-report.json").read_text())
        for device in report["devices"]:
            assert device["certificate_id"] in ids and device["renewal"]["due"], device
            assert not device["renewal"]["done"], device
            assert re.search(r"renewal=PENDING, due \(expires \d{4}-\d\d-\d\d\): not attempted", device["line"]), device


def test_a_run_gives_up_on_a_lock_another_run_holds_and_writes_nothing(moto, boto3_iot, tmp_path):
    boto3_iot.create_thing_group(thingGroupName="iotfleet-lock-fleet", thingGroupProperties={"attributePayload": {
        "attributes": {"owner": "cron-on-ctl-2", "acquired_at": "2026-01-01T00:00:00Z",
                       "expires_at": "2099-01-01T00:00:00Z"}}})
    proc = _run(tmp_path, moto, "-e", "iotfleet_lock_wait=0")
    out = proc.stdout
    assert proc.returncode != 0, out[-6000:]
    assert "held by cron-on-ctl-2 since 2026-01-01T00:00:00Z (expires 2099-01-01T00:00:00Z" in out, out[-6000:]
    assert "Nothing was written" in out, out[-6000:]
    # it stopped at its first task: no CA, no policy, no thing, the lock untouched
    assert boto3_iot.list_ca_certificates()["certificates"] == [] and boto3_iot.list_policies()["policies"] == []
    assert boto3_iot.list_things()["things"] == [] and not (tmp_path / "pki").exists()
    assert boto3_iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")["version"] == 1


def test_check_mode_does_not_write_the_lock(moto, boto3_iot, tmp_path):
    proc = _run(tmp_path, moto, "--check")
    out = proc.stdout
    assert re.search(r"TASK \[Take the fleet lock[^\n]*\nok: \[localhost\]", out), out[-6000:]
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def _lease(boto3_iot):
    try:
        described = boto3_iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")
    except boto3_iot.exceptions.ResourceNotFoundException:
        return {}
    return described["thingGroupProperties"].get("attributePayload", {}).get("attributes", {})


def test_a_killed_runs_lease_holds_until_it_expires_then_the_next_run_takes_it_over(moto, boto3_iot, tmp_path):
    """A run killed outright (SIGKILL: no rescue, no report play) while it holds the fleet lock leaves its lease
    in AWS. The operator's next run waits for it, naming the killed run on every poll, until the lease expires
    (iotfleet_lock_ttl after it was taken), then takes it over, says from whom, runs to the end (the report
    written) and releases the lock."""
    argv, env = _command(tmp_path, moto, "-e", "iotfleet_lock_ttl=20")
    killed = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        owner = wait_for(lambda: _lease(boto3_iot).get("owner") or killed.poll() is not None, 300, "the first run's lease")
    finally:
        os.killpg(killed.pid, signal.SIGKILL)   # its own session: this run and its workers, nothing else
        killed.wait()
    assert owner is not True, "the first run ended before it took the lock"
    lease = _lease(boto3_iot)
    assert lease["owner"] == owner and lease["expires_at"], lease   # left behind
    assert not (tmp_path / "iotfleet-report.json").exists()

    proc = _run(tmp_path, moto, "-v")
    out = proc.stdout
    assert re.search(rf"iot_fleet_lock: waiting for the fleet lock iotfleet-lock-fleet: held by {re.escape(owner)} "
                     rf"since \S+, expires {lease['expires_at']}", out), out[-6000:]
    assert f"took it over from {owner}, whose lease expired {lease['expires_at']}" in out, out[-6000:]
    # the Pis are unreachable (failed), but the run went to its end: the report, the lock released
    assert proc.returncode != 0 and json.loads((tmp_path / "iotfleet-report.json").read_text())["finished"], out[-6000:]
    assert not _lease(boto3_iot).get("owner"), _lease(boto3_iot)


def test_check_mode_on_an_empty_account_predicts_and_writes_nothing(moto, boto3_iot, tmp_path):
    """--check against an empty account with every Pi unreachable: the CA is only predicted (no file), the
    registry step has no device to predict and is not run on the missing CA - no failure on the controller."""
    proc = _run(tmp_path, moto, "--check")
    out = proc.stdout
    assert all(_recap(out)[name]["unreachable"] == 1 for name in PIS), out[-6000:]
    assert _recap(out)["localhost"]["failed"] == 0 and "Cannot read the fleet CA certificate" not in out, out[-6000:]
    assert "the fleet CA" in out and "would be" in out, out[-6000:]
    assert not (tmp_path / "pki").exists()
    assert boto3_iot.list_ca_certificates()["certificates"] == [] and boto3_iot.list_policies()["policies"] == []
    assert boto3_iot.list_things()["things"] == [] and boto3_iot.list_thing_groups()["thingGroups"] == []
    report = json.loads((tmp_path / "iotfleet-report.json").read_text())
    assert report["check_mode"] and sorted(d["host"] for d in report["devices"]) == list(PIS)


def test_a_limited_run_runs_the_controller_part_for_its_pis_only(moto, boto3_iot, tmp_path):
    """--limit pi-a (how an operator redoes one Pi), without localhost in the limit: the controller's plays
    run for pi-a (the CA, the policy, pi-a's registration, the report), take and release the fleet lock once,
    and leave pi-b alone - not registered, not reported, not drift. The cloud part only (--tags cloud: the
    Pis are unreachable; the lab test runs the whole playbook)."""
    proc = _run(tmp_path, moto, "--limit", "pi-a", "--tags", "cloud", "-e", "iotfleet_register_offline=true")
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:]
    assert "localhost" not in _recap(out) and _recap(out)["pi-a"]["failed"] == 0, out[-6000:]
    assert len(boto3_iot.list_ca_certificates()["certificates"]) == 1
    assert [t["thingName"] for t in boto3_iot.list_things()["things"]] == ["pi-a"]
    report = json.loads((tmp_path / "iotfleet-report.json").read_text())
    assert [d["host"] for d in report["devices"]] == ["pi-a"], report
    assert re.fullmatch(r"[0-9a-f]{64}", report["devices"][0]["certificate_id"] or ""), report
    assert "(a run on part of the fleet" in out, out[-6000:]
    lock = boto3_iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")
    attributes = lock["thingGroupProperties"]["attributePayload"]["attributes"]
    assert not attributes.get("owner") and lock["version"] == 3, lock   # taken, extended, released: once each
    assert out.count("TASK [Take the fleet lock") == 1 and out.count("TASK [Release the fleet lock") == 1, out[-6000:]

    again = _run(tmp_path, moto, "--limit", "pi-a", "--tags", "cloud", "-e", "iotfleet_register_offline=true")
    assert again.returncode == 0 and re.search(r"pi-a\s+:\s+ok=\d+\s+changed=0\s", again.stdout), again.stdout[-6000:]
