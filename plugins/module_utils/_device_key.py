# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The device's own key and CSR (key mode device), on the Pi: made once, never replaced, never
returned. device_csr runs it alone; device_bundle runs it in the run it makes anyway (a known Pi's
preparation), so a rerun needs no run of its own for it. Imports only what the Pi has (_errors,
_files, _x509)."""

import os

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

    params: path, csr_path, common_name, key_type, owner, group, directory_mode, certificate_path
    (optional). Every input is checked before the first write; an existing key is never replaced.
    Returns changed, key_created, csr_created and (unless check mode found no key) csr and
    public_key_sha256, and installed_certificate when the certificate at certificate_path is the key's.
    """
    common_name = params["common_name"]
    if not common_name or len(common_name) > 64:
        raise CsrError("common_name must be 1 to 64 characters (an X.509 CN limit), got %r" % common_name)
    uid = _files.resolve_uid(params.get("owner"))
    gid = _files.resolve_gid(params.get("group"))
    directory_mode = _files.parse_mode(params.get("directory_mode"), "0750")
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
    installed = installed_certificate(params.get("certificate_path"), key)
    if installed is not None:
        result["installed_certificate"] = installed
    return result


def installed_certificate(path, key):
    """The certificate (PEM) installed at ``path`` when it is one for ``key``, else None: what a controller
    that holds no copy of the device's identity compares with AWS (the key never leaves the device)."""
    pem = _files.read_optional(path) if path else None
    if pem is None:
        return None
    try:
        cert = _x509.load_certificate(pem, what="installed certificate")
    except IoTFleetError:
        return None
    if not _x509.same_public_key(cert.public_key(), key):
        return None
    return _x509.certificate_pem(cert)
