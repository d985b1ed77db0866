#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: kms_fleet_ca
version_added: 1.0.0
short_description: A fleet CA whose private key is an AWS KMS key
description:
  - Makes sure of the two halves of a fleet CA whose key lives in AWS KMS (the C(iotfleet.aws.ca) role's
    C(iotfleet_ca_backend=kms)) - the KMS key (C(ECC_NIST_P256), KeyUsage C(SIGN_VERIFY)) and the self-signed
    CA certificate for it on the controller.
  - The key is found by O(kms_key) (a key id, key ARN or alias). When it is an alias that does not exist, the
    key is created (tagged C(iotfleet:fleet-ca)) and the alias made for it. A key id or ARN that does not exist
    fails. A key of another kind, or disabled, fails before any write, naming it; an alias is never moved.
  - The CA certificate at O(certificate_path) is made (signed through KMS C(Sign)) only when the file is
    missing. An existing file must be a CA certificate for the key's public key; it is never replaced.
  - The private key never exists outside KMS - nothing secret is read, written or returned.
  - Registering the CA with AWS IoT is M(iotfleet.aws.iot_ca_certificate)'s job (its O(iotfleet.aws.iot_ca_certificate#module:ca_kms_key)).
author:
  - iotfleet.aws developers (@iotfleet)
options:
  kms_key:
    description:
      - The KMS key - a key id, key ARN, alias name (C(alias/iotfleet-fleet-ca)) or alias ARN.
      - Only an alias is created when missing.
    type: str
    required: true
  certificate_path:
    description:
      - Where the CA certificate (PEM, public) is on the controller. Its directory is made private (0700)
        when this module creates it.
    type: path
    required: true
  certificate_content:
    description:
      - The CA certificate (PEM) when O(certificate_path) does not exist yet but the CA does - the C(ca) role passes
        the fleet CA it found in AWS IoT in check mode, when nothing may be written. It is checked against the key,
        never written.
    type: str
  common_name:
    description: The CA certificate's subject CN, when it is made.
    type: str
    default: iotfleet fleet CA
  validity_days:
    description: The CA certificate's validity in days, when it is made.
    type: int
    default: 3650
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - cryptography (on the controller)
notes:
  - AWS permissions - C(kms:DescribeKey), C(kms:GetPublicKey), C(kms:Sign); to create the key also
    C(kms:CreateKey), C(kms:CreateAlias) and C(kms:TagResource).
"""

EXAMPLES = r"""
- name: The fleet CA key in KMS and its certificate
  iotfleet.aws.kms_fleet_ca:
    kms_key: alias/iotfleet-fleet-ca
    certificate_path: "{{ pki_dir }}/ca/fleet-ca.pem"
    common_name: iotfleet fleet CA
  register: fleet_ca

- name: Register it with AWS IoT (the verification certificate is signed through KMS too)
  iotfleet.aws.iot_ca_certificate:
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    ca_kms_key: "{{ fleet_ca.key_arn }}"
"""

RETURN = r"""
key_arn:
  description: The KMS key's ARN (V(null) in check mode when the key would be created).
  returned: always
  type: str
  sample: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
key_created:
  description: Whether the key (and its alias) was created, or would be in check mode.
  returned: always
  type: bool
certificate_created:
  description: Whether the CA certificate file was made, or would be in check mode.
  returned: always
  type: bool
certificate_id:
  description: The CA certificate's id (AWS IoT's, the SHA-256 of its DER); V(null) in check mode when it would be made.
  returned: always
  type: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils._kms import ensure_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import HAS_CRYPTOGRAPHY


def main():
    argument_spec = dict(
        kms_key=dict(type="str", required=True, no_log=False),
        certificate_path=dict(type="path", required=True),
        certificate_content=dict(type="str"),
        common_name=dict(type="str", default="iotfleet fleet CA"),
        validity_days=dict(type="int", default=3650),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    p = module.params
    module.run(ensure_fleet_ca, module.kms_client(), p["kms_key"], p["certificate_path"], common_name=p["common_name"],
               validity_days=p["validity_days"], check_mode=module.check_mode, certificate_content=p["certificate_content"])


if __name__ == "__main__":
    main()
