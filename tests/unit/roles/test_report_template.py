# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/templates/report.j2 through ansible-playbook: a registered Pi takes its thing name and
certificate from the registry step's result (registry_fleet_by_host), a Pi the step did not list
from the fleet's thing name rule (iotfleet_thing_name, templated, else the mapped inventory name)."""

import json
from pathlib import Path

from support.procs import ansible_playbook

REPORT = Path(__file__).resolve().parents[3] / "playbooks" / "templates" / "report.j2"

INVENTORY = """\
localhost ansible_connection=local
[pis]
pi-1.lan
pi-2.lan iotfleet_thing_name="{{ site }}-two"
pi-3.lan
[pis:vars]
site=lab
"""

PLAYBOOK = """\
- hosts: pis
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        verify_result: {thing_name: pi-1-lan, ok: true, step: done, cause: '', elapsed: 0.5}
      when: inventory_hostname == 'pi-1.lan'
- hosts: localhost
  gather_facts: false
  vars:
    _report_hosts: "{{ groups['pis'] }}"
  tasks:
    - ansible.builtin.set_fact:
        registry_fleet_by_host:
          pi-1.lan: {host: pi-1.lan, thing_name: registered-1, certificate_id: "{{ cert_id }}", certificate_arn: arn:x,
                     changes: [], failed: false}
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ lookup('ansible.builtin.template', report) | trim }}"
"""
CERT_ID = "ab" * 32   # a certificate id as AWS makes them (64 hex); the report keeps only such


def test_registered_and_unlisted_pis(tmp_path):
    out = tmp_path / "report.json"
    run = ansible_playbook(tmp_path, PLAYBOOK, {"pis.ini": INVENTORY}, {"out": str(out), "report": str(REPORT), "cert_id": CERT_ID}, "-c", "local")
    assert run.returncode == 0, run.stdout + run.stderr
    by_host = {e["host"]: e for e in json.loads(out.read_text())}
    assert by_host["pi-1.lan"]["thing_name"] == "registered-1"
    assert by_host["pi-1.lan"]["certificate_id"] == CERT_ID and by_host["pi-1.lan"]["verify_ok"] is True
    assert by_host["pi-1.lan"]["line"].startswith(f"pi-1.lan: thing=registered-1 certificate={CERT_ID} verify=OK")
    assert by_host["pi-2.lan"]["thing_name"] == "lab-two"
    assert by_host["pi-3.lan"]["thing_name"] == "pi-3-lan"
    assert by_host["pi-3.lan"]["certificate_id"] is None and "NOT VERIFIED" in by_host["pi-3.lan"]["result"]


def test_a_pi_not_registered_in_this_run_whose_certificate_the_controller_holds_keeps_its_identity(tmp_path):
    """The controller forgot the Pi's key once it verified (iotfleet_keep_device_keys=false), so each run asks the
    Pi first: a Pi that fails that (unreachable, sudo or python3 gone) is not registered, and its report line says
    its identity stays - not "no identity made" (pi-2's certificate is cached, pi-3 never had one)."""
    (tmp_path / "pki" / "devices" / "lab-two").mkdir(parents=True)
    (tmp_path / "pki" / "devices" / "lab-two" / "certificate.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    playbook = PLAYBOOK.replace("      when: inventory_hostname == 'pi-1.lan'\n", """      when: inventory_hostname == 'pi-1.lan'
    - ansible.builtin.set_fact:
        device_prepare_problem: python3 is missing
      when: inventory_hostname == 'pi-2.lan' and problem | bool
""")
    for problem, expected in ((False, "NOT VERIFIED (unreachable in preparation; its identity left as it is)"),
                              (True, "NOT VERIFIED (python3 is missing)")):
        out = tmp_path / "report.json"
        run = ansible_playbook(tmp_path, playbook, {"pis.ini": INVENTORY},
                               {"out": str(out), "report": str(REPORT), "cert_id": CERT_ID, "problem": problem},
                               "-c", "local")
        assert run.returncode == 0, run.stdout + run.stderr
        by_host = {e["host"]: e for e in json.loads(out.read_text())}
        assert by_host["pi-2.lan"]["result"] == expected, by_host["pi-2.lan"]
        assert by_host["pi-3.lan"]["result"].startswith("NOT VERIFIED (unreachable in preparation; no identity made")
