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
options:
  _input:
    description: The inventory host name.
    type: str
    required: true
  replacement:
    description: What each disallowed character becomes.
    type: str
    default: "-"
"""

EXAMPLES = r"""
- name: pi-kitchen.example.com becomes pi-kitchen-example-com
  ansible.builtin.debug:
    msg: "{{ inventory_hostname | iotfleet.aws.thing_name }}"
"""

RETURN = r"""
_value:
  description: A valid AWS IoT thing name.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.module_utils._errors import THING_NAME_DISALLOWED_RE as _DISALLOWED
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import THING_NAME_MAX


def thing_name(hostname, replacement="-"):
    if not isinstance(hostname, str) or not hostname:
        raise AnsibleFilterError(f"thing_name expects a non-empty host name, got {hostname!r}")
    if _DISALLOWED.search(replacement or ""):
        raise AnsibleFilterError(f"thing_name: replacement {replacement!r} is not allowed in a thing name")
    return _DISALLOWED.sub(replacement, hostname)[:THING_NAME_MAX]


class FilterModule:
    def filters(self):
        return {"thing_name": thing_name}
