#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_policy_attachment
version_added: 1.0.0
short_description: Attach an AWS IoT policy to a certificate or thing group, or detach it
description:
  - Attaches an AWS IoT policy to a target, a certificate or a thing group given by its ARN,
    or detaches it.
  - The policy and the target must already exist.
  - The target's attached policies are read once; the module writes only when the attachment
    has to change.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  policy_name:
    description:
      - The name of the policy.
    type: str
    required: true
    aliases: ['name']
  target:
    description:
      - The ARN of the target.
      - A certificate, C(arn:aws:iot:<region>:<account>:cert/<certificate id>), or a thing group,
        C(arn:aws:iot:<region>:<account>:thinggroup/<name>).
    type: str
    required: true
  state:
    description:
      - V(present) attaches the policy to the target, V(absent) detaches it.
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
      - The diff shows whether the policy is attached to the target before and after.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Attach the device policy to a device certificate
  iotfleet.aws.iot_policy_attachment:
    policy_name: fleet-device
    target: "{{ cert.certificate_arn }}"

- name: Attach it to every thing in a group instead
  iotfleet.aws.iot_policy_attachment:
    policy_name: fleet-device
    target: arn:aws:iot:eu-west-1:123456789012:thinggroup/kitchen

- name: Detach it
  iotfleet.aws.iot_policy_attachment:
    policy_name: fleet-device
    target: "{{ cert.certificate_arn }}"
    state: absent
"""

RETURN = r"""
policy_name:
  description: The name of the policy.
  returned: always
  type: str
  sample: fleet-device
target:
  description: The ARN of the target.
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:thinggroup/kitchen
attached:
  description: Whether the policy is attached to the target after the run (in check mode, would be).
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import run_policy_attachment
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        policy_name=dict(type="str", required=True, aliases=["name"]),
        target=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_policy_attachment)


if __name__ == "__main__":
    main()
