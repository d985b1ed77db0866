#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_thing_principal
version_added: 1.0.0
short_description: Attach a certificate to an AWS IoT thing, or detach it
description:
  - Attaches a principal (an AWS IoT certificate, given by its ARN) to a thing, or detaches it.
  - The thing and the certificate must already exist.
  - The principal's current things are read once; the module writes only when the attachment
    has to change.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  thing_name:
    description:
      - The name of the thing.
      - 1 to 128 characters from C([a-zA-Z0-9:_-]) (no spaces or dots).
    type: str
    required: true
  principal:
    description:
      - The ARN of the certificate, C(arn:aws:iot:<region>:<account>:cert/<certificate id>).
    type: str
    required: true
    aliases: ['certificate_arn']
  exclusive:
    description:
      - Attach the certificate as the only thing it may be attached to (C(EXCLUSIVE_THING)).
      - Fails before any write when the certificate is already attached to another thing.
      - An existing attachment to O(thing_name) is left as it is.
    type: bool
    default: false
  state:
    description:
      - V(present) attaches the certificate to the thing, V(absent) detaches it.
    type: str
    choices: ['present', 'absent']
    default: present
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows whether the certificate is attached to the thing before and after.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Attach the device certificate to its thing
  iotfleet.aws.iot_thing_principal:
    thing_name: pi-kitchen
    principal: "{{ cert.certificate_arn }}"
    exclusive: true

- name: Detach it
  iotfleet.aws.iot_thing_principal:
    thing_name: pi-kitchen
    principal: "{{ cert.certificate_arn }}"
    state: absent
"""

RETURN = r"""
thing_name:
  description: The name of the thing.
  returned: always
  type: str
  sample: pi-kitchen
principal:
  description: The ARN of the certificate.
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:cert/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
attached:
  description: Whether the certificate is attached to the thing after the run (in check mode, would be).
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import run_thing_principal
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        thing_name=dict(type="str", required=True),
        principal=dict(type="str", required=True, aliases=["certificate_arn"]),
        exclusive=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_thing_principal)


if __name__ == "__main__":
    main()
