#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_endpoint_info
version_added: 1.0.0
short_description: Get the AWS IoT endpoints devices connect to
description:
  - Returns the account's AWS IoT endpoint host names, by default the ATS data endpoint
    (C(iot:Data-ATS)) that devices use for MQTT over mutual TLS on port 8883.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  endpoint_types:
    description:
      - Which endpoints to look up.
      - V(iot:Data-ATS) is the data endpoint served with Amazon Trust Services certificates
        (trusted through Amazon Root CA 1); use it for devices.
      - V(iot:Data) is the legacy VeriSign-signed data endpoint; avoid it for new fleets.
      - V(iot:CredentialProvider) is the endpoint for exchanging a device certificate for
        temporary AWS credentials; V(iot:Jobs) is the jobs data endpoint.
    type: list
    elements: str
    choices: ['iot:Data-ATS', 'iot:Data', 'iot:CredentialProvider', 'iot:Jobs']
    default: ['iot:Data-ATS']
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._attributes.INFO_MODULE
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Look up the ATS data endpoint
  iotfleet.aws.iot_endpoint_info:
  register: endpoint

- name: Show the host devices connect to
  ansible.builtin.debug:
    msg: "mqtts://{{ endpoint.endpoint }}:8883"

- name: Data and credential provider endpoints
  iotfleet.aws.iot_endpoint_info:
    endpoint_types:
      - iot:Data-ATS
      - iot:CredentialProvider
  register: endpoints
"""

RETURN = r"""
endpoint:
  description: The host name of the first endpoint type asked for (by default the ATS data endpoint).
  returned: always
  type: str
  sample: a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com
endpoints:
  description: The host name of each endpoint type asked for.
  returned: always
  type: dict
  sample: {"iot:Data-ATS": "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"}
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._endpoint import describe_endpoints
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        endpoint_types=dict(
            type="list",
            elements="str",
            default=["iot:Data-ATS"],
            choices=["iot:Data-ATS", "iot:Data", "iot:CredentialProvider", "iot:Jobs"],
        ),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    client = module.iot_client()
    module.run(describe_endpoints, client, module.params["endpoint_types"])


if __name__ == "__main__":
    main()
