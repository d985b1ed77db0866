#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_certificate_info
version_added: 1.0.0
short_description: List AWS IoT device certificates
description:
  - Returns AWS IoT device certificates, by id, the ones registered with a CA, or all of them.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  certificate_ids:
    description:
      - Look up these certificates (one DescribeCertificate each). Ids that are not registered are
        left out of the result.
    type: list
    elements: str
    aliases: [certificate_id]
  ca_certificate_id:
    description:
      - List the certificates registered with this CA (paginated ListCertificatesByCA).
      - Without O(certificate_ids) and O(ca_certificate_id) all certificates are listed
        (paginated ListCertificates).
    type: str
  include_certificate_pem:
    description:
      - Add each certificate's PEM (public) to the result. Listings do not return it, so this costs
        one DescribeCertificate per certificate.
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
- name: The certificates of the fleet CA
  iotfleet.aws.iot_certificate_info:
    ca_certificate_id: "{{ fleet_ca.certificate_id }}"
  register: fleet_certs

- name: Active ones
  ansible.builtin.debug:
    msg: "{{ fleet_certs.certificates | selectattr('status', 'eq', 'ACTIVE') | map(attribute='certificate_id') }}"

- name: One certificate with its PEM
  iotfleet.aws.iot_certificate_info:
    certificate_ids:
      - 9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
    include_certificate_pem: true
"""

RETURN = r"""
certificates:
  description: The certificates found.
  returned: always
  type: list
  elements: dict
  contains:
    certificate_id:
      description: The certificate id (SHA-256 of its DER encoding).
      type: str
      returned: always
    certificate_arn:
      description: The certificate ARN.
      type: str
      returned: always
    status:
      description: V(ACTIVE), V(INACTIVE), V(REVOKED), V(PENDING_TRANSFER) or V(PENDING_ACTIVATION).
      type: str
      returned: always
    creation_date:
      description: When the certificate was registered (ISO 8601).
      type: str
      returned: always
    ca_certificate_id:
      description:
        - The id of the CA the certificate is registered with. Listing all certificates does not
          return it unless O(include_certificate_pem=true); V(null) when unknown or registered
          without a CA.
      type: str
      returned: always
    certificate_pem:
      description: The certificate (PEM).
      type: str
      returned: when O(include_certificate_pem=true)
  sample:
    - certificate_id: 9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
      certificate_arn: "arn:aws:iot:eu-west-1:123456789012:cert/\
        9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
      status: ACTIVE
      creation_date: "2026-11-27T23:00:00+00:00"
      ca_certificate_id: 5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import certificate_info
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        certificate_ids=dict(type="list", elements="str", aliases=["certificate_id"]),
        ca_certificate_id=dict(type="str"),
        include_certificate_pem=dict(type="bool", default=False),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["certificate_ids", "ca_certificate_id"]],
    )
    module.run(
        certificate_info,
        module.iot_client(),
        certificate_ids=module.params["certificate_ids"],
        ca_certificate_id=module.params["ca_certificate_id"],
        include_pem=module.params["include_certificate_pem"],
    )


if __name__ == "__main__":
    main()
