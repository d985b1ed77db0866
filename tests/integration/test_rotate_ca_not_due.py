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

from support.iotcore import CREDENTIALS, REGION
from support.procs import ansible_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """
- name: Rotate
  ansible.builtin.import_playbook: iotfleet.aws.rotate
"""


def run(tmp_path, moto, **extra):
    extra_vars = dict(iotfleet_pki_dir=str(tmp_path / "pki"), rotate_hosts=[], iotfleet_aws_endpoint_url=moto.url,
                      iotfleet_aws_region=REGION, iotfleet_aws_access_key=CREDENTIALS["aws_access_key_id"],
                      iotfleet_aws_secret_key=CREDENTIALS["aws_secret_access_key"], **extra)
    return ansible_playbook(tmp_path, PLAYBOOK, {"pis.ini": "[pis]\npi-a ansible_connection=local\n"}, extra_vars)


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
