# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signer interface of _x509: a CA key whose private half lives in a key service (KMS) signs every
certificate the collection makes, through one ``sign_digest`` call each, and is never exported."""

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

cryptography = pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402


class KeyService:
    """A key service in memory: signs a SHA-256 digest (as KMS Sign with MessageType DIGEST)."""

    def __init__(self, key=None):
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.digests = []

    def sign_digest(self, digest, hash_name):
        assert hash_name == "SHA256" and len(digest) == 32
        self.digests.append(digest)
        return self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def delegated(service, public_key=None):
    return _x509.DelegatedSigningKey(public_key or service.key.public_key(), service.sign_digest, where="a test KMS")


def test_every_certificate_is_signed_through_the_key_service():
    service = KeyService()
    key = delegated(service)
    ca, returned = _x509.create_ca("kms fleet CA", key=key)
    assert returned is key and _x509.is_delegated(key)
    ca.verify_directly_issued_by(ca)
    device_key = _x509.generate_private_key("ec")
    device = _x509.issue_certificate(ca, key, "pi-1", device_key.public_key())
    device.verify_directly_issued_by(ca)
    csr = _x509.create_csr(device_key, "pi-2")
    _x509.sign_csr(ca, key, csr, cn="pi-2").verify_directly_issued_by(ca)
    _x509.verification_certificate(ca, key, "0" * 64).verify_directly_issued_by(ca)
    assert len(service.digests) == 4   # one Sign per certificate, only the digest travels


def test_the_private_half_is_never_exported():
    key = delegated(KeyService())
    with pytest.raises(IoTFleetError, match="lives in a test KMS: it only signs"):
        _x509.private_key_pem(key)
    with pytest.raises(IoTFleetError, match="lives in a test KMS"):
        key.private_numbers()


def test_a_signature_of_another_key_fails_at_once():
    service = KeyService()
    other = KeyService()
    key = delegated(other, public_key=service.key.public_key())   # the service signs with another key
    with pytest.raises(IoTFleetError, match="does not verify with its public key"):
        _x509.create_ca("kms fleet CA", key=key)


def test_only_p256_keys_and_sha256():
    rsa = _x509.generate_private_key("rsa")
    with pytest.raises(IoTFleetError, match="must be an EC P-256 key"):
        _x509.DelegatedSigningKey(rsa.public_key(), None)
    key = delegated(KeyService())
    with pytest.raises(IoTFleetError, match="ECDSA with SHA-256 only"):
        key.sign(b"data", ec.ECDSA(hashes.SHA384()))
