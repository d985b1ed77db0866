#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_thing_group
version_added: 1.0.0
short_description: Manage AWS IoT thing groups, static and dynamic
description:
  - Creates, updates and deletes an AWS IoT thing group with its description and attributes.
  - A B(static) group (the default) can have a parent group, which builds a hierarchy; policies
    attached to a group (M(iotfleet.aws.iot_policy_attachment) with the group's ARN as target) apply
    to its things and to the things of its child groups.
  - A B(dynamic) group is made when O(query_string) is set. Its members are the things that match
    a fleet indexing query (fleet indexing must be enabled in the account and region).
  - Description and attributes are changed in place with one update call that carries the version
    read just before, so a concurrent change fails instead of being lost.
  - Put things into static groups with M(iotfleet.aws.iot_thing) (O(iotfleet.aws.iot_thing#module:thing_groups)).
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The name of the thing group.
      - 1-128 characters from C([a-zA-Z0-9:_-]). Invalid names fail before any AWS call.
    type: str
    required: true
    aliases: [thing_group_name]
  state:
    description:
      - V(present) creates or updates the group; V(absent) deletes it.
      - A static group with child groups is not deleted (the module fails and lists them); delete the
        children first. Things in the group are not deleted, they only leave it.
    type: str
    choices: [present, absent]
    default: present
  description:
    description:
      - The description of the group. Up to 2028 printable ASCII characters and spaces.
      - V("") removes the description. When not set, the description is left alone.
    type: str
  parent:
    description:
      - The name of the parent group (static groups only). It must exist and be a static group; the
        module checks this before any write.
      - AWS IoT sets a group's parent only when the group is created. A declared parent that differs
        from the existing group's (V("") means "no parent") fails before any write; to move a group,
        delete it and create it again.
      - When not set, the parent is left alone (and a new group is made without one).
    type: str
    aliases: [parent_group, parent_group_name]
  query_string:
    description:
      - The fleet indexing query of a dynamic group, for example V(attributes.site:lab-1). Setting it
        creates a dynamic group.
      - It can be changed on an existing dynamic group. An existing static group cannot become
        dynamic, nor the reverse (the module fails before any write).
      - When not set, an existing group's query is left alone.
    type: str
  index_name:
    description:
      - The index of a dynamic group's query. AWS IoT has one today, V(AWS_Things), its default.
      - When not set, AWS's default is used on creation and the index is left alone afterwards.
    type: str
  query_version:
    description:
      - The query language version of a dynamic group. AWS IoT has one today, V(2017-09-30), its default.
      - When not set, AWS's default is used on creation and the version is left alone afterwards.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the group name, description, attributes and parent, and for a dynamic group
        its query string, index name and query version.
  idempotent:
    support: full
notes:
  - "What AWS IoT allows: description and attributes change in place; a parent only at creation;
    a dynamic group's query string, index and query version change in place; dynamic groups have no
    parent and no child groups; a static group cannot become dynamic or the reverse."
  - Dynamic groups need fleet indexing (thing indexing) enabled; AWS refuses to create one otherwise.
    The number of dynamic groups per account is limited (100).
  - AWS IoT does not allow policies on dynamic groups; attach policies to static groups.
  - The lab's AWS IoT stand-in serves dynamic groups (fleet indexing must be turned on there too) and
    evaluates simple queries (C(thingName:), C(thingTypeName:), C(attributes.NAME:VALUE), AND, OR, NOT)
    when their members are listed; AWS evaluates any fleet indexing query, asynchronously.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.thing_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A group per site
  iotfleet.aws.iot_thing_group:
    name: site-lab-1
    description: Pis of the lab
    attributes:
      site: lab-1
  register: site

- name: A child group of the site (the parent is fixed from now on)
  iotfleet.aws.iot_thing_group:
    name: site-lab-1-cameras
    parent: site-lab-1

- name: Every thing of the site gets the device policy
  iotfleet.aws.iot_policy_attachment:
    policy_name: fleet-device
    target: "{{ site.thing_group_arn }}"

- name: Replace all attributes (remove the ones not listed)
  iotfleet.aws.iot_thing_group:
    name: site-lab-1
    attributes:
      site: lab-1
      floor: 2
    purge_attributes: true

- name: A dynamic group of the Pi Zeros with an old firmware (needs fleet indexing)
  iotfleet.aws.iot_thing_group:
    name: pi-zero-old-firmware
    query_string: "thingTypeName:raspberry-pi-zero AND attributes.firmware:1.0"

- name: Remove the child group, then the site group
  iotfleet.aws.iot_thing_group:
    name: "{{ item }}"
    state: absent
  loop: [site-lab-1-cameras, site-lab-1]
"""

RETURN = r"""
thing_group_name:
  description: The name of the group.
  returned: always
  type: str
  sample: site-lab-1
thing_group_arn:
  description: The group's ARN (null in check mode when the group would be created).
  returned: when O(state=present)
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:thinggroup/site-lab-1
thing_group_id:
  description: The group's id (null in check mode when the group would be created).
  returned: when O(state=present)
  type: str
  sample: 4f8d5a8e-32a1-4f5e-9b0c-3c6b1a2f5e77
parent_group:
  description: The name of the parent group (null for a root group and for dynamic groups).
  returned: when O(state=present)
  type: str
  sample: site-lab-1
description:
  description: The group's description after the run (null when none).
  returned: when O(state=present)
  type: str
  sample: Pis of the lab
attributes:
  description: The group's attributes after the run.
  returned: when O(state=present)
  type: dict
  sample: {"site": "lab-1"}
dynamic:
  description: Whether the group is a dynamic group.
  returned: when O(state=present)
  type: bool
  sample: false
query_string:
  description: The fleet indexing query of a dynamic group.
  returned: when O(state=present) and the group is dynamic
  type: str
  sample: "attributes.firmware:1.0"
index_name:
  description: The index of a dynamic group's query (null in check mode when AWS would choose it).
  returned: when O(state=present) and the group is dynamic
  type: str
  sample: AWS_Things
query_version:
  description: The query version of a dynamic group (null in check mode when AWS would choose it).
  returned: when O(state=present) and the group is dynamic
  type: str
  sample: "2017-09-30"
status:
  description: The membership status AWS reports for an existing dynamic group (V(ACTIVE), V(BUILDING), V(REBUILDING)).
  returned: when O(state=present), the group is dynamic, existed and its query did not change
  type: str
  sample: ACTIVE
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._thing_group import run_thing_group


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["thing_group_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        attributes=dict(type="dict"),
        purge_attributes=dict(type="bool", default=False),
        parent=dict(type="str", aliases=["parent_group", "parent_group_name"]),
        query_string=dict(type="str"),
        index_name=dict(type="str"),
        query_version=dict(type="str"),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_thing_group)


if __name__ == "__main__":
    main()
