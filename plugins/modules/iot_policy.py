#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_policy
version_added: 1.0.0
short_description: Manage AWS IoT policies
description:
  - Creates, updates and deletes an AWS IoT policy (the permissions a device certificate gets).
  - The policy document is compared with the current default version after normalisation
    (order of statements and list items, a single value versus a one-element list, a missing
    C(Version) do not count). A changed document becomes a new default policy version.
  - AWS IoT keeps at most five versions of a policy. When the policy already has five, the
    oldest version that is not the default is deleted before the new one is created.
  - The default version id is never compared; it changes whenever the document changes.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The name of the policy.
      - 1 to 128 characters from C([a-zA-Z0-9_+=,.@-]).
    type: str
    required: true
    aliases: ['policy_name']
  policy_document:
    description:
      - The policy document, as a dictionary or as JSON text.
      - Required when O(state=present). Invalid JSON fails before any AWS call.
    type: raw
  state:
    description:
      - V(present) creates the policy or makes O(policy_document) its default version.
      - V(absent) deletes the policy and all its versions.
    type: str
    choices: ['present', 'absent']
    default: present
  detach:
    description:
      - With O(state=absent), detach the policy from every target (certificates, thing groups)
        before deleting it.
      - When V(false), deleting a policy that is still attached fails and lists the targets.
    type: bool
    default: false
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - O(tags) are read with C(ListTagsForResource) only when O(tags) is set, so leaving it unset
    costs no extra call.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the policy name and the parsed default policy document before and after,
        and the tags when O(tags) is set.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: A least-privilege device policy (thing name = client id)
  iotfleet.aws.iot_policy:
    name: fleet-device
    policy_document:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: iot:Connect
          Resource: "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"
        - Effect: Allow
          Action: [iot:Publish, iot:Receive]
          Resource: "arn:aws:iot:*:*:topic/test"
        - Effect: Allow
          Action: iot:Subscribe
          Resource: "arn:aws:iot:*:*:topicfilter/test"

- name: The document from a file
  iotfleet.aws.iot_policy:
    name: fleet-device
    policy_document: "{{ lookup('ansible.builtin.file', 'device-policy.json') }}"

- name: A tagged policy (other tags are removed, as O(purge_tags) defaults to true)
  iotfleet.aws.iot_policy:
    name: fleet-device
    policy_document: "{{ lookup('ansible.builtin.file', 'device-policy.json') }}"
    tags:
      fleet: kitchen

- name: Delete the policy, detaching it from every certificate first
  iotfleet.aws.iot_policy:
    name: fleet-device
    state: absent
    detach: true
"""

RETURN = r"""
policy_name:
  description: The name of the policy.
  returned: always
  type: str
  sample: fleet-device
policy_arn:
  description: The ARN of the policy (V(null) when it does not exist, or in check mode before it is created).
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:policy/fleet-device
default_version_id:
  description:
    - The id of the default policy version.
    - V(null) with O(state=absent), and in check mode when a version would be created.
  returned: always
  type: str
  sample: "3"
policy_document:
  description: The parsed default policy document (V(null) with O(state=absent)).
  returned: always
  type: dict
  sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
tags:
  description: The policy's tags after the run (in check mode, as they would be).
  returned: when O(tags) is set and O(state=present)
  type: dict
  sample: {"fleet": "kitchen"}
pruned_versions:
  description: Version ids deleted to stay within the five-version limit before a new version was created.
  returned: when a new policy version was created
  type: list
  elements: str
  sample: ["1"]
detached_targets:
  description: The targets the policy was (or in check mode would be) detached from.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["arn:aws:iot:eu-west-1:123456789012:cert/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"]
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import run_policy


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["policy_name"]),
        policy_document=dict(type="raw"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        detach=dict(type="bool", default=False),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["policy_document"])],
        supports_check_mode=True,
    )
    module.run_resource(run_policy)


if __name__ == "__main__":
    main()
