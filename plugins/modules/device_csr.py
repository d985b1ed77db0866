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
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils import _files
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

KEY_MODE = 0o600
CSR_MODE = 0o644


class CsrError(IoTFleetError):
    """Bad input or a key the module must not replace (the message names the path)."""


def _load_key(key_path):
    try:
        return _x509.load_private_key(path=key_path, what="private key")
    except IoTFleetError:
        raise CsrError("%s exists but is not an unencrypted PEM private key; not replacing it" % key_path) from None


def ensure_key_and_csr(params, check_mode=False):
    """Keep (or make) the key at params['path'] and a CSR for it at params['csr_path'].

    Every input is checked before the first write; an existing key is never replaced.
    """
    common_name = params["common_name"]
    if not common_name or len(common_name) > 64:
        raise CsrError("common_name must be 1 to 64 characters (an X.509 CN limit), got %r" % common_name)
    uid = _files.resolve_uid(params.get("owner"))
    gid = _files.resolve_gid(params.get("group"))
    directory_mode = _files.parse_mode(params["directory_mode"])
    key_path, csr_path = params["path"], params["csr_path"]
    result = {"changed": False, "key_created": False, "csr_created": False}

    directory = os.path.dirname(key_path)
    if not os.path.isdir(directory):
        result["changed"] = True
        if not check_mode:
            _files.makedirs_private(directory, directory_mode)
            os.chown(directory, -1, -1 if gid is None else gid)

    if os.path.exists(key_path):
        key = _load_key(key_path)
        result["changed"] |= _files.fix_attributes(key_path, KEY_MODE, uid, gid, check_mode)
    else:
        result["changed"] = result["key_created"] = result["csr_created"] = True
        if check_mode:
            return result
        key = _x509.generate_private_key(params["key_type"])
        _files.write_file(key_path, _x509.private_key_pem(key).encode("ascii"), KEY_MODE, uid, gid)

    csr_pem = _files.read_optional(csr_path)
    if csr_pem is not None and not _x509.csr_fits(csr_pem, key, common_name):
        csr_pem = None
    if csr_pem is None:
        csr_pem = _x509.csr_pem(_x509.create_csr(key, common_name)).encode("ascii")
        result["changed"] = result["csr_created"] = True
        if not check_mode:
            _files.write_file(csr_path, csr_pem, CSR_MODE, uid, gid)
    else:
        result["changed"] |= _files.fix_attributes(csr_path, CSR_MODE, uid, gid, check_mode)
    result["csr"] = csr_pem.decode("ascii")
    result["public_key_sha256"] = _x509.public_key_sha256(key)
    return result


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
