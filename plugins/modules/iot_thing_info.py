#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_thing_info
version_added: 1.0.0
short_description: Get information about AWS IoT things
description:
  - Describes one thing by name, or lists the things of the account (all pages), optionally
    filtered by an attribute and/or a thing type.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The name of one thing to describe. A missing thing gives an empty RV(things) list.
      - Mutually exclusive with the list filters.
    type: str
    aliases: [thing_name]
  attribute_name:
    description:
      - List only things that have this attribute.
    type: str
  attribute_value:
    description:
      - With O(attribute_name), list only things whose attribute has this value.
    type: str
  thing_type:
    description:
      - List only things of this thing type.
    type: str
  include_principals:
    description:
      - Also return the principals (certificate ARNs) attached to each thing. This costs one call per thing.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._attributes.INFO_MODULE
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: One thing with its certificates
  iotfleet.aws.iot_thing_info:
    name: pi-zero-01
    include_principals: true
  register: thing

- name: All things of a site
  iotfleet.aws.iot_thing_info:
    attribute_name: site
    attribute_value: lab-1
  register: site_things

- name: All Pi Zeros
  iotfleet.aws.iot_thing_info:
    thing_type: raspberry-pi-zero
  register: pis
"""

RETURN = r"""
things:
  description: The things found.
  returned: always
  type: list
  elements: dict
  contains:
    thing_name:
      description: The thing name.
      type: str
      sample: pi-zero-01
    thing_arn:
      description: The thing's ARN.
      type: str
      sample: arn:aws:iot:eu-west-1:123456789012:thing/pi-zero-01
    thing_id:
      description: The thing's id.
      type: str
      returned: when O(name) is set
      sample: 8d8c1d2f-32a1-4f5e-9b0c-3c6b1a2f5e77
    thing_type:
      description: The thing type, null when none.
      type: str
      sample: raspberry-pi-zero
    attributes:
      description: The thing's attributes.
      type: dict
      sample: {"site": "lab-1"}
    version:
      description: The thing's registry version (changes with every update; do not compare it).
      type: int
      sample: 3
    principals:
      description: The principals attached to the thing.
      type: list
      elements: str
      returned: when O(include_principals=true)
      sample: ["arn:aws:iot:eu-west-1:123456789012:cert/3f5a..."]
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import describe_things


def main():
    argument_spec = dict(
        name=dict(type="str", aliases=["thing_name"]),
        attribute_name=dict(type="str"),
        attribute_value=dict(type="str"),
        thing_type=dict(type="str"),
        include_principals=dict(type="bool", default=False),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("name", "attribute_name"), ("name", "thing_type")],
        required_by={"attribute_value": "attribute_name"},
    )
    p = module.params
    module.run(
        describe_things,
        module.iot_client(),
        thing_name=p["name"],
        attribute_name=p["attribute_name"],
        attribute_value=p["attribute_value"],
        thing_type=p["thing_type"],
        include_principals=p["include_principals"],
    )


if __name__ == "__main__":
    main()
