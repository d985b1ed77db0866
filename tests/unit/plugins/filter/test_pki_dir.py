# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's PKI directory rule (filter iotfleet.aws.pki_dir), which every role's default reads.

Called directly with plain mappings, and through ansible-playbook with a real inventory, where it
must name the directory the two expressions it replaced named (the ca/registry roles' from the
controller, the device/rotate roles' ``inventory_dir ~ '/pki'`` from a Pi) - and the same one from
both sides, also for a Pi listed in a second inventory source.
"""

import json

import pytest
from ansible.errors import AnsibleFilterError
from support.procs import ansible_playbook

from ansible_collections.iotfleet.aws.plugins.filter.pki_dir import FilterModule
from ansible_collections.iotfleet.aws.plugins.filter.pki_dir import pki_dir


def test_registered_as_filter():
    assert FilterModule().filters()["pki_dir"] is pki_dir


def test_the_first_device_decides():
    hostvars = {"localhost": {"ansible_inventory_sources": ["/srv/fleet/pis.ini"]},
                "pi-1": {"inventory_dir": "/srv/fleet"}, "pi-2": {"inventory_dir": "/srv/other"}}
    assert pki_dir("localhost", hostvars, ["pi-1", "pi-2"]) == "/srv/fleet/pki"
    assert pki_dir("pi-2", hostvars, ["pi-1", "pi-2"]) == "/srv/fleet/pki"
    assert pki_dir("pi-2", hostvars) == "/srv/other/pki"                  # no device group: the host itself
    assert pki_dir("localhost", hostvars, []) == "/srv/fleet/pki"         # implicit localhost: the first source


def test_refusals():
    with pytest.raises(AnsibleFilterError, match="inventory name of a host"):
        pki_dir("", {})
    with pytest.raises(AnsibleFilterError, match="'pi-9' is not a host of the inventory"):
        pki_dir("localhost", {"localhost": {}}, ["pi-9"])
    with pytest.raises(AnsibleFilterError, match="set iotfleet_pki_dir"):
        pki_dir("localhost", {"localhost": {}})


PLAYBOOK = """\
- hosts: pis:localhost
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        content: >-
          {{ {'new': iotfleet_pki_dir | default(inventory_hostname | iotfleet.aws.pki_dir(
                       hostvars, groups[iotfleet_device_group | default('pis')] | default([]))),
              'controller_old': iotfleet_pki_dir | default((hostvars[(groups[iotfleet_device_group | default('pis')]
                                  | default([]) + ['localhost']) | first].inventory_dir
                                  | default(ansible_inventory_sources | first | ansible.builtin.dirname, true)) ~ '/pki'),
              'device_old': iotfleet_pki_dir | default(inventory_dir | default('none') ~ '/pki')} | to_json }}
      delegate_to: localhost
"""


@pytest.mark.parametrize("extra", [{}, {"iotfleet_pki_dir": "/elsewhere/pki"}])
def test_the_same_directory_as_the_expressions_it_replaced(tmp_path, extra):
    main, second = tmp_path / "inventory", tmp_path / "more"
    out = tmp_path / "out"
    out.mkdir()
    inventories = {"inventory/pis.ini": "[pis]\npi-1\npi-2\n", "more/late.ini": "[pis]\npi-late\n"}
    run = ansible_playbook(tmp_path, PLAYBOOK, inventories, dict(extra, out=str(out)), "-c", "local")
    assert run.returncode == 0, run.stdout + run.stderr
    seen = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(seen) == ["localhost", "pi-1", "pi-2", "pi-late"]
    expected = extra.get("iotfleet_pki_dir", str(main / "pki"))
    for host, paths in seen.items():
        assert paths["new"] == paths["controller_old"] == expected, host
        if host in ("pi-1", "pi-2"):
            assert paths["device_old"] == expected
    # the old device expression named another directory for a Pi of a second inventory source
    assert seen["pi-late"]["device_old"] == extra.get("iotfleet_pki_dir", str(second / "pki"))
