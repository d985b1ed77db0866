#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_topic_rule
version_added: 1.0.0
short_description: Manage AWS IoT topic rules
description:
  - Creates, replaces, enables, disables and deletes an AWS IoT topic rule.
  - The rule is replaced only when a declared property differs from what AWS has.
    Only O(enabled) changing uses C(EnableTopicRule)/C(DisableTopicRule).
  - "Basic ingest: devices can publish straight to a rule, without the cost of the message
    broker, on the reserved topic C($aws/rules/<rule name>/<any topic>). The rule's SQL then
    sees the topic after that prefix. For example the rule V(mydata) receives messages published on
    C($aws/rules/mydata/sensors/temperature); its SQL still selects C(FROM 'sensors/temperature')."
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The rule name, 1-128 characters from C([a-zA-Z0-9_]) (no dashes). Invalid names fail
        before any AWS call.
    type: str
    required: true
    aliases: [rule_name]
  state:
    description:
      - V(present) creates or updates the rule; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  sql:
    description:
      - "The rule's SQL statement, for example V(SELECT * FROM 'sensors/#')."
      - Required with O(state=present).
    type: str
  sql_version:
    description:
      - The version of the AWS IoT SQL rules engine.
    type: str
    choices: ['2015-10-08', '2016-03-23', 'beta']
    default: '2016-03-23'
  description:
    description:
      - The rule's description. Unset means empty.
    type: str
  actions:
    description:
      - The rule's actions, in boto3's shape as-is (the keys are AWS's camelCase names, they are not
        converted), for example C(republish) with C(topic) and C(roleArn), see the examples.
      - Each item is a dict with exactly one key, the action type (C(republish), C(s3), C(lambda),
        C(dynamoDBv2), C(sqs), ...). At most 10 actions.
      - Keys inside an action that you do not declare are not compared (AWS may fill in defaults).
        To remove an optional key you set before, change it explicitly or recreate the rule.
    type: list
    elements: dict
    default: []
  error_action:
    description:
      - The action taken when an action fails, in the same shape as one item of O(actions).
      - Unset means no error action (an existing one is removed).
    type: dict
  enabled:
    description:
      - Whether the rule is enabled.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the normalised rule (sql, description, sql version, enabled, actions, error action).
  idempotent:
    support: full
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Basic ingest rule (devices publish to $aws/rules/mydata/<topic>)
  iotfleet.aws.iot_topic_rule:
    name: mydata
    sql: "SELECT *, topic() AS topic FROM 'data/#'"
    description: Fleet telemetry
    actions:
      - republish:
          topic: "fleet/${topic()}"
          roleArn: arn:aws:iam::123456789012:role/iot-republish
    error_action:
      republish:
        topic: fleet/errors
        roleArn: arn:aws:iam::123456789012:role/iot-republish

- name: Disable the rule
  iotfleet.aws.iot_topic_rule:
    name: mydata
    sql: "SELECT *, topic() AS topic FROM 'data/#'"
    description: Fleet telemetry
    actions:
      - republish:
          topic: "fleet/${topic()}"
          roleArn: arn:aws:iam::123456789012:role/iot-republish
    enabled: false

- name: Delete the rule
  iotfleet.aws.iot_topic_rule:
    name: mydata
    state: absent
"""

RETURN = r"""
rule_name:
  description: The rule name.
  returned: always
  type: str
  sample: mydata
rule_arn:
  description: The rule's ARN (null in check mode when the rule would be created, and after deletion when it was missing).
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:rule/mydata
rule:
  description:
    - The normalised rule after the run (empty after deletion), with boto3's payload keys.
  returned: always
  type: dict
  contains:
    sql:
      description: The SQL statement.
      type: str
    description:
      description: The description.
      type: str
    awsIotSqlVersion:
      description: The SQL version.
      type: str
    ruleDisabled:
      description: Whether the rule is disabled.
      type: bool
    actions:
      description: The actions.
      type: list
      elements: dict
    errorAction:
      description: The error action, null when none.
      type: dict
  sample:
    sql: "SELECT * FROM 'data/#'"
    description: ""
    awsIotSqlVersion: "2016-03-23"
    ruleDisabled: false
    actions: [{"republish": {"topic": "fleet/out", "roleArn": "arn:aws:iam::123456789012:role/iot-republish"}}]
    errorAction: null
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._topic_rule import run_topic_rule


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["rule_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        sql=dict(type="str"),
        sql_version=dict(type="str", choices=["2015-10-08", "2016-03-23", "beta"], default="2016-03-23"),
        description=dict(type="str"),
        actions=dict(type="list", elements="dict", default=[]),
        error_action=dict(type="dict"),
        enabled=dict(type="bool", default=True),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["sql"])],
    )
    module.run_resource(run_topic_rule)


if __name__ == "__main__":
    main()
