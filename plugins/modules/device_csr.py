#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: device_csr
version_added: 1.0.0
short_description: Make a device's private key on the device and return its certificate signing request
description:
  - For key mode C(device) of the C(iotfleet.aws.device) role, where the private key is made on the
    device and never leaves it; only the certificate signing request (CSR) travels to the
    controller, which signs it with the fleet CA.
  - Creates the private key at O(path) when it is absent (mode V(0600), owned by O(owner)); an
    existing key is kept, and never returned. A key that cannot be parsed makes the module fail
    rather than replace it.
  - Keeps the CSR at O(csr_path) and returns it. The CSR is made again only when it is missing,
    does not match the key, or its subject is not C(CN=)O(common_name), so a rerun returns the same
    CSR and reports no change.
  - Needs the Python C(cryptography) package on the device (Debian C(python3-cryptography)).
author:
  - iotfleet.aws developers (@iotfleet)
options:
  path:
    description: Path of the private key on the device.
    type: path
    default: /etc/iotfleet/private.key
  csr_path:
    description: Path where the CSR (PEM) is kept on the device.
    type: path
    default: /etc/iotfleet/device.csr
  common_name:
    description: The CSR subject's common name; the thing name for AWS IoT.
    type: str
    required: true
  key_type:
    description:
      - Type of a new key. V(ec) is ECDSA on curve P-256, V(rsa) is RSA 2048 bits (slow on a Pi Zero).
        Both are accepted by AWS IoT.
      - An existing key is kept whatever its type.
    type: str
    choices: [ec, rsa]
    default: ec
  owner:
    description: User name or id that owns the key and the CSR (the user the device client runs as).
    type: str
  group:
    description: Group name or id of the key and the CSR.
    type: str
  directory_mode:
    description: Mode of the key's directory when the module has to create it.
    type: raw
    default: '0750'
  certificate_path:
    description:
      - The device certificate installed beside the key. When it is the key's certificate, it is
        returned (RV(installed_certificate)); it is never written.
    type: path
extends_documentation_fragment:
  - iotfleet.aws._attributes.DEVICE_MODULE
  - iotfleet.aws._attributes
attributes:
  check_mode:
    support: full
    details:
      - When the key does not exist yet, check mode reports a change and returns no CSR.
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - cryptography >= 3.0 (on the device)
seealso:
  - module: iotfleet.aws.device_bundle
"""

EXAMPLES = r"""
- name: Make the key on the Pi and get its CSR
  become: true
  iotfleet.aws.device_csr:
    common_name: "{{ iotfleet_thing_name }}"
    owner: pi
    group: pi
  register: csr

- name: Keep the CSR on the controller for signing
  delegate_to: localhost
  become: false
  ansible.builtin.copy:
    content: "{{ csr.csr }}"
    dest: "{{ iotfleet_pki_dir }}/devices/{{ iotfleet_thing_name }}/device.csr"
    mode: '0644'
"""

RETURN = r"""
csr:
  description: The CSR in PEM form. Not returned in check mode when the key does not exist yet.
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\n..."
key_created:
  description: Whether a new private key was (or in check mode would be) made.
  returned: always
  type: bool
csr_created:
  description: Whether a new CSR was (or in check mode would be) made.
  returned: always
  type: bool
public_key_sha256:
  description: SHA-256 of the public key (DER SubjectPublicKeyInfo), to match the certificate later.
  returned: success
  type: str
installed_certificate:
  description:
    - The certificate at O(certificate_path) (PEM, public), when it is the certificate of the key at
      O(path). A controller that holds no copy of the device's identity compares it with AWS IoT.
  returned: when O(certificate_path) holds the key's certificate
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._device_key import ensure_key_and_csr
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/iotfleet/private.key"},
            "csr_path": {"type": "path", "default": "/etc/iotfleet/device.csr"},
            "common_name": {"type": "str", "required": True},
            "key_type": {"type": "str", "choices": ["ec", "rsa"], "default": "ec"},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "directory_mode": {"type": "raw", "default": "0750"},
            "certificate_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    if not _x509.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography (Debian: python3-cryptography)"),
                         exception=str(_x509.CRYPTOGRAPHY_IMPORT_ERROR))
    try:
        result = ensure_key_and_csr(module.params, check_mode=module.check_mode)
    except IoTFleetError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (exc.filename or "a file", exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
