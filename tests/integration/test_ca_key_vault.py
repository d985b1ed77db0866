# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet CA key protected on the controller (issue 19), through a real ansible-playbook run against the
stand-in's AWS IoT API (``moto`` fixture):

- an Ansible Vault-encrypted key file, as in an AWX project (the vault password a Vault credential; here
  ``--vault-password-file``): the ca role registers the CA and iot_fleet signs a device with it, the file
  stays vaulted and no key material shows in the output;
- ``ca_private_key_passphrase``: the ca role creates the CA key encrypted with it and registers the CA; a
  wrong passphrase then fails the run before any AWS write, naming the file, never echoing it.
"""

import os
import subprocess
import sys

import pytest

from support.iotcore import module_defaults
from support.procs import ansible_playbook

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple"
WRONG = "Tr0ub4dor&3"

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
{module_defaults}
  tasks:
    - name: The fleet CA (the ca role)
      ansible.builtin.include_role:
        name: iotfleet.aws.ca
      vars:
        ca_certificate_path: "{{{{ ca_dir }}}}/fleet-ca.pem"
        ca_private_key_path: "{{{{ ca_dir }}}}/fleet-ca.key"
        ca_create: "{{{{ create | bool }}}}"

    - name: One device signed by the fleet CA
      iotfleet.aws.iot_fleet:
        devices: [{{thing_name: pi-vault}}]
        ca_certificate: "{{{{ ca_dir }}}}/fleet-ca.pem"
        ca_private_key: "{{{{ ca_dir }}}}/fleet-ca.key"
        ca_private_key_passphrase: "{{{{ ca_private_key_passphrase | default(omit, true) }}}}"
        pki_dir: "{{{{ pki }}}}"
        policy_name: vault-device
      register: fleet

    - name: Summary
      ansible.builtin.debug:
        msg: "REGISTERED {{{{ ca_registered.certificate_id }}}} {{{{ fleet.devices[0].certificate_id }}}}"
"""


def _x509():
    return pytest.importorskip("ansible_collections.iotfleet.aws.plugins.module_utils._x509")


def run(tmp_path, moto, extra_vars, *args):
    play = PLAYBOOK.format(module_defaults=module_defaults(moto.url))
    return ansible_playbook(tmp_path, play, {"hosts": "localhost ansible_connection=local\n"},
                            dict(dict(ca_dir=str(tmp_path / "pki" / "ca"), pki=str(tmp_path / "pki"), create=True),
                                 **extra_vars), *args)


@pytest.fixture
def policy(boto3_iot):
    boto3_iot.create_policy(policyName="vault-device",
                            policyDocument='{"Version": "2012-10-17", "Statement": []}')


def test_vaulted_ca_key_through_ansible_playbook(tmp_path, moto, boto3_iot, policy):
    x509 = _x509()
    cert, key = x509.create_ca("vaulted fleet CA")
    ca_dir = tmp_path / "pki" / "ca"
    ca_dir.mkdir(parents=True, mode=0o700)
    (ca_dir / "fleet-ca.pem").write_text(x509.certificate_pem(cert))
    key_path = ca_dir / "fleet-ca.key"
    key_path.write_text(x509.private_key_pem(key))
    password = tmp_path / "vault-password"
    password.write_text("vault s3cret\n")
    vault = os.path.join(os.path.dirname(sys.executable), "ansible-vault")
    subprocess.run([vault, "encrypt", "--vault-password-file", str(password), str(key_path)], check=True,
                   capture_output=True, env=dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home")))
    vaulted = key_path.read_text()
    assert vaulted.startswith("$ANSIBLE_VAULT;")

    proc = run(tmp_path, moto, dict(create=False), "--vault-password-file", str(password), "-v")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    ca_id = x509.certificate_id(cert)
    assert f"REGISTERED {ca_id} " in proc.stdout
    assert boto3_iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"] == "ACTIVE"
    device = x509.load_certificate(path=str(tmp_path / "pki" / "devices" / "pi-vault" / "certificate.pem"))
    assert x509.is_issued_by(device, cert)
    assert key_path.read_text() == vaulted                      # still vaulted, never rewritten
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr       # no key material in the output

    # without the vault password: the run fails naming the file, before AWS hears of it
    proc = run(tmp_path, moto, dict(create=False))
    assert proc.returncode != 0
    assert "Ansible Vault" in proc.stdout and str(key_path) in proc.stdout, proc.stdout[-4000:]


def test_passphrase_creates_an_encrypted_ca_and_a_wrong_one_fails_before_aws(tmp_path, moto, boto3_iot, policy):
    x509 = _x509()
    proc = run(tmp_path, moto, dict(ca_private_key_passphrase=PASSPHRASE), "-v")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    key_path = tmp_path / "pki" / "ca" / "fleet-ca.key"
    assert x509.is_encrypted_pem(key_path.read_text())   # openssl_privatekey: traditional PEM, Proc-Type ENCRYPTED
    assert PASSPHRASE not in proc.stdout + proc.stderr
    cert = x509.load_certificate(path=str(tmp_path / "pki" / "ca" / "fleet-ca.pem"))
    ca_id = x509.certificate_id(cert)
    assert boto3_iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"] == "ACTIVE"
    certificates = boto3_iot.list_certificates()["certificates"]

    # a wrong passphrase: the run fails before any AWS write (nothing more registered)
    proc = run(tmp_path, moto, dict(ca_private_key_passphrase=WRONG), "-v")
    assert proc.returncode != 0
    assert "wrong passphrase" in proc.stdout and str(key_path) in proc.stdout, proc.stdout[-4000:]
    assert WRONG not in proc.stdout + proc.stderr and PASSPHRASE not in proc.stdout + proc.stderr
    assert boto3_iot.list_certificates()["certificates"] == certificates   # nothing new registered
