#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_ca_certificate
version_added: 1.0.0
short_description: Register a fleet CA certificate with AWS IoT
description:
  - Registers a certificate authority (CA) certificate with AWS IoT, so device certificates it
    signs can be registered with it (and, with O(allow_auto_registration), register themselves).
  - Manages the status, auto-registration and the just-in-time provisioning
    O(registration_config) of a registered CA, and removes it.
  - Everything is checked locally before any AWS call; the PEM parses, the certificate is a CA
    (basicConstraints CA=true) and within its validity, the private key matches it, the template
    is valid JSON. A problem fails the task without any change in AWS.
  - The CA is identified by its certificate id, the SHA-256 of its DER encoding, computed locally.
  - In V(default) mode, registration proves possession of the CA key. The module asks AWS for the
    registration code and signs a verification certificate (CN = that code) with the CA key, in
    memory. The CA key is never sent to AWS, logged or returned.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  ca_certificate:
    description:
      - Path to the CA certificate (PEM) on the controller.
      - Exactly one of O(ca_certificate) and O(ca_certificate_content) is required.
    type: path
  ca_private_key:
    description:
      - Path to the CA private key (PEM) on the controller.
      - Only needed to register a CA in O(certificate_mode=default); when given it must match the CA
        certificate.
      - A file encrypted with Ansible Vault works as is - the module's action plugin decrypts it on the
        controller with the play's vault password and passes its content in O(ca_private_key_content).
    type: path
  certificate_mode:
    description:
      - V(default) registers with a verification certificate (proof of possession of the CA key);
        the CA is bound to this account.
      - V(sni_only) registers without a verification certificate (no key needed); devices must
        send SNI when they connect. Used to register the same CA in several accounts.
      - The mode cannot be changed after registration (remove and register again).
    type: str
    choices: [default, sni_only]
    default: default
  status:
    description:
      - Status of the CA. Device certificates signed by an V(INACTIVE) CA cannot connect.
      - Lower case is accepted too, as for every certificate status of the collection.
    type: str
    choices: [ACTIVE, INACTIVE, active, inactive]
    default: ACTIVE
  allow_auto_registration:
    description:
      - Whether device certificates signed by this CA register themselves when they first connect
        (needed for just-in-time provisioning).
      - When not set, a new CA is registered without auto-registration and an existing CA is left
        as it is.
    type: bool
  registration_config:
    description:
      - The just-in-time provisioning configuration of the CA.
      - Keys left out keep their current value on an existing CA.
    type: dict
    suboptions:
      template_body:
        description:
          - The provisioning template, as a dict or JSON text. Compared as parsed JSON, so
            formatting and key order do not matter.
        type: raw
      template_name:
        description:
          - The name of a provisioning template (instead of O(registration_config.template_body)).
        type: str
      role_arn:
        description:
          - The ARN of the role AWS IoT assumes to provision devices.
        type: str
  state:
    description:
      - V(present) registers the CA (or updates it); V(absent) sets it inactive and deregisters it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), the CA is only removed when no ACTIVE device certificates are
        registered under it; the task fails naming them otherwise.
      - With O(force=true) those device certificates are set INACTIVE first (they are not deleted;
        the devices can no longer connect), then the CA is removed. RV(deactivated_certificates)
        lists them.
    type: bool
    default: false
notes:
  - Requires the C(cryptography) Python library on the host that runs the module (the controller).
  - The CA is looked up by its id (DescribeCACertificate), never by listing all CAs.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.ca_certificate
  - iotfleet.aws._options.ca_private_key
  - iotfleet.aws._options.ca_kms_key
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details:
      - Reads the current state (and the device certificates of the CA for O(state=absent)) but
        writes nothing; no registration code is requested.
  diff_mode:
    support: full
    details:
      - Shows the certificate id, mode, status, auto-registration status and registration
        config; never key material.
  idempotent:
    support: full
    details:
      - A server that does not report the auto-registration status (moto) leaves
        O(allow_auto_registration) of an existing CA unchanged.
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Register the fleet CA (proof of possession with the CA key)
  iotfleet.aws.iot_ca_certificate:
    ca_certificate: /etc/iotfleet/ca.pem
    ca_private_key: /etc/iotfleet/ca.key
  register: fleet_ca

- name: Register with just-in-time provisioning
  iotfleet.aws.iot_ca_certificate:
    ca_certificate_content: "{{ lookup('ansible.builtin.file', 'ca.pem') }}"
    ca_private_key_content: "{{ vault_fleet_ca_key }}"
    allow_auto_registration: true
    registration_config:
      role_arn: arn:aws:iam::123456789012:role/iot-jitp
      template_body: "{{ lookup('ansible.builtin.file', 'jitp-template.json') }}"

- name: Register the same CA in a second account without the key
  iotfleet.aws.iot_ca_certificate:
    ca_certificate: /etc/iotfleet/ca.pem
    certificate_mode: sni_only

- name: Deregister the CA, deactivating its device certificates
  iotfleet.aws.iot_ca_certificate:
    ca_certificate: /etc/iotfleet/ca.pem
    state: absent
    force: true
"""

RETURN = r"""
certificate_id:
  description: The CA certificate id (SHA-256 of its DER encoding).
  returned: always
  type: str
  sample: 5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c
certificate_arn:
  description: The ARN of the CA certificate; V(null) when it is not registered (yet, in check mode).
  returned: always
  type: str
  sample: arn:aws:iot:eu-west-1:123456789012:cacert/5b7e3c0f8e6a3c5d1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c6b8a0e2f4d6c
status:
  description: The CA status (V(ACTIVE) or V(INACTIVE)); V(null) after removal.
  returned: always
  type: str
  sample: ACTIVE
certificate_mode:
  description: V(DEFAULT) or V(SNI_ONLY).
  returned: when O(state=present)
  type: str
  sample: DEFAULT
auto_registration_status:
  description: V(ENABLE) or V(DISABLE); V(null) when the server does not report it.
  returned: when O(state=present)
  type: str
  sample: DISABLE
registration_config:
  description: The registration config, with the template body parsed.
  returned: when O(state=present)
  type: dict
  sample: {"role_arn": "arn:aws:iam::123456789012:role/iot-jitp", "template_body": {"Resources": {}}}
deactivated_certificates:
  description: Ids of the device certificates set INACTIVE by O(force=true) (or that would be, in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import run_ca_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import HAS_CRYPTOGRAPHY


def main():
    argument_spec = dict(
        ca_certificate=dict(type="path"),
        ca_certificate_content=dict(type="str"),
        ca_private_key=dict(type="path"),
        ca_private_key_content=dict(type="str", no_log=True),
        ca_private_key_passphrase=dict(type="str", no_log=True),
        ca_kms_key=dict(type="str", no_log=False),
        certificate_mode=dict(type="str", choices=["default", "sni_only"], default="default"),
        status=dict(type="str", choices=["ACTIVE", "INACTIVE", "active", "inactive"], default="ACTIVE"),
        allow_auto_registration=dict(type="bool"),
        registration_config=dict(
            type="dict",
            options=dict(
                template_body=dict(type="raw"),
                template_name=dict(type="str"),
                role_arn=dict(type="str"),
            ),
        ),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
    )
    module = IoTModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[
            ["ca_certificate", "ca_certificate_content"],
            ["ca_kms_key", "ca_private_key"],
            ["ca_kms_key", "ca_private_key_content"],
        ],
        required_one_of=[["ca_certificate", "ca_certificate_content"]],
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    # a CA key in KMS signs the verification certificate there
    module.run_resource(run_ca_certificate, make_kms_client=module.kms_client)


if __name__ == "__main__":
    main()
