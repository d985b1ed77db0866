# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ansible-playbook rotate.yml -i pis.ini -e iotfleet_rotate_ca=true`` when the fleet CA is not due (issue
19): nothing is rotated, and the run says so - the CA's expiry, iotfleet_ca_renew_before_days and how to
force it. The collection's own rotate.yml, its CA path only (rotate_hosts=[]: no Pi is touched), against the
stand-in's AWS IoT API (``moto`` fixture)."""

import os
import re

import pytest

from support.iotcore import CREDENTIALS, REGION, register_ca_certificate
from support.procs import ansible_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """
- name: Rotate
  ansible.builtin.import_playbook: iotfleet.aws.rotate
"""


def run(tmp_path, moto, *args, **extra):
    extra_vars = dict(iotfleet_pki_dir=str(tmp_path / "pki"), rotate_hosts=[], iotfleet_aws_endpoint_url=moto.url,
                      iotfleet_aws_region=REGION, iotfleet_aws_access_key=CREDENTIALS["aws_access_key_id"],
                      iotfleet_aws_secret_key=CREDENTIALS["aws_secret_access_key"], **extra)
    return ansible_playbook(tmp_path, PLAYBOOK, {"pis.ini": "[pis]\npi-a ansible_connection=local\n"}, extra_vars, *args)


def test_rotate_ca_not_due_says_so(tmp_path, moto):
    x509 = pytest.importorskip("ansible_collections.iotfleet.aws.plugins.module_utils._x509")
    cert, key = x509.create_ca("iotfleet fleet CA", days=3650)
    ca_dir = tmp_path / "pki" / "ca"
    ca_dir.mkdir(parents=True, mode=0o700)
    (ca_dir / "fleet-ca.pem").write_text(x509.certificate_pem(cert))
    (ca_dir / "fleet-ca.key").write_text(x509.private_key_pem(key))
    os.chmod(ca_dir / "fleet-ca.key", 0o600)

    proc = run(tmp_path, moto, iotfleet_rotate_ca=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    expiry = x509.not_valid_after(cert).strftime("%Y-%m-%d %H:%M:%S")
    line = re.search(r"fleet CA: not due - it expires (.*?) \((\d+) days from now\), later than\s+"
                     r"iotfleet_ca_renew_before_days=365 days: no CA rotation\. To rotate it now, run with\s+"
                     r"-e iotfleet_rotate_ca=true -e iotfleet_ca_renew_before_days=(\d+)", proc.stdout)
    assert line, proc.stdout[-6000:]
    assert line.group(1) == f"{expiry} UTC" and int(line.group(2)) in (3648, 3649)
    assert int(line.group(3)) == int(line.group(2)) + 1
    assert not (ca_dir / "next").exists()                       # nothing rotated

    # without iotfleet_rotate_ca the CA is not looked at: no such line
    proc = run(tmp_path, moto)
    assert proc.returncode == 0 and "fleet CA: not due" not in proc.stdout, proc.stdout[-4000:]

    # the forced run the message suggests rotates the CA (no Pi in the play: made, registered and switched at once)
    proc = run(tmp_path, moto, iotfleet_rotate_ca=True, iotfleet_ca_renew_before_days=int(line.group(3)))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "fleet CA: not due" not in proc.stdout, proc.stdout[-6000:]
    new = x509.load_certificate(path=str(ca_dir / "fleet-ca.pem"))
    assert x509.certificate_id(new) != x509.certificate_id(cert)
    assert f"fleet CA: {x509.certificate_id(new)} is the fleet CA" in proc.stdout, proc.stdout[-6000:]


def test_rotating_an_operators_own_ca_uses_the_next_ca_they_give_and_never_moves_their_files(tmp_path, moto, boto3_iot):
    """ca_create: false (a company CA): a due CA rotation without a next CA refuses before any write and names
    what to set; with ca_next_certificate_path / ca_next_private_key_path it registers that CA, switches to it in
    AWS IoT (no Pi in the play: nothing hangs under the old CA) and leaves every file of the operator's as it was."""
    x509 = pytest.importorskip("ansible_collections.iotfleet.aws.plugins.module_utils._x509")
    company = tmp_path / "company"
    company.mkdir(mode=0o700)
    files = {}
    for name in ("ca-2026", "ca-2036"):
        cert, key = x509.create_ca("ACME fleet CA", days=3650)
        files[name] = (company / f"{name}.crt", company / f"{name}.key", x509.certificate_id(cert))
        files[name][0].write_text(x509.certificate_pem(cert))
        files[name][1].write_text(x509.private_key_pem(key))
        os.chmod(files[name][1], 0o600)
        if name == "ca-2026":   # registered, as provision.yml's ca role does with the operator's CA
            register_ca_certificate(boto3_iot, cert, key)
    own = dict(ca_create=False, ca_certificate_path=str(files["ca-2026"][0]), ca_private_key_path=str(files["ca-2026"][1]),
               iotfleet_rotate_ca=True, iotfleet_ca_renew_before_days=4000)

    def snapshot():
        return {p.name: p.read_bytes() for p in company.iterdir()}

    before = snapshot()

    refused = run(tmp_path, moto, **own)
    out = " ".join(refused.stdout.split())
    assert refused.returncode != 0, refused.stdout[-6000:]
    assert f"fleet CA: {files['ca-2026'][0]} is your own CA (ca_create: false)" in out, out[-6000:]
    assert "set ca_next_certificate_path and ca_next_private_key_path" in out and "Nothing was written" in out, out[-6000:]
    assert snapshot() == before and not (company / "next").exists() and not (tmp_path / "pki" / "ca").exists()
    assert [c["certificateId"] for c in boto3_iot.list_ca_certificates()["certificates"]] == [files["ca-2026"][2]]
    lock = boto3_iot.describe_thing_group(thingGroupName="iotfleet-lock-fleet")   # released after the refusal
    assert not lock["thingGroupProperties"]["attributePayload"]["attributes"].get("owner"), lock

    given = dict(own, ca_next_certificate_path=str(files["ca-2036"][0]), ca_next_private_key_path=str(files["ca-2036"][1]))
    for args in (("--check",), ()):
        proc = run(tmp_path, moto, *args, **given)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        assert snapshot() == before
    out = " ".join(proc.stdout.split())
    assert f"fleet CA: {files['ca-2036'][2]} is the fleet CA in AWS IoT; the old one {files['ca-2026'][2]} is retired" in out, \
        out[-6000:]
    assert f"set ca_certificate_path={files['ca-2036'][0]} and ca_private_key_path={files['ca-2036'][1]}" in out, out[-6000:]
    assert snapshot() == before and not (company / "next").exists() and not (company / "retired").exists()
