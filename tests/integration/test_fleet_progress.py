# -*- coding: utf-8 -*-
"""Progress of a batched iot_fleet run (issue 13): a line per batch of devices while the module runs,
through ansible-playbook against the stand-in's API (``moto`` fixture), on the first run and on a
no-change rerun (changed=0); none with progress_every 0."""

import json
import os
import re
import subprocess
import sys

import pytest

from support.iotcore import module_defaults
from support.iotcore import register_ca_certificate

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{python}"
{module_defaults}
  tasks:
    - name: Register the fleet
      iotfleet.aws.iot_fleet:
        devices: >-
          {{%- set out = [] -%}}{{%- for i in range({n}) -%}}{{%- set _ = out.append({{'thing_name': 'progress-pi-' ~ i}}) -%}}{{%- endfor -%}}{{{{ out }}}}
        ca_certificate: "{ca_pem}"
        ca_private_key: "{ca_key}"
        pki_dir: "{pki}"
        policy_name: progress-device
        progress_every: {every}
      register: fleet
    - name: Summary
      ansible.builtin.debug:
        msg: "SUMMARY {{{{ fleet.devices | selectattr('changed') | list | length }}}} changed of {{{{ fleet.devices | length }}}}"
"""


def run(tmp_path, moto, ca, n, every):
    x509 = pytest.importorskip("ansible_collections.iotfleet.aws.plugins.module_utils._x509")
    ca_cert, ca_key = ca
    ca_pem, key_pem = tmp_path / "ca.pem", tmp_path / "ca.key"
    ca_pem.write_text(x509.certificate_pem(ca_cert))
    key_pem.write_text(x509.private_key_pem(ca_key))
    os.chmod(key_pem, 0o600)
    play = tmp_path / "play.yml"
    play.write_text(PLAYBOOK.format(python=sys.executable, module_defaults=module_defaults(moto.url), ca_pem=ca_pem, ca_key=key_pem,
                                    pki=tmp_path / "pki", n=n, every=every))
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           str(play)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    lines = re.findall(r"iot_fleet: (\d+)/(\d+) devices \(\d+ %\), (\d+) changed, (\d+) failed", proc.stdout)
    changed = re.search(r"SUMMARY (\d+) changed of (\d+)", proc.stdout)
    assert changed and int(changed.group(2)) == n
    recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", proc.stdout)
    return [tuple(int(v) for v in line) for line in lines], int(changed.group(1)), int(recap.group(1))


@pytest.fixture
def fleet_account(moto, boto3_iot):
    from ansible_collections.iotfleet.aws.plugins.module_utils import _x509

    ca = _x509.create_ca("progress CA")
    register_ca_certificate(boto3_iot, *ca)
    boto3_iot.create_policy(policyName="progress-device", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
    return ca


@pytest.mark.integration
def test_a_line_per_batch_first_run_and_rerun(tmp_path, moto, fleet_account):
    lines, changed, recap_changed = run(tmp_path, moto, fleet_account, 60, 25)
    assert [line[:2] for line in lines] == [(25, 60), (50, 60), (60, 60)]
    assert lines[-1][2:] == (60, 0) and changed == 60 and recap_changed == 1
    # the rerun: the same lines, nothing changed (the registry is read in pages once, not per batch)
    lines, changed, recap_changed = run(tmp_path, moto, fleet_account, 60, 25)
    assert lines == [(25, 60, 0, 0), (50, 60, 0, 0), (60, 60, 0, 0)]
    assert changed == 0 and recap_changed == 0
    assert not list((tmp_path / "tmp").rglob("iotfleet-progress-*")), "the progress file is removed"


@pytest.mark.integration
def test_no_lines_when_off_or_small(tmp_path, moto, fleet_account):
    lines, changed, recap_changed = run(tmp_path, moto, fleet_account, 12, 0)
    assert lines == [] and changed == 12 and recap_changed == 1
    lines, changed, recap_changed = run(tmp_path, moto, fleet_account, 12, 12)
    assert lines == [] and changed == 0 and recap_changed == 0
