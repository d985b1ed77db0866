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
  action_group:
    support: none
    details:
      - A device-side module, not an AWS one; it is not in the C(iotfleet.aws.iot) group.
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

import grp
import hashlib
import os
import pwd
import stat
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


class CsrError(Exception):
    pass


def _id(value, lookup, what):
    if value is None or value == "":
        return -1
    if str(value).isdigit():
        return int(value)
    try:
        return lookup(str(value))[2]
    except KeyError:
        raise CsrError("%s %r does not exist on the device" % (what, value))


def _mode(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise CsrError("mode %r is not an octal number" % value)


def write_atomic(path, data, mode, uid, gid):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = None
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def fix_attributes(path, mode, uid, gid, check_mode):
    st = os.lstat(path)
    changed = False
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        changed = True
        if not check_mode:
            os.chown(path, uid, gid)
    if stat.S_IMODE(st.st_mode) != mode:
        changed = True
        if not check_mode:
            os.chmod(path, mode)
    return changed


def new_key(key_type):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_der(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def csr_matches(csr_pem, key, common_name):
    """True when csr_pem is a valid CSR for key with subject exactly CN=common_name."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, TypeError):
        return False
    if not csr.is_signature_valid:
        return False
    if csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != public_der(key):
        return False
    return csr.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def build_csr(key, common_name):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def ensure_key_and_csr(params, check_mode=False):
    common_name = params["common_name"]
    if not common_name or len(common_name) > 64:
        raise CsrError("common_name must be 1 to 64 characters (an X.509 CN limit), got %r" % common_name)
    uid = _id(params.get("owner"), pwd.getpwnam, "user")
    gid = _id(params.get("group"), grp.getgrnam, "group")
    key_path, csr_path = params["path"], params["csr_path"]
    result = {"changed": False, "key_created": False, "csr_created": False}

    directory = os.path.dirname(key_path)
    if not os.path.isdir(directory):
        result["changed"] = True
        if not check_mode:
            os.makedirs(directory, _mode(params["directory_mode"]))
            os.chown(directory, -1, gid)
            os.chmod(directory, _mode(params["directory_mode"]))

    key = None
    if os.path.exists(key_path):
        with open(key_path, "rb") as handle:
            try:
                key = serialization.load_pem_private_key(handle.read(), password=None)
            except (ValueError, TypeError):
                raise CsrError("%s exists but is not an unencrypted PEM private key; not replacing it" % key_path)
        result["changed"] |= fix_attributes(key_path, 0o600, uid, gid, check_mode)
    else:
        result["changed"] = result["key_created"] = result["csr_created"] = True
        if check_mode:
            return result
        key = new_key(params["key_type"])
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        write_atomic(key_path, pem, 0o600, uid, gid)

    csr_pem = None
    if os.path.exists(csr_path):
        with open(csr_path, "rb") as handle:
            csr_pem = handle.read()
        if not csr_matches(csr_pem, key, common_name):
            csr_pem = None
    if csr_pem is None:
        csr_pem = build_csr(key, common_name)
        result["changed"] = result["csr_created"] = True
        if not check_mode:
            write_atomic(csr_path, csr_pem, 0o644, uid, gid)
    else:
        result["changed"] |= fix_attributes(csr_path, 0o644, uid, gid, check_mode)
    result["csr"] = csr_pem.decode("ascii")
    result["public_key_sha256"] = hashlib.sha256(public_der(key)).hexdigest()
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
    if CRYPTOGRAPHY_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("cryptography (Debian: python3-cryptography)"),
                         exception=CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        result = ensure_key_and_csr(module.params, check_mode=module.check_mode)
    except CsrError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (exc.filename or "a file", exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
