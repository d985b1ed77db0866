# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of iotfleet.aws.device_csr: key and CSR made and kept on a temporary directory
(real ``cryptography``), and the module run through ansible on localhost (AnsiballZ ships its
module_utils as it does to a Pi)."""

import json
import os
import stat
import subprocess
import sys

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.aws.plugins.module_utils import _device_key
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.modules import device_csr as dcsr
from support.imports import AWS, loaded_by


def _params(tmp_path, cn="pi-1", **extra):
    params = {
        "path": str(tmp_path / "iot" / "private.key"),
        "csr_path": str(tmp_path / "iot" / "device.csr"),
        "common_name": cn,
        "key_type": "ec",
        "owner": None,
        "group": None,
        "directory_mode": "0750",
    }
    params.update(extra)
    return params


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _tree(root):
    return sorted(
        (os.path.relpath(os.path.join(d, f), root), open(os.path.join(d, f), "rb").read())
        for d, _dirs, files in os.walk(root) for f in files
    )


def test_check_mode_without_key_writes_nothing(tmp_path):
    res = dcsr.ensure_key_and_csr(_params(tmp_path), check_mode=True)
    assert res["changed"] and res["key_created"] and res["csr_created"] and "csr" not in res
    assert not (tmp_path / "iot").exists()


def test_create_then_stable(tmp_path):
    first = dcsr.ensure_key_and_csr(_params(tmp_path))
    assert first["changed"] and first["key_created"] and first["csr_created"]
    key_file = tmp_path / "iot" / "private.key"
    assert _mode(key_file) == 0o600 and _mode(tmp_path / "iot" / "device.csr") == 0o644
    assert _mode(tmp_path / "iot") == 0o750
    assert "PRIVATE KEY" not in repr(first)
    csr = x509.load_pem_x509_csr(first["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pi-1"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert first["public_key_sha256"] == _x509.public_key_sha256(key)
    second = dcsr.ensure_key_and_csr(_params(tmp_path))
    assert not second["changed"] and second["csr"] == first["csr"]
    assert not second["key_created"] and not second["csr_created"]
    assert second["public_key_sha256"] == first["public_key_sha256"]
    check = dcsr.ensure_key_and_csr(_params(tmp_path), check_mode=True)
    assert not check["changed"] and check["csr"] == first["csr"]


def test_the_fleet_ca_signs_the_csr(tmp_path):
    """What the controller does with the CSR: _x509.sign_csr accepts it for the thing name."""
    res = dcsr.ensure_key_and_csr(_params(tmp_path, cn="pi-kitchen"))
    ca_cert, ca_key = _x509.create_ca("fleet CA")
    cert = _x509.sign_csr(ca_cert, ca_key, res["csr"], cn="pi-kitchen")
    key = _x509.load_private_key(path=str(tmp_path / "iot" / "private.key"))
    assert _x509.key_matches_certificate(key, cert) and _x509.is_issued_by(cert, ca_cert)


def test_rsa_key(tmp_path):
    res = dcsr.ensure_key_and_csr(_params(tmp_path, key_type="rsa"))
    key = _x509.load_private_key(path=str(tmp_path / "iot" / "private.key"))
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert x509.load_pem_x509_csr(res["csr"].encode()).is_signature_valid


def test_new_cn_keeps_key(tmp_path):
    first = dcsr.ensure_key_and_csr(_params(tmp_path))
    key_before = (tmp_path / "iot" / "private.key").read_bytes()
    renamed = dcsr.ensure_key_and_csr(_params(tmp_path, cn="pi-renamed"))
    assert renamed["changed"] and renamed["csr_created"] and not renamed["key_created"]
    assert renamed["csr"] != first["csr"]
    assert (tmp_path / "iot" / "private.key").read_bytes() == key_before


def test_csr_of_another_key_is_replaced_and_check_mode_writes_nothing(tmp_path):
    dcsr.ensure_key_and_csr(_params(tmp_path))
    other = _x509.generate_private_key()
    stale = _x509.csr_pem(_x509.create_csr(other, "pi-1"))
    (tmp_path / "iot" / "device.csr").write_text(stale)
    before = _tree(tmp_path)
    check = dcsr.ensure_key_and_csr(_params(tmp_path), check_mode=True)
    assert check["changed"] and check["csr_created"] and check["csr"] != stale
    assert _tree(tmp_path) == before
    res = dcsr.ensure_key_and_csr(_params(tmp_path))
    assert res["csr_created"] and (tmp_path / "iot" / "device.csr").read_text() == res["csr"]
    assert not _x509.csr_fits(stale, _x509.load_private_key(path=str(tmp_path / "iot" / "private.key")), "pi-1")


def test_refuses_to_replace_bad_key(tmp_path):
    (tmp_path / "iot").mkdir()
    (tmp_path / "iot" / "private.key").write_text("garbage")
    with pytest.raises(_device_key.CsrError, match="private.key exists but is not an unencrypted PEM private key; not replacing"):
        dcsr.ensure_key_and_csr(_params(tmp_path))
    assert (tmp_path / "iot" / "private.key").read_text() == "garbage"
    assert not (tmp_path / "iot" / "device.csr").exists()


def test_loose_key_mode_is_fixed(tmp_path):
    dcsr.ensure_key_and_csr(_params(tmp_path))
    os.chmod(tmp_path / "iot" / "private.key", 0o644)
    check = dcsr.ensure_key_and_csr(_params(tmp_path), check_mode=True)
    assert check["changed"] and _mode(tmp_path / "iot" / "private.key") == 0o644
    res = dcsr.ensure_key_and_csr(_params(tmp_path))
    assert res["changed"] and not res["key_created"] and not res["csr_created"]
    assert _mode(tmp_path / "iot" / "private.key") == 0o600


@pytest.mark.parametrize("extra, message", [
    (dict(common_name="x" * 65), "1 to 64"),
    (dict(common_name=""), "1 to 64"),
    (dict(owner="no-such-user-iotfleet"), "user 'no-such-user-iotfleet' does not exist"),
    (dict(group="no-such-group-iotfleet"), "group 'no-such-group-iotfleet' does not exist"),
    (dict(directory_mode="rwx"), "mode 'rwx' is not an octal"),
])
def test_bad_input_fails_before_any_write(tmp_path, extra, message):
    with pytest.raises(IoTFleetError, match=message):
        dcsr.ensure_key_and_csr(_params(tmp_path, **extra))
    assert not (tmp_path / "iot").exists()


def test_the_module_imports_no_aws_code():
    """device_csr runs on the Pi: its module_utils (_x509, _files, _errors) need no AWS library."""
    client_layer = "ansible_collections.iotfleet.aws.plugins.module_utils._client"
    assert loaded_by("ansible_collections.iotfleet.aws.plugins.modules.device_csr", AWS + (client_layer,)) == []


def test_module_through_ansible(tmp_path):
    """The real module run: AnsiballZ packs device_csr with its module_utils, as for a Pi."""
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    args = "common_name=pi-1 path=%s csr_path=%s" % (tmp_path / "k" / "private.key", tmp_path / "k" / "device.csr")

    def run(*extra):
        proc = subprocess.run(
            [ansible, "localhost", "-o", "-c", "local", "-m", "iotfleet.aws.device_csr", "-a", args, *extra,
             "-e", "ansible_python_interpreter=%s" % sys.executable],
            capture_output=True, text=True, check=False,
            env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0"),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.split(" => ", 1)[1])  # -o: "localhost | CHANGED => {...}"

    check = run("--check")
    assert check["changed"] and not (tmp_path / "k").exists()
    first = run()
    assert first["changed"] and first["key_created"] and _mode(tmp_path / "k" / "private.key") == 0o600
    assert "PRIVATE KEY" not in json.dumps(first)
    again = run()
    assert not again["changed"] and again["csr"] == first["csr"]


def test_the_installed_certificate_is_returned_only_when_it_is_the_keys(tmp_path):
    """A controller that holds no copy of the Pi's identity reads the installed certificate from here;
    it is returned only for the key on the Pi (the key itself never is)."""
    ca_cert, ca_key = _x509.create_ca("Fleet CA")
    first = dcsr.ensure_key_and_csr(_params(tmp_path))
    cert_path = tmp_path / "iot" / "certificate.pem"
    params = _params(tmp_path, certificate_path=str(cert_path))
    assert "installed_certificate" not in dcsr.ensure_key_and_csr(params)   # none installed
    mine = _x509.sign_csr(ca_cert, ca_key, first["csr"], cn="pi-1")
    cert_path.write_text(_x509.certificate_pem(mine))
    result = dcsr.ensure_key_and_csr(params)
    assert result["installed_certificate"] == _x509.certificate_pem(mine) and not result["changed"]
    assert "PRIVATE KEY" not in json.dumps(result)
    other = _x509.issue_certificate(ca_cert, ca_key, "pi-1", _x509.generate_private_key("ec").public_key())
    cert_path.write_text(_x509.certificate_pem(other))
    assert "installed_certificate" not in dcsr.ensure_key_and_csr(params)
