# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: pki_dir
short_description: The fleet's PKI directory on the controller when iotfleet_pki_dir does not set it
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - C(pki) in the inventory directory of the first device (the first of O(devices), else the host
    itself), else beside the first inventory source - the directory the fleet CA (C(ca/)) and the
    per-device files (C(devices/<thing>/)) live in.
  - The one rule every role's default reads (C(ca_dir), C(registry_pki_dir), C(device_pki_dir),
    C(rotate_pki_dir)) after the shared inventory variable C(iotfleet_pki_dir), so that the
    controller and the device sides of a run name the same directory.
options:
  _input:
    description: The host the role runs for (C(inventory_hostname)).
    type: str
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: dict
    required: true
  devices:
    description: The inventory names of the devices (C(groups['pis'])).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: The fleet's PKI directory
  ansible.builtin.debug:
    msg: >-
      {{ iotfleet_pki_dir | default(inventory_hostname | iotfleet.aws.pki_dir(
           hostvars, groups[iotfleet_device_group | default('pis')] | default([]))) }}
"""

RETURN = r"""
_value:
  description: An absolute directory path (it need not exist).
  type: str
"""

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.filter.thing_name import host_value


def pki_dir(host, hostvars, devices=()):
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError(f"pki_dir expects the inventory name of a host, got {host!r}")
    first = next(iter(devices or ()), host)
    if first not in hostvars:
        raise AnsibleFilterError(f"pki_dir: {first!r} is not a host of the inventory")
    host_vars = hostvars[first]
    directory = host_value(host_vars, "inventory_dir", None)
    if not directory:
        sources = host_value(host_vars, "ansible_inventory_sources", None) or []
        if not sources:
            raise AnsibleFilterError(f"pki_dir: no inventory directory for {first!r}; set iotfleet_pki_dir")
        directory = os.path.dirname(sources[0])
    return os.path.join(directory, "pki")


class FilterModule:
    def filters(self):
        return {"pki_dir": pki_dir}
