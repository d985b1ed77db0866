# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: fleet_devices
short_description: The device list of iotfleet.aws.iot_fleet, built from the inventory
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - Turns the hosts of the device group into the O(iotfleet.aws.iot_fleet#module:devices) list,
    one entry per host, in inventory order, in one pass (linear in the number of hosts).
  - The thing name is the host's C(iotfleet_thing_name), else the inventory name mapped by
    P(iotfleet.aws.thing_name#filter) (the rule of that filter with its
    O(iotfleet.aws.thing_name#filter:hostvars)); the attributes are C(iotfleet_thing_attributes) (default
    V({})), passed on unchecked (C(iot_fleet) fails a host with bad attributes alone, by name);
    C(reactivate) is C(iotfleet_reactivate) as the C(bool) filter reads it.
  - When the preparation play ran (O(prepare_ran)), only the hosts it prepared (C(device_prepared))
    are listed, unless O(register_offline) is set.
  - C(installed_certificate) is the host's C(device_installed_certificate) when the preparation set it.
  - C(reached=false) marks a host this run's preparation did not prepare (C(device_prepared) not set -
    unreachable with O(register_offline), or a run without the preparation, C(--tags cloud)), which could not show
    which certificate it holds.
  - The C(registry) role's C(devices) entry point uses it.
options:
  _input:
    description: The inventory names of the devices (C(groups['pis'])).
    type: list
    elements: str
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: dict
    required: true
  prepare_ran:
    description: Whether the preparation play ran (C(hostvars['localhost'].device_prepare_ran)).
    type: bool
    default: false
  register_offline:
    description: List the hosts the preparation play could not prepare as well.
    type: bool
    default: false
  thing_groups_from_inventory:
    description:
      - Give each entry C(thing_groups), the host's inventory groups (C(group_names)) except C(all),
        C(ungrouped) and O(exclude_groups) - the static thing groups its thing joins.
      - Without it, no entry has C(thing_groups) (no membership is managed).
    type: bool
    default: false
  exclude_groups:
    description: Inventory groups that are never thing groups (the device group, for example).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Register the fleet
  iotfleet.aws.iot_fleet:
    devices: "{{ groups['pis'] | iotfleet.aws.fleet_devices(hostvars) }}"
    ca_certificate: pki/ca/fleet-ca.pem
    ca_private_key: pki/ca/fleet-ca.key
    pki_dir: pki
"""

RETURN = r"""
_value:
  description: One entry per listed host.
  type: list
  elements: dict
  contains:
    host:
      description: The inventory name.
      type: str
    thing_name:
      description: The thing name.
      type: str
    attributes:
      description: The host's thing attributes, as given.
      type: raw
    reactivate:
      description: Whether an INACTIVE certificate of this host is set ACTIVE again.
      type: bool
    thing_groups:
      description: The host's inventory groups as thing groups (only with O(thing_groups_from_inventory)).
      type: list
      elements: str
    installed_certificate:
      description:
        - The certificate installed on the Pi, its key proven there (C(device_installed_certificate),
          set by the C(device) role's preparation on a Pi this controller holds no identity of); only
          when set.
      type: str
    reached:
      description:
        - V(false) for a host the preparation did not prepare in this run (only then present).
      type: bool
"""

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_bool

from ansible_collections.iotfleet.aws.plugins.filter.thing_name import host_value as _host_value
from ansible_collections.iotfleet.aws.plugins.filter.thing_name import host_thing_name


def fleet_devices(hosts, hostvars, prepare_ran=False, register_offline=False, thing_groups_from_inventory=False,
                  exclude_groups=()):
    if hosts is None:
        return []
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(f"fleet_devices expects a list of inventory host names, got {hosts!r}")
    only_prepared = to_bool(prepare_ran) and not to_bool(register_offline)
    with_groups = to_bool(thing_groups_from_inventory)
    excluded = {"all", "ungrouped"} | set(exclude_groups or ())
    devices = []
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"fleet_devices: {host!r} is not a host of the inventory")
        host_vars = hostvars[host]
        if only_prepared and not _host_value(host_vars, "device_prepared", False):
            continue
        device = {
            "host": host,
            "thing_name": host_thing_name(host, host_vars),
            "attributes": _host_value(host_vars, "iotfleet_thing_attributes", {}),
            "reactivate": to_bool(_host_value(host_vars, "iotfleet_reactivate", False)),
        }
        installed = _host_value(host_vars, "device_installed_certificate", None)
        if installed:
            device["installed_certificate"] = installed
        if not _host_value(host_vars, "device_prepared", False):
            device["reached"] = False   # it showed nothing: iot_fleet leaves its identity as the cache has it
        if with_groups:
            device["thing_groups"] = [g for g in _host_value(host_vars, "group_names", []) if g not in excluded]
        devices.append(device)
    return devices


class FilterModule:
    def filters(self):
        return {"fleet_devices": fleet_devices}
