# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: thing_name
short_description: Map an inventory host name to a valid AWS IoT thing name
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - AWS IoT thing names allow 1 to 128 characters from C([a-zA-Z0-9:_-]).
  - Every other character (a dot of an FQDN, a space) becomes O(replacement); the result is cut
    to 128 characters. Two hosts can map to the same name; the C(registry) role refuses that.
  - With O(hostvars), the fleet's rule for a host - its C(iotfleet_thing_name) when set, else the
    mapped inventory name. Every role and the report name a host's thing through it; the
    P(iotfleet.aws.fleet_devices#filter) list (the C(registry) role's) applies the same rule.
options:
  _input:
    description: The inventory host name.
    type: str
    required: true
  replacement:
    description: What each disallowed character becomes.
    type: str
    default: "-"
  hostvars:
    description:
      - The play's C(hostvars). When given, a host with C(iotfleet_thing_name) gets that name
        (as given, M(iotfleet.aws.iot_fleet) checks it), any other the mapped inventory name.
    type: dict
"""

EXAMPLES = r"""
- name: pi-kitchen.example.com becomes pi-kitchen-example-com
  ansible.builtin.debug:
    msg: "{{ inventory_hostname | iotfleet.aws.thing_name }}"

- name: The thing name of every Pi, iotfleet_thing_name where the inventory sets one
  ansible.builtin.debug:
    msg: "{{ groups['pis'] | map('iotfleet.aws.thing_name', hostvars=hostvars) | list }}"
"""

RETURN = r"""
_value:
  description: A valid AWS IoT thing name.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.errors import AnsibleUndefinedVariable

from ansible_collections.iotfleet.aws.plugins.module_utils._errors import THING_NAME_DISALLOWED_RE as _DISALLOWED
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import THING_NAME_MAX


MISSING = object()   # a host variable not set (None is a value: iot_fleet refuses it)


def host_value(host_vars, name, default=MISSING):
    """A host variable, templated as C(hostvars[h].name | default(d)) reads it; ``default`` when undefined."""
    try:
        return host_vars[name]
    except (KeyError, AnsibleUndefinedVariable):
        return default


def host_thing_name(host, host_vars, replacement="-"):
    """The fleet's rule: the host's C(iotfleet_thing_name) when set, else its mapped inventory name."""
    name = host_value(host_vars, "iotfleet_thing_name")
    return thing_name(host, replacement) if name is MISSING else name


def thing_name(hostname, replacement="-", hostvars=None):
    if not isinstance(hostname, str) or not hostname:
        raise AnsibleFilterError(f"thing_name expects a non-empty host name, got {hostname!r}")
    if hostvars is not None:
        if hostname not in hostvars:
            raise AnsibleFilterError(f"thing_name: {hostname!r} is not a host of the inventory")
        return host_thing_name(hostname, hostvars[hostname], replacement)
    if _DISALLOWED.search(replacement or ""):
        raise AnsibleFilterError(f"thing_name: replacement {replacement!r} is not allowed in a thing name")
    return _DISALLOWED.sub(replacement, hostname)[:THING_NAME_MAX]


class FilterModule:
    def filters(self):
        return {"thing_name": thing_name}
