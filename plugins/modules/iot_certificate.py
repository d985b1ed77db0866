#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_certificate
version_added: 1.0.0
short_description: Register a device certificate with AWS IoT and manage its status
description:
  - Registers an X.509 device certificate with AWS IoT, with the CA that signed it
    (RegisterCertificate) or without a CA (RegisterCertificateWithoutCA), and sets its status.
  - The certificate is identified by its certificate id, the SHA-256 of its DER encoding,
    computed locally, so one lookup tells whether it is registered.
  - Checked locally before any AWS call; the PEM parses, the certificate is within its validity
    and, with O(ca_certificate) or O(ca_certificate_content), was issued by that CA (issuer name and
    signature); V(REVOKED) is final. A problem fails the task without any change in AWS.
  - To create keys and certificates, see M(community.crypto.openssl_privatekey) and
    M(community.crypto.x509_certificate); the fleet roles issue them with the fleet CA.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  certificate:
    description:
      - Path to the device certificate (PEM) on the controller.
      - One of O(certificate), O(certificate_content) and O(certificate_id) is required.
    type: path
  certificate_id:
    description:
      - The id of an already registered certificate, to change its status or remove it without
        its PEM. A certificate cannot be registered by id.
      - When given together with the PEM, it must be the PEM's id.
    type: str
  ca_certificate:
    description:
      - Path to the CA certificate (PEM) that signed the device certificate. The device certificate
        is registered with this CA, which must be registered in AWS IoT.
      - Without O(ca_certificate) and O(ca_certificate_content) the certificate is registered without
        a CA.
    type: path
  status:
    description:
      - The certificate status. A new certificate is registered V(ACTIVE) by default (AWS itself
        registers V(INACTIVE) when no status is given).
      - V(REVOKED) is final; changing a revoked certificate to another status fails before any
        change. Issue and register a new certificate instead.
      - Lower case is accepted too.
    type: str
    choices: [ACTIVE, INACTIVE, REVOKED, active, inactive, revoked]
    default: ACTIVE
  state:
    description:
      - V(present) registers the certificate (or sets its status).
      - V(absent) sets an V(ACTIVE) certificate V(INACTIVE) and deletes it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), a certificate still attached to policies or things is not removed;
        the task fails naming them.
      - With O(force=true) they are detached first (RV(detached_policies), RV(detached_things)).
    type: bool
    default: false
notes:
  - Requires the C(cryptography) Python library on the host that runs the module (the controller).
  - For thousands of devices use the collection's batched fleet module, which runs the same code
    in one process.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.certificate
  - iotfleet.aws._options.ca_certificate
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Shows the certificate id, status and CA id.
  idempotent:
    support: full
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Register a device certificate signed by the fleet CA
  iotfleet.aws.iot_certificate:
    certificate: "certs/{{ inventory_hostname }}.pem"
    ca_certificate: /etc/iotfleet/ca.pem
  register: device_cert

- name: Register a certificate without a CA, inactive
  iotfleet.aws.iot_certificate:
    certificate_content: "{{ lookup('ansible.builtin.file', 'pi-001.pem') }}"
    status: INACTIVE

- name: Revoke a certificate by id (final)
  iotfleet.aws.iot_certificate:
    certificate_id: "{{ device_cert.certificate_id }}"
    status: REVOKED

- name: Remove a certificate, detaching its policies and things
  iotfleet.aws.iot_certificate:
    certificate_id: "{{ device_cert.certificate_id }}"
    state: absent
    force: true
"""

RETURN = r"""
certificate_id:
  description: The certificate id (SHA-256 of its DER encoding).
  returned: always
  type: str
  sample: 9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
certificate_arn:
  description:
    - The ARN of the certificate; V(null) after removal.
    - In check mode, for a certificate still to be registered, the ARN AWS IoT will give it
      (C(arn:<partition>:iot:<region>:<account>:cert/<id>), the id being the SHA-256 of the DER), so
      that M(iotfleet.aws.iot_policy_attachment) and M(iotfleet.aws.iot_thing_principal) chained after
      it run in check mode too. The account costs one STS C(GetCallerIdentity) call (no IAM permission
      needed; IAM C(GetUser) as a fallback), made only then.
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:cert/9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
status:
  description: The certificate status; V(null) after removal.
  returned: always
  type: str
  sample: ACTIVE
ca_certificate_id:
  description: The id of the CA the certificate is registered with, when known.
  returned: always
  type: str
  sample: 5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c
detached_policies:
  description: Names of the policies detached by O(force=true) (or attached, in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
detached_things:
  description: Names of the things detached by O(force=true) (or attached, in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import run_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import HAS_CRYPTOGRAPHY


def main():
    argument_spec = dict(
        certificate=dict(type="path"),
        certificate_content=dict(type="str"),
        certificate_id=dict(type="str"),
        ca_certificate=dict(type="path"),
        ca_certificate_content=dict(type="str"),
        status=dict(
            type="str", choices=["ACTIVE", "INACTIVE", "REVOKED", "active", "inactive", "revoked"], default="ACTIVE"
        ),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[
            ["certificate", "certificate_content"],
            ["ca_certificate", "ca_certificate_content"],
        ],
        required_one_of=[["certificate", "certificate_content", "certificate_id"]],
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    module.run_resource(run_certificate)


if __name__ == "__main__":
    main()
