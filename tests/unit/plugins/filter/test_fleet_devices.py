# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's device list (filter iotfleet.aws.fleet_devices).

Called directly with plain mappings, and through ansible-playbook with a real inventory (templated
host variables, group variables, the preparation marker), where its output must equal what the
Jinja loop it replaced in roles/registry/tasks/devices.yml built.
"""

import json

import pytest
from ansible.errors import AnsibleFilterError
from support.procs import ansible_playbook

from ansible_collections.iotfleet.aws.plugins.filter.fleet_devices import FilterModule
from ansible_collections.iotfleet.aws.plugins.filter.fleet_devices import fleet_devices


def test_registered_as_filter():
    assert FilterModule().filters()["fleet_devices"] is fleet_devices


def test_defaults_and_per_host_values():
    hostvars = {
        "pi-kitchen.lan": {},
        "garage": {"iotfleet_thing_name": "garage-01", "iotfleet_thing_attributes": {"room": "garage"},
                   "iotfleet_reactivate": "yes"},
    }
    hostvars = {host: dict(values, device_prepared=True) for host, values in hostvars.items()}
    assert fleet_devices(["pi-kitchen.lan", "garage"], hostvars) == [
        {"host": "pi-kitchen.lan", "thing_name": "pi-kitchen-lan", "attributes": {}, "reactivate": False},
        {"host": "garage", "thing_name": "garage-01", "attributes": {"room": "garage"}, "reactivate": True},
    ]


def test_bad_attributes_are_passed_on_for_iot_fleet_to_refuse_by_host():
    out = fleet_devices(["pi-1"], {"pi-1": {"iotfleet_thing_attributes": "not a dict"}})
    assert out[0]["attributes"] == "not a dict"


def test_preparation_marker():
    hostvars = {"a": {"device_prepared": True}, "b": {}, "c": {"device_prepared": False}}
    assert [d["host"] for d in fleet_devices(["a", "b", "c"], hostvars)] == ["a", "b", "c"]
    assert [d["host"] for d in fleet_devices(["a", "b", "c"], hostvars, prepare_ran=True)] == ["a"]
    offline = fleet_devices(["a", "b", "c"], hostvars, prepare_ran=True, register_offline="true")
    assert [d["host"] for d in offline] == ["a", "b", "c"]
    # a host the preparation did not prepare showed no installed certificate: iot_fleet keeps what the cache names
    assert [d.get("reached", True) for d in offline] == [True, False, False]
    assert [d.get("reached", True) for d in fleet_devices(["a", "b", "c"], hostvars)] == [True, False, False]


def test_inventory_groups_become_thing_groups_only_when_asked():
    hostvars = {"pi-1": {"group_names": ["pis", "site_a", "shelf_1"]}, "pi-2": {"group_names": ["pis"]}}
    assert all("thing_groups" not in d for d in fleet_devices(["pi-1", "pi-2"], hostvars))
    out = fleet_devices(["pi-1", "pi-2"], hostvars, thing_groups_from_inventory="yes", exclude_groups=["pis"])
    assert [d["thing_groups"] for d in out] == [["site_a", "shelf_1"], []]


def test_refusals():
    assert fleet_devices(None, {}) == []
    with pytest.raises(AnsibleFilterError, match="list of inventory host names"):
        fleet_devices("pi-1", {"pi-1": {}})
    with pytest.raises(AnsibleFilterError, match="'pi-9' is not a host of the inventory"):
        fleet_devices(["pi-9"], {"pi-1": {}})


def test_linear_in_the_fleet():
    """10,000 hosts in well under a second of pure filter work (no per-host scan of the list)."""
    import time

    hosts = [f"pi-{i}.lan" for i in range(10000)]
    hostvars = {h: {"device_prepared": True} for h in hosts}
    t0 = time.perf_counter()
    out = fleet_devices(hosts, hostvars, prepare_ran=True)
    assert len(out) == 10000 and out[-1]["thing_name"] == "pi-9999-lan"
    assert time.perf_counter() - t0 < 2.0


# The loop roles/registry/tasks/devices.yml had before this filter (the reference behaviour).
OLD_LOOP = """
      {%- set out = [] -%}
      {%- set prepare_ran = hostvars['localhost'].device_prepare_ran | default(false) -%}
      {%- for h in groups['pis'] | default([]) -%}
      {%-   if not prepare_ran or offline | bool or hostvars[h].device_prepared | default(false) -%}
      {%-     set _ = out.append({'host': h,
                                  'thing_name': hostvars[h].iotfleet_thing_name | default(h | iotfleet.aws.thing_name),
                                  'attributes': hostvars[h].iotfleet_thing_attributes | default({}),
                                  'reactivate': hostvars[h].iotfleet_reactivate | default(false) | bool}) -%}
      {%-   endif -%}
      {%- endfor -%}
      {{ out }}"""

INVENTORY = """\
localhost ansible_connection=local
[pis]
pi-kitchen.lan iotfleet_thing_attributes='{"room": "kitchen"}'
pi-garage.lan iotfleet_thing_name=garage-01 iotfleet_reactivate=true
pi-templated iotfleet_thing_name="{{ site }}-{{ inventory_hostname }}"
pi-offline
[pis:vars]
site=lab
"""

PLAYBOOK = """\
- hosts: pis
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        device_prepared: true
      when: inventory_hostname != 'pi-offline'
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        device_prepare_ran: "{{ prepare_ran | bool }}"
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: >-
          {{ {'old': lookup('ansible.builtin.vars', 'old_loop'),
              'new': groups['pis'] | iotfleet.aws.fleet_devices(hostvars, prepare_ran=prepare_ran | bool,
                                                                 register_offline=offline)} | to_json }}
      vars:
        old_loop: >-
OLD_LOOP
"""


@pytest.mark.parametrize("prepare_ran,offline", [(False, False), (True, False), (True, True)])
def test_same_list_as_the_jinja_loop_it_replaced(tmp_path, prepare_ran, offline):
    playbook = PLAYBOOK.replace("OLD_LOOP", OLD_LOOP.strip("\n").replace(
        "      {%", "          {%").replace("      {{", "          {{"))
    out = tmp_path / "out.json"
    run = ansible_playbook(tmp_path, playbook, {"pis.ini": INVENTORY},
                           {"out": str(out), "prepare_ran": prepare_ran, "offline": offline})
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    # the old loop had no "reached" (false for a host the preparation did not prepare)
    assert [{k: v for k, v in d.items() if k != "reached"} for d in result["new"]] == result["old"]
    by_host = {d["host"]: d for d in result["new"]}
    assert by_host["pi-templated"]["thing_name"] == "lab-pi-templated"
    assert by_host["pi-garage.lan"] == {"host": "pi-garage.lan", "thing_name": "garage-01", "attributes": {},
                                        "reactivate": True}
    assert by_host.get("pi-offline", {}).get("reached", False) is False
    assert ("pi-offline" in by_host) == (not prepare_ran or offline)


def test_the_certificate_installed_on_a_pi_is_passed_on_when_the_preparation_read_it():
    hostvars = {"pi-1": {"device_installed_certificate": "-----BEGIN CERTIFICATE-----\n..."}, "pi-2": {}}
    out = fleet_devices(["pi-1", "pi-2"], hostvars)
    assert out[0]["installed_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "installed_certificate" not in out[1]
