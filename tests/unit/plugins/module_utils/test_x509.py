# -*- coding: utf-8 -*-
"""The X.509 helpers, checked against cryptography's primitives (no AWS)."""

import datetime
import hashlib
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.unit import run_in_threads

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def ca():
    return _x509.create_ca("Fleet CA")


@pytest.fixture(scope="module")
def rsa_ca():
    return _x509.create_ca("Fleet RSA CA", kind="rsa")


def _cn(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _verify_with(ca_cert, cert):
    """Independent signature check (not through the helper under test)."""
    pub = ca_cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    else:
        pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


# ---------------------------------------------------------------- loading


def test_load_certificate_from_text_bytes_and_path(ca, tmp_path):
    pem = _x509.certificate_pem(ca[0])
    assert _x509.load_certificate(pem) == ca[0]
    assert _x509.load_certificate(pem.encode()) == ca[0]
    path = tmp_path / "ca.pem"
    path.write_text(pem)
    assert _x509.load_certificate(path=str(path)) == ca[0]
    assert _x509.load_certificate(ca[0]) is ca[0]


@pytest.mark.parametrize(
    "pem, fragment",
    [
        ("hello", "not a PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n", "not a valid PEM certificate"),
        ("", "not a PEM certificate"),
    ],
)
def test_load_certificate_bad_pem(pem, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _x509.load_certificate(pem, what="device certificate")


def test_load_certificate_errors_name_the_path(tmp_path):
    with pytest.raises(IoTFleetError, match="Cannot read the certificate .*missing.pem"):
        _x509.load_certificate(path=str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage")
    with pytest.raises(IoTFleetError, match="bad.pem"):
        _x509.load_certificate(path=str(bad))
    with pytest.raises(IoTFleetError, match="not both"):
        _x509.load_certificate("x", path=str(bad))
    with pytest.raises(IoTFleetError, match="No certificate given"):
        _x509.load_certificate()


def test_load_private_key_roundtrip_and_errors(ca):
    key = ca[1]
    pem = _x509.private_key_pem(key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    loaded = _x509.load_private_key(pem)
    assert _x509.key_matches_certificate(loaded, ca[0])
    with pytest.raises(IoTFleetError, match="not a PEM private key"):
        _x509.load_private_key("nope")
    bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(IoTFleetError, match="not a valid PEM private key") as err:
        _x509.load_private_key(bad)
    assert "AAAA" not in err.value.message  # no key material in messages


def test_load_encrypted_private_key(ca):
    pem = ca[1].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret")
    )
    assert _x509.key_matches_certificate(_x509.load_private_key(pem, passphrase="s3cret"), ca[0])
    with pytest.raises(IoTFleetError, match="encrypted"):
        _x509.load_private_key(pem)
    with pytest.raises(IoTFleetError, match="passphrase"):
        _x509.load_private_key(pem, passphrase="wrong")


# ---------------------------------------------------------------- facts


def test_certificate_id_is_sha256_of_der(ca):
    der = ca[0].public_bytes(serialization.Encoding.DER)
    assert _x509.certificate_id(ca[0]) == hashlib.sha256(der).hexdigest()
    assert len(_x509.certificate_id(ca[0])) == 64


def test_certificate_id_ignores_pem_formatting(ca):
    pem = _x509.certificate_pem(ca[0])
    messy = "\r\n".join(pem.splitlines()) + "\r\n\r\n"
    assert _x509.certificate_id(_x509.load_certificate(messy)) == _x509.certificate_id(ca[0])


def test_is_ca(ca):
    device = _x509.issue_certificate(ca[0], ca[1], "pi-1", _x509.generate_private_key().public_key())
    assert _x509.is_ca(ca[0])
    assert not _x509.is_ca(device)


def test_is_ca_without_basic_constraints():
    key = _x509.generate_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert not _x509.is_ca(cert)


def test_key_matches_certificate(ca, rsa_ca):
    assert _x509.key_matches_certificate(ca[1], ca[0])
    assert not _x509.key_matches_certificate(rsa_ca[1], ca[0])
    assert not _x509.key_matches_certificate(_x509.generate_private_key(), ca[0])


def test_generate_private_key_kinds():
    key = _x509.generate_private_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    key = _x509.generate_private_key("rsa")
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    with pytest.raises(IoTFleetError, match="Unknown key type"):
        _x509.generate_private_key("dsa")
    with pytest.raises(IoTFleetError, match="2048"):
        _x509.generate_private_key("rsa", size=1024)


# ---------------------------------------------------------------- validity


def test_check_validity(ca):
    cert = ca[0]
    _x509.check_validity(cert)
    with pytest.raises(IoTFleetError, match="not yet valid"):
        _x509.check_validity(cert, now=_x509.not_valid_before(cert) - datetime.timedelta(days=1))
    with pytest.raises(IoTFleetError, match="has expired"):
        _x509.check_validity(cert, now=_x509.not_valid_after(cert) + datetime.timedelta(seconds=1))
    # naive datetimes are taken as UTC
    _x509.check_validity(cert, now=datetime.datetime.now(UTC).replace(tzinfo=None))


# ---------------------------------------------------------------- issuing


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_create_ca(kind):
    cert, key = _x509.create_ca("My Fleet CA", days=30, kind=kind)
    assert _cn(cert) == "My Fleet CA"
    assert cert.issuer == cert.subject
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert _x509.key_matches_certificate(key, cert)
    _verify_with(cert, cert)
    assert _x509.not_valid_after(cert) - _x509.not_valid_before(cert) <= datetime.timedelta(days=30, minutes=5)


@pytest.mark.parametrize("ca_fixture", ["ca", "rsa_ca"])
@pytest.mark.parametrize("device_kind", ["ec", "rsa"])
def test_issue_certificate(request, ca_fixture, device_kind):
    ca_cert, ca_key = request.getfixturevalue(ca_fixture)
    key = _x509.generate_private_key(device_kind)
    cert = _x509.issue_certificate(ca_cert, ca_key, "pi-zero-001", key.public_key(), days=10)
    assert _cn(cert) == "pi-zero-001"
    assert cert.issuer == ca_cert.subject
    _verify_with(ca_cert, cert)
    assert _x509.key_matches_certificate(key, cert)
    assert not _x509.is_ca(cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment == (device_kind == "rsa")
    assert _x509.verify_issued_by(cert, ca_cert) is cert
    _x509.check_validity(cert)


def test_issue_certificate_serials_are_random(ca):
    pub = _x509.generate_private_key().public_key()
    serials = {_x509.issue_certificate(ca[0], ca[1], "pi", pub).serial_number for _i in range(5)}
    assert len(serials) == 5


def test_issue_certificate_never_outlives_the_ca():
    ca_cert, ca_key = _x509.create_ca("Short CA", days=2)
    cert = _x509.issue_certificate(ca_cert, ca_key, "pi", _x509.generate_private_key().public_key(), days=365)
    assert _x509.not_valid_after(cert) == _x509.not_valid_after(ca_cert)


def test_issue_certificate_refuses_bad_ca(ca, rsa_ca):
    pub = _x509.generate_private_key().public_key()
    with pytest.raises(IoTFleetError, match="does not match"):
        _x509.issue_certificate(ca[0], rsa_ca[1], "pi", pub)
    device_key = _x509.generate_private_key()
    device = _x509.issue_certificate(ca[0], ca[1], "pi", device_key.public_key())
    with pytest.raises(IoTFleetError, match="not a CA"):
        _x509.issue_certificate(device, device_key, "pi2", pub)
    with pytest.raises(IoTFleetError, match="common name"):
        _x509.issue_certificate(ca[0], ca[1], "", pub)
    with pytest.raises(IoTFleetError, match="positive number of days"):
        _x509.issue_certificate(ca[0], ca[1], "pi", pub, days=0)
    with pytest.raises(IoTFleetError, match="expired"):
        _x509.issue_certificate(ca[0], ca[1], "pi", pub, now=datetime.datetime(2100, 1, 1, tzinfo=UTC))


def _csr(key, cn):
    builder = x509.CertificateSigningRequestBuilder()
    if cn is not None:
        builder = builder.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    else:
        builder = builder.subject_name(x509.Name([]))
    return builder.sign(key, hashes.SHA256())


def test_sign_csr(ca):
    key = _x509.generate_private_key()
    pem = _x509.csr_pem(_csr(key, "pi-7"))
    cert = _x509.sign_csr(ca[0], ca[1], pem)
    assert _cn(cert) == "pi-7" and _x509.key_matches_certificate(key, cert)
    _verify_with(ca[0], cert)
    cert = _x509.sign_csr(ca[0], ca[1], pem, cn="pi-7")
    assert _cn(cert) == "pi-7"
    with pytest.raises(IoTFleetError, match="CN is 'pi-7', expected 'pi-8'"):
        _x509.sign_csr(ca[0], ca[1], pem, cn="pi-8")
    nameless = _x509.csr_pem(_csr(key, None))
    with pytest.raises(IoTFleetError, match="no CN"):
        _x509.sign_csr(ca[0], ca[1], nameless)
    assert _cn(_x509.sign_csr(ca[0], ca[1], nameless, cn="pi-9")) == "pi-9"
    with pytest.raises(IoTFleetError, match="not a PEM CSR"):
        _x509.sign_csr(ca[0], ca[1], "junk")


def test_sign_csr_refuses_a_forged_signature(ca):
    key = _x509.generate_private_key("rsa")
    csr = _csr(key, "pi-7")
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0xFF  # flip a bit of the signature
    forged = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(IoTFleetError, match="signature is invalid"):
        _x509.sign_csr(ca[0], ca[1], forged)


@pytest.mark.parametrize("ca_fixture", ["ca", "rsa_ca"])
def test_verification_certificate(request, ca_fixture):
    ca_cert, ca_key = request.getfixturevalue(ca_fixture)
    code = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    cert = _x509.verification_certificate(ca_cert, ca_key, code)
    assert _cn(cert) == code
    assert cert.issuer == ca_cert.subject
    _verify_with(ca_cert, cert)
    assert not _x509.key_matches_certificate(ca_key, cert)  # a fresh key, not the CA's
    _x509.check_validity(cert)
    with pytest.raises(IoTFleetError, match="registration code"):
        _x509.verification_certificate(ca_cert, ca_key, "")


def test_verify_issued_by_other_ca(ca):
    other_cert, other_key = _x509.create_ca("Other CA")
    device = _x509.issue_certificate(other_cert, other_key, "pi", _x509.generate_private_key().public_key())
    with pytest.raises(IoTFleetError, match="issuer 'CN=Other CA' is not the CA's subject 'CN=Fleet CA'"):
        _x509.verify_issued_by(device, ca[0])
    assert not _x509.is_issued_by(device, ca[0])


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_verify_issued_by_same_name_other_key(ca, kind):
    """An impostor CA with the same subject name: only the signature check catches it."""
    impostor_cert, impostor_key = _x509.create_ca("Fleet CA", kind=kind)
    device = _x509.issue_certificate(impostor_cert, impostor_key, "pi", _x509.generate_private_key().public_key())
    assert device.issuer == ca[0].subject
    with pytest.raises(IoTFleetError, match="signature does not verify"):
        _x509.verify_issued_by(device, ca[0])
    with pytest.raises(InvalidSignature):
        _verify_with(ca[0], device)


def test_verify_issued_by_rsa_pss():
    """RSA-PSS signed certificates are checked with their PSS parameters."""
    key = _x509.generate_private_key("rsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PSS CA")])
    now = datetime.datetime.now(UTC)
    ca_cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256(), rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH))
    )
    assert _x509.is_issued_by(ca_cert, ca_cert)


def test_pem_helpers(ca):
    assert _x509.certificate_pem(ca[0]).startswith("-----BEGIN CERTIFICATE-----")
    assert _x509.public_key_pem(ca[1]) == _x509.public_key_pem(ca[0].public_key())
    assert "PRIVATE" not in _x509.public_key_pem(ca[1])


def test_thread_safe_issuing(ca):
    """Many threads issuing at once: every certificate verifies and ids are distinct."""
    results = []
    lock = threading.Lock()

    def work(i):
        cert = _x509.issue_certificate(ca[0], ca[1], f"pi-{i}", _x509.generate_private_key().public_key())
        with lock:
            results.append(cert)

    assert run_in_threads(work, 16) == []
    assert len({_x509.certificate_id(c) for c in results}) == 16
    assert all(_x509.is_issued_by(c, ca[0]) for c in results)


def test_same_public_key(ca, rsa_ca):
    key = ca[1]
    assert _x509.same_public_key(key, key.public_key()) and _x509.same_public_key(key.public_key(), ca[0].public_key())
    assert not _x509.same_public_key(key, rsa_ca[1]) and not _x509.same_public_key(key, _x509.generate_private_key())
