#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_thing_type
version_added: 1.0.0
short_description: Manage AWS IoT thing types
description:
  - Creates, deprecates, undeprecates and deletes an AWS IoT thing type.
  - A thing with a thing type can have up to 50 attributes (3 without one); give things their type
    with M(iotfleet.aws.iot_thing) (O(iotfleet.aws.iot_thing#module:thing_type)).
  - AWS IoT fixes a thing type's description and searchable attributes when it is created. When the
    type exists and a declared O(description) or O(searchable_attributes) differs from AWS's, the
    module fails before any write and says what differs.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The name of the thing type.
      - 1-128 characters from C([a-zA-Z0-9:_-]). Invalid names fail before any AWS call.
    type: str
    required: true
    aliases: [thing_type_name]
  state:
    description:
      - V(present) creates the thing type (or checks it), and deprecates or undeprecates it as
        O(deprecated) says.
      - V(absent) deletes it. AWS IoT deletes a thing type only when it has been deprecated for
        5 minutes and no thing has it. The module fails before any write when the type is not
        deprecated or things still have it (it lists up to 10 of them), and fails clearly when AWS
        refuses because the 5 minutes have not passed; run it again later. It never waits and
        never deprecates by itself.
    type: str
    choices: [present, absent]
    default: present
  description:
    description:
      - The description of the thing type. Up to 2028 printable ASCII characters and spaces.
      - Set on creation only. On an existing type, a different value fails before any write;
        when not set, the description is not compared.
    type: str
  searchable_attributes:
    description:
      - Names of the thing attributes that can be searched (with M(iotfleet.aws.iot_thing_info)'s
        attribute filter, for example), at most 3, each 1-128 characters from C([a-zA-Z0-9_.,@/:#-]).
      - Set on creation only. On an existing type, a different set (the order does not matter) fails
        before any write; when not set, they are not compared.
    type: list
    elements: str
  deprecated:
    description:
      - V(true) deprecates the thing type (no new thing can get it; things that have it keep it),
        V(false) undoes a deprecation.
      - When not set, the deprecation is left alone (a new type is not deprecated).
    type: bool
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the thing type name, description, searchable attributes and whether it is deprecated.
  idempotent:
    support: full
notes:
  - "What AWS IoT allows: the name, description and searchable attributes are fixed at creation;
    the deprecation can be set and undone at any time; a type is deleted only after 5 minutes of
    deprecation and without things. To change a fixed property, create a type with another name, or
    delete this one and create it again."
  - The lab's AWS IoT stand-in (moto) deletes a thing type at once; the 5 minutes apply on AWS only.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The thing type of the fleet's Pis
  iotfleet.aws.iot_thing_type:
    name: raspberry-pi-zero
    description: Raspberry Pi Zero W running the iotfleet device client
    searchable_attributes: [site, model, firmware]

- name: No new things of the old type
  iotfleet.aws.iot_thing_type:
    name: raspberry-pi-zero-v1
    deprecated: true
  register: old_type

- name: AWS deletes a type 5 minutes after its deprecation
  ansible.builtin.pause:
    minutes: 5
  when: old_type is changed

- name: Delete the old type (no thing may have it any more)
  iotfleet.aws.iot_thing_type:
    name: raspberry-pi-zero-v1
    state: absent

- name: Undo a deprecation
  iotfleet.aws.iot_thing_type:
    name: raspberry-pi-zero
    deprecated: false
"""

RETURN = r"""
thing_type_name:
  description: The name of the thing type.
  returned: always
  type: str
  sample: raspberry-pi-zero
thing_type_arn:
  description: The thing type's ARN (null in check mode when the type would be created).
  returned: when O(state=present)
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:thingtype/raspberry-pi-zero
thing_type_id:
  description: The thing type's id (null in check mode when the type would be created).
  returned: when O(state=present)
  type: str
  sample: 5a1c0c52-1a2b-4c3d-8e9f-0a1b2c3d4e5f
description:
  description: The description (null when none).
  returned: when O(state=present)
  type: str
  sample: Raspberry Pi Zero W running the iotfleet device client
searchable_attributes:
  description: The searchable attribute names, in AWS's order.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["site", "model", "firmware"]
deprecated:
  description: Whether the thing type is deprecated after the run.
  returned: when O(state=present)
  type: bool
  sample: false
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._thing_type import run_thing_type


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["thing_type_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        searchable_attributes=dict(type="list", elements="str"),
        deprecated=dict(type="bool"),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_thing_type)


if __name__ == "__main__":
    main()
