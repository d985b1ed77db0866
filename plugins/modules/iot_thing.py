#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_thing
version_added: 1.0.0
short_description: Manage AWS IoT things
description:
  - Creates, updates and deletes an AWS IoT thing (a device in the registry) with its
    attributes, thing type and thing groups.
  - An existing thing is never re-created; changes are made with one C(UpdateThing) call that
    carries the version read just before, so a concurrent change fails instead of being lost.
  - For many devices at once use the batched fleet module, which calls the same code.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The thing name, usually the device's client id.
      - 1-128 characters from C([a-zA-Z0-9:_-]). Spaces and dots are refused before any AWS call
        (map inventory host names such as V(pi-01.lab) to V(pi-01) first).
    type: str
    required: true
    aliases: [thing_name]
  state:
    description:
      - V(present) creates or updates the thing; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  thing_type:
    description:
      - The name of the thing type. It must exist (and not be deprecated); the module checks this
        before any write.
      - V("") removes the thing type. When not set, the thing type is left alone.
    type: str
  thing_groups:
    description:
      - Names of (static) thing groups the thing must belong to. The groups must exist.
      - When not set, group membership is left alone.
    type: list
    elements: str
  purge_thing_groups:
    description:
      - Remove the thing from groups that are not listed in O(thing_groups).
    type: bool
    default: false
  detach_principals:
    description:
      - With O(state=absent), detach every principal (certificate) from the thing before deleting it.
      - When V(false), deleting a thing with attached principals fails with a message that lists them.
      - The certificates themselves are not changed or deleted.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the thing name, attributes, thing type and thing groups.
  idempotent:
    support: full
notes:
  - Thing names are case-sensitive.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.thing_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A Pi Zero in the registry
  iotfleet.aws.iot_thing:
    name: pi-zero-01
    thing_type: raspberry-pi-zero
    attributes:
      site: lab-1
      model: pi-zero-w
      rev: 1.1

- name: Replace all attributes (remove the ones not listed)
  iotfleet.aws.iot_thing:
    name: pi-zero-01
    attributes:
      site: lab-2
    purge_attributes: true

- name: Put the thing into groups
  iotfleet.aws.iot_thing:
    name: pi-zero-01
    thing_groups: [lab, pi-zero]
    purge_thing_groups: true

- name: Decommission the thing, detaching its certificates
  iotfleet.aws.iot_thing:
    name: pi-zero-01
    state: absent
    detach_principals: true
"""

RETURN = r"""
thing_name:
  description: The thing name.
  returned: always
  type: str
  sample: pi-zero-01
thing_arn:
  description: The thing's ARN (null in check mode when the thing would be created).
  returned: when O(state=present)
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:thing/pi-zero-01
thing_id:
  description: The thing's id (null in check mode when the thing would be created).
  returned: when O(state=present)
  type: str
  sample: 8d8c1d2f-32a1-4f5e-9b0c-3c6b1a2f5e77
attributes:
  description: The thing's attributes after the run.
  returned: when O(state=present)
  type: dict
  sample: {"site": "lab-1", "model": "pi-zero-w"}
thing_type:
  description: The thing type after the run (null when none).
  returned: when O(state=present)
  type: str
  sample: raspberry-pi-zero
thing_groups:
  description: The names of the thing groups the thing is in after the run (sorted).
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["lab", "pi-zero"]
detached_principals:
  description: The principals (certificate ARNs) that were (or in check mode would be) detached.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["arn:aws:iot:eu-west-1:123456789012:cert/3f5a..."]
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import run_thing


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["thing_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        attributes=dict(type="dict"),
        purge_attributes=dict(type="bool", default=False),
        thing_type=dict(type="str"),
        thing_groups=dict(type="list", elements="str"),
        purge_thing_groups=dict(type="bool", default=False),
        detach_principals=dict(type="bool", default=False),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_thing)


if __name__ == "__main__":
    main()
