# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_cn: the CN the device role puts in a CSR is the one iot_fleet signs (key mode device)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.filter.certificate_cn import certificate_cn
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_device_identity
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices


def test_short_names_are_their_own_cn_long_ones_are_cut_and_hashed():
    assert certificate_cn("pi-kitchen") == "pi-kitchen"
    assert certificate_cn("p" * 64) == "p" * 64
    a, b = certificate_cn("p" * 100 + "a"), certificate_cn("p" * 100 + "b")
    assert len(a) == len(b) == 64 and a != b and a.startswith("p" * 55 + "-")
    assert certificate_cn("p" * 100 + "a") == a   # stable
    with pytest.raises(AnsibleFilterError):
        certificate_cn("")


def test_key_mode_device_signs_the_csr_of_a_long_thing_name(tmp_path):
    """The Pi's CSR carries certificate_cn(thing name); the controller signs it (same rule)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    ca_cert, ca_key = _x509.create_ca("Fleet CA")
    name = "pi-" + "x" * 100
    key = _x509.generate_private_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certificate_cn(name))]))
           .sign(key, hashes.SHA256()))
    device_dir = tmp_path / "pki" / "devices" / name
    device_dir.mkdir(parents=True)
    (device_dir / "device.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    spec = FleetSpec(validate_devices([dict(thing_name=name)]), ca_cert, ca_key, str(tmp_path / "pki"),
                     key_mode="device")
    cert, changed, changes = ensure_device_identity(spec, name)
    assert changed and changes == ["certificate"] and _x509.common_name(cert) == certificate_cn(name)
    again = ensure_device_identity(spec, name)
    assert not again[1]   # kept: the usable check knows the CN
