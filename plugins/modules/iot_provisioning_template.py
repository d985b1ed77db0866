#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_provisioning_template
version_added: 1.0.0
short_description: Manage AWS IoT provisioning templates (JITP and fleet provisioning)
description:
  - Creates, updates and deletes an AWS IoT provisioning template, either for just-in-time
    provisioning (V(JITP), attached to a CA certificate's registration config) or for fleet
    provisioning (V(FLEET_PROVISIONING), used with claim certificates).
  - When the template body differs from the default version, a new version is created and set as
    the default. AWS keeps at most 5 versions; at the cap, the oldest non-default version is
    deleted first.
  - Enabled state, description, role and pre-provisioning hook are updated in place.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The template name, 1-36 characters from C([0-9A-Za-z_-]).
    type: str
    required: true
    aliases: [template_name]
  state:
    description:
      - V(present) creates or updates the template; V(absent) deletes it with all its versions.
    type: str
    choices: [present, absent]
    default: present
  template_body:
    description:
      - The template body, as a dict or as JSON text. It must have a C(Resources) section.
      - Compared as parsed JSON (key order and white space do not matter).
      - Required with O(state=present).
    type: raw
  provisioning_role_arn:
    description:
      - The ARN of the IAM role AWS IoT assumes to provision devices.
      - Required with O(state=present).
    type: str
  type:
    description:
      - The template type. It cannot be changed after creation; a different type fails with a clear message.
    type: str
    choices: [FLEET_PROVISIONING, JITP]
    default: FLEET_PROVISIONING
  enabled:
    description:
      - Whether the template is enabled.
    type: bool
    default: true
  description:
    description:
      - The template's description. When not set, it is left alone.
    type: str
  pre_provisioning_hook:
    description:
      - A Lambda function that validates device parameters before provisioning (fleet provisioning only).
      - V({}) removes the hook. When not set, the hook is left alone.
    type: dict
    suboptions:
      target_arn:
        description: The ARN of the Lambda function.
        type: str
      payload_version:
        description: The payload version (AWS's only version is V(2020-04-01)).
        type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the parsed template body, role, type, enabled state, description and hook;
        never version ids or dates.
  idempotent:
    support: full
notes:
  - "The template body may reference parameters such as C(AWS::IoT::Certificate::Id); it is stored
    as given and not validated beyond being a JSON object with C(Resources)."
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: JITP template for the fleet CA
  iotfleet.aws.iot_provisioning_template:
    name: fleet-jitp
    type: JITP
    provisioning_role_arn: arn:aws:iam::123456789012:role/iot-jitp
    template_body:
      Parameters:
        AWS::IoT::Certificate::CommonName: {Type: String}
        AWS::IoT::Certificate::Id: {Type: String}
      Resources:
        thing:
          Type: AWS::IoT::Thing
          Properties:
            ThingName: {Ref: AWS::IoT::Certificate::CommonName}
        certificate:
          Type: AWS::IoT::Certificate
          Properties:
            CertificateId: {Ref: AWS::IoT::Certificate::Id}
            Status: ACTIVE

- name: Disable fleet provisioning
  iotfleet.aws.iot_provisioning_template:
    name: fleet-claim
    provisioning_role_arn: arn:aws:iam::123456789012:role/iot-fleet-provisioning
    template_body: "{{ lookup('ansible.builtin.file', 'fleet-template.json') }}"
    enabled: false

- name: Delete a template
  iotfleet.aws.iot_provisioning_template:
    name: fleet-claim
    state: absent
"""

RETURN = r"""
template_name:
  description: The template name.
  returned: always
  type: str
  sample: fleet-jitp
template_arn:
  description: The template's ARN (null in check mode when it would be created, or when it was already absent).
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/fleet-jitp
template:
  description: The template after the run (empty after deletion).
  returned: always
  type: dict
  contains:
    template_body:
      description: The parsed template body.
      type: dict
    provisioning_role_arn:
      description: The provisioning role.
      type: str
    type:
      description: The template type.
      type: str
    enabled:
      description: Whether the template is enabled.
      type: bool
    description:
      description: The description.
      type: str
    pre_provisioning_hook:
      description: The pre-provisioning hook in boto3's shape (C(targetArn), C(payloadVersion)), empty when none.
      type: dict
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._provisioning_template import run_provisioning_template


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["template_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        template_body=dict(type="raw"),
        provisioning_role_arn=dict(type="str"),
        type=dict(type="str", choices=["FLEET_PROVISIONING", "JITP"], default="FLEET_PROVISIONING"),
        enabled=dict(type="bool", default=True),
        description=dict(type="str"),
        pre_provisioning_hook=dict(
            type="dict",
            options=dict(target_arn=dict(type="str"), payload_version=dict(type="str")),
        ),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["template_body", "provisioning_role_arn"])],
    )
    module.run_resource(run_provisioning_template)


if __name__ == "__main__":
    main()
