#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_ca_certificate_info
version_added: 1.0.0
short_description: Find the CA certificates registered with AWS IoT (the fleet CA by its name)
description:
  - Returns the CA certificates registered in the account and region, oldest first, each with its
    PEM (public), subject CN and expiry.
  - The C(ca) role uses it to find the fleet CA in AWS when a controller has no copy of it
    (a second admin, a CI runner, an AWX job). AWS is the fleet's source of truth, so a missing
    file is never a reason to register a second CA.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  common_name:
    description:
      - Keep only the CAs of this fleet - subject CN equal to it, or a rotation's next CA
        (CN C(<common_name[:43]> <UTC time>), as the C(ca) role names it).
    type: str
  certificate_ids:
    description:
      - Look up these CA certificates (one DescribeCACertificate each) instead of listing all.
        Ids that are not registered are left out.
    type: list
    elements: str
    aliases: [certificate_id]
  statuses:
    description: Keep only CAs in these states.
    type: list
    elements: str
    choices: [ACTIVE, INACTIVE]
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._attributes.INFO_MODULE
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Find the fleet CA in AWS IoT
  iotfleet.aws.iot_ca_certificate_info:
    common_name: iotfleet fleet CA
    statuses: [ACTIVE]
  register: fleet_cas

- name: Its id
  ansible.builtin.debug:
    msg: "{{ fleet_cas.ca_certificates | map(attribute='certificate_id') }}"
"""

RETURN = r"""
ca_certificates:
  description: The CA certificates found, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    certificate_id:
      description: The CA certificate's id (SHA-256 of its DER encoding).
      type: str
      returned: always
    certificate_arn:
      description: Its ARN.
      type: str
      returned: always
    status:
      description: V(ACTIVE) or V(INACTIVE).
      type: str
      returned: always
    common_name:
      description: The subject CN (V(null) when the PEM does not parse).
      type: str
      returned: always
    not_after:
      description: The end of its validity (ISO 8601).
      type: str
      returned: always
    certificate_mode:
      description: V(DEFAULT) or V(SNI_ONLY), as AWS describes it.
      type: str
      returned: always
    auto_registration_status:
      description: V(ENABLE) or V(DISABLE) (JITP), as AWS describes it.
      type: str
      returned: always
    creation_date:
      description: When it was registered (ISO 8601).
      type: str
      returned: always
    certificate_pem:
      description: The CA certificate (PEM, public).
      type: str
      returned: always
  sample:
    - certificate_id: 5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c
      certificate_arn: "arn:aws:iot:eu-west-1:123456789012:cacert/\
        5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c"
      status: ACTIVE
      common_name: iotfleet fleet CA
      not_after: "2036-12-05T21:00:00+00:00"
      certificate_mode: DEFAULT
      auto_registration_status: DISABLE
      creation_date: "2026-12-07T21:00:00+00:00"
      certificate_pem: "-----BEGIN CERTIFICATE-----\n..."
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import ca_certificate_info
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        common_name=dict(type="str"),
        certificate_ids=dict(type="list", elements="str", aliases=["certificate_id"]),
        statuses=dict(type="list", elements="str", choices=["ACTIVE", "INACTIVE"]),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run(
        ca_certificate_info,
        module.iot_client(),
        common_name=module.params["common_name"],
        certificate_ids=module.params["certificate_ids"],
        statuses=module.params["statuses"],
    )


if __name__ == "__main__":
    main()
