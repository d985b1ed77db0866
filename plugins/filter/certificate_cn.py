# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: certificate_cn
short_description: The common name (CN) of a device certificate for an AWS IoT thing name
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - An X.509 common name holds at most 64 characters; AWS IoT thing names up to 128.
  - A thing name of at most 64 characters is its own CN. A longer one becomes its first 55
    characters, C(-) and the first 8 hex digits of the SHA-256 of the whole name (64 characters,
    stable, distinct for names that share their first 64) - the CN M(iotfleet.aws.iot_fleet) gives
    the device certificate, and the one a CSR made on the device (key mode C(device)) must carry.
options:
  _input:
    description: The thing name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The CN of the Pi's CSR
  ansible.builtin.debug:
    msg: "{{ iotfleet_thing_name | iotfleet.aws.certificate_cn }}"
"""

RETURN = r"""
_value:
  description: The certificate's common name, 1-64 characters.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import device_common_name


def certificate_cn(thing_name):
    if not isinstance(thing_name, str) or not thing_name:
        raise AnsibleFilterError(f"certificate_cn expects a non-empty thing name, got {thing_name!r}")
    return device_common_name(thing_name)


class FilterModule:
    def filters(self):
        return {"certificate_cn": certificate_cn}
