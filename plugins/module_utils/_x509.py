# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The collection's one place for X.509 (with ``cryptography``).

Pure, thread-safe functions (no globals, no I/O except reading the PEM files given by path): load and check
certificates and keys, compute the AWS IoT certificate id, mint device and verification
certificates with the fleet CA. Every bad input raises :class:`IoTFleetError` with a message that
names what was wrong, never key material.
"""

import datetime
import hashlib
import os

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import ed448
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from cryptography.x509.oid import NameOID

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as e:  # reported by the modules that need it
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = e

from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

DEFAULT_DEVICE_DAYS = 3650
DEFAULT_CA_DAYS = 3650
VERIFICATION_DAYS = 7
# issued certificates start slightly in the past so clock skew between controller, AWS and
# devices does not make a fresh certificate "not yet valid"
BACKDATE = datetime.timedelta(minutes=5)


# --------------------------------------------------------------------------------------------
# loading


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    raise IoTFleetError(f"Expected PEM text, got {type(data).__name__}.")


def read_pem_file(path, what="file"):
    """The bytes of the PEM file at ``path``; IoTFleetError when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise IoTFleetError(f"Cannot read the {what} {path!r}: {e.strerror or e}.") from e


def _source(pem, path, what, label_path=False):
    if pem is not None and path is not None:
        if label_path:
            # the content of the file at path, read by someone who could (an Ansible Vault file, decrypted by
            # the action plugin): the content is the key, the path names it
            return _as_bytes(pem), f"{what} {path!r}"
        raise IoTFleetError(f"Give the {what} as PEM content or as a path, not both.")
    if path is not None:
        return read_pem_file(path, what), f"{what} {path!r}"
    if pem is None:
        raise IoTFleetError(f"No {what} given.")
    return _as_bytes(pem), what


VAULT_HEADER = b"$ANSIBLE_VAULT;"


def is_vault_encrypted(data):
    """True when ``data`` (bytes or str) is an Ansible Vault file's content (still encrypted)."""
    return _as_bytes(data).lstrip().startswith(VAULT_HEADER)


def is_encrypted_pem(data):
    """True when the PEM private key is encrypted (PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a traditional key
    with ``Proc-Type: 4,ENCRYPTED``)."""
    data = _as_bytes(data)
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_certificate(pem=None, path=None, what="certificate"):
    """An ``x509.Certificate`` from PEM (str/bytes) or a PEM file; the first one if several.

    An ``x509.Certificate`` given as ``pem`` is returned as is.
    """
    if HAS_CRYPTOGRAPHY and isinstance(pem, x509.Certificate):
        return pem
    data, label = _source(pem, path, what)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise IoTFleetError(f"The {label} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line).")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise IoTFleetError(f"The {label} is not a valid PEM certificate: {e}") from None


def load_private_key(pem=None, path=None, what="private key", passphrase=None):
    """A private key object from PEM (str/bytes, PKCS#8 or traditional, encrypted with ``passphrase``
    or not) or a PEM file. With both ``pem`` and ``path``, ``pem`` is the content of that file (read by
    someone who could: an Ansible Vault file the action plugin decrypted) and ``path`` names it.

    The error message names the key (its path) and never contains key material or the passphrase.
    """
    if HAS_CRYPTOGRAPHY and isinstance(
        pem, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        return pem
    data, label = _source(pem, path, what, label_path=True)
    if is_vault_encrypted(data):
        raise IoTFleetError(
            f"The {label} is encrypted with Ansible Vault, which only the controller's ansible-playbook can "
            "decrypt (with its vault password): give it through the module's action plugin (the collection's "
            "modules decrypt a vaulted key file given by path when run by a task), or as the content option "
            "(lookup('ansible.builtin.file', path) decrypts it)."
        )
    if b"PRIVATE KEY-----" not in data:
        raise IoTFleetError(f"The {label} is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' line).")
    encrypted = is_encrypted_pem(data)
    if encrypted and not passphrase:
        raise IoTFleetError(f"The {label} is encrypted and no passphrase was given (ca_private_key_passphrase).")
    if not encrypted and passphrase:
        raise IoTFleetError(
            f"The {label} is not encrypted, but a passphrase was given: encrypt the key with it "
            "(openssl pkey -in KEY -aes256 -out KEY.enc) or drop the passphrase."
        )
    try:
        return serialization.load_pem_private_key(data, password=_as_bytes(passphrase) if encrypted else None)
    except (TypeError, ValueError, UnsupportedAlgorithm) as e:
        if encrypted:
            # cryptography says "Bad decrypt. Incorrect password?" (or a padding error): never echo the passphrase
            raise IoTFleetError(f"The {label} cannot be decrypted: wrong passphrase (or a damaged file).") from None
        raise IoTFleetError(f"The {label} is not a valid PEM private key: {e}") from None


def check_private_key_readable(pem=None, path=None, what="private key", passphrase=None):
    """Raise when the key at ``path`` (or its content ``pem``) exists but cannot be read with
    ``passphrase`` (wrong or missing passphrase, still vault-encrypted, damaged); a missing file is
    fine. For steps that check the key before any write and use it later."""
    if pem is None and (path is None or not os.path.exists(path)):
        return None
    return load_private_key(pem, path=path, what=what, passphrase=passphrase)


def load_csr(pem, what="certificate signing request"):
    """An ``x509.CertificateSigningRequest`` from PEM (str/bytes)."""
    if HAS_CRYPTOGRAPHY and isinstance(pem, x509.CertificateSigningRequest):
        return pem
    data = _as_bytes(pem)
    if b"CERTIFICATE REQUEST-----" not in data:
        raise IoTFleetError(f"The {what} is not a PEM CSR (no '-----BEGIN CERTIFICATE REQUEST-----' line).")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise IoTFleetError(f"The {what} is not a valid PEM CSR: {e}") from None


# --------------------------------------------------------------------------------------------
# facts


def certificate_id(cert):
    """The AWS IoT certificate id: lower-case hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def common_name(name_or_cert):
    """The (first) CN of a certificate's subject, a CSR's subject or an ``x509.Name``; else None."""
    name = getattr(name_or_cert, "subject", name_or_cert)
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


MAX_COMMON_NAME = 64   # RFC 5280's upper bound of a common name
_CN_HASH_CHARS = 8


def device_common_name(thing_name):
    """The CN of a device certificate for ``thing_name``: the thing name itself when it fits in a
    CN (1-64 characters); a longer thing name (AWS IoT allows 128) is cut to its first 55
    characters, then ``-`` and the first 8 hex digits of the SHA-256 of the whole name - 64
    characters, stable, and distinct for names that share their first 64. The certificate's binding
    to the thing is its attachment (AttachThingPrincipal), not its CN."""
    if len(thing_name) <= MAX_COMMON_NAME:
        return thing_name
    digest = hashlib.sha256(thing_name.encode("utf-8")).hexdigest()[:_CN_HASH_CHARS]
    return f"{thing_name[:MAX_COMMON_NAME - _CN_HASH_CHARS - 1]}-{digest}"


def describe(cert):
    """A short human description for messages: subject, issuer and id."""
    subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    return f"subject {subject!r}, issuer {issuer!r}, id {certificate_id(cert)}"


def is_ca(cert):
    """True when the certificate has basicConstraints with CA=true."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _public_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _as_public(key):
    return key.public_key() if hasattr(key, "private_bytes") else key


def public_key_sha256(key_or_public_key):
    """Hex SHA-256 of a public key's DER SubjectPublicKeyInfo (of a private key: its public key)."""
    return hashlib.sha256(_public_der(_as_public(key_or_public_key))).hexdigest()


def same_public_key(a, b):
    """True when two keys (public or private) have the same public key."""
    return _public_der(_as_public(a)) == _public_der(_as_public(b))


def key_matches_certificate(key, cert):
    """True when the private ``key`` is the one for the certificate's public key."""
    return same_public_key(key, cert.public_key())


def not_valid_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def not_valid_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _utc(now):
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=datetime.timezone.utc)
    return now


def check_validity(cert, now=None, what="certificate"):
    """Raise IoTFleetError when ``cert`` is not yet valid or expired at ``now`` (default: now)."""
    now = _utc(now)
    start, end = not_valid_before(cert), not_valid_after(cert)
    if now < start:
        raise IoTFleetError(
            f"The {what} is not yet valid: it becomes valid at {start.isoformat()} "
            f"(now {now.replace(microsecond=0).isoformat()}; {describe(cert)})."
        )
    if now > end:
        raise IoTFleetError(
            f"The {what} has expired: it was valid until {end.isoformat()} "
            f"(now {now.replace(microsecond=0).isoformat()}; {describe(cert)})."
        )
    return cert


def _verify_signature(public_key, signature, data, hash_algorithm, padding_obj=None):
    """Check a signature with a public key (RSA PKCS#1 v1.5 / PSS, ECDSA, EdDSA)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding_obj or padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        public_key.verify(signature, data)
    else:
        raise IoTFleetError(f"Unsupported public key type {type(public_key).__name__} for signature checks.")


def _signature_padding(cert):
    params = getattr(cert, "signature_algorithm_parameters", None)
    return params if isinstance(params, (padding.PKCS1v15, padding.PSS)) else None


def issued_by_problem(cert, ca_cert):
    """Why ``cert`` was not issued by ``ca_cert`` (a sentence), or None when it was.

    Checks that the issuer name equals the CA's subject and the signature verifies with the CA's
    public key (RSA and EC; EdDSA too).
    """
    if cert.issuer != ca_cert.subject:
        return (
            f"its issuer {cert.issuer.rfc4514_string()!r} is not the CA's subject "
            f"{ca_cert.subject.rfc4514_string()!r}"
        )
    try:
        _verify_signature(
            ca_cert.public_key(),
            cert.signature,
            cert.tbs_certificate_bytes,
            cert.signature_hash_algorithm,
            _signature_padding(cert),
        )
    except InvalidSignature:
        return "its signature does not verify with the CA's public key (same issuer name, different CA key)"
    except (TypeError, ValueError) as e:
        return f"its signature cannot be checked with the CA's public key ({e})"
    return None


def verify_issued_by(cert, ca_cert, what="certificate", ca_what="CA certificate"):
    """Raise IoTFleetError unless ``cert`` was issued (signed) by ``ca_cert``."""
    problem = issued_by_problem(cert, ca_cert)
    if problem:
        raise IoTFleetError(f"The {what} was not issued by the {ca_what}: {problem} ({what}: {describe(cert)}).")
    return cert


def is_issued_by(cert, ca_cert):
    return issued_by_problem(cert, ca_cert) is None


# --------------------------------------------------------------------------------------------
# keys and PEM


def generate_private_key(kind="ec", size=2048):
    """A new private key: ``ec`` (NIST P-256, the default) or ``rsa`` (``size`` bits, default 2048)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        if size < 2048:
            raise IoTFleetError(f"RSA keys must have at least 2048 bits, got {size}.")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    raise IoTFleetError(f"Unknown key type {kind!r}: use 'ec' or 'rsa'.")


def private_key_pem(key):
    """The private key as unencrypted PKCS#8 PEM text (handle as a secret)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_key_pem(key_or_public_key):
    public_key = key_or_public_key.public_key() if hasattr(key_or_public_key, "private_bytes") else key_or_public_key
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def certificate_pem(cert):
    """The certificate as canonical PEM text (what the collection sends to AWS)."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_pem(csr):
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


# --------------------------------------------------------------------------------------------
# issuing


# --------------------------------------------------------------------------------------------
# the signer interface: a CA key whose private half lives in a key service


_EC_PRIVATE_KEY = ec.EllipticCurvePrivateKey if HAS_CRYPTOGRAPHY else object


class DelegatedSigningKey(_EC_PRIVATE_KEY):
    """An EC P-256 CA key whose private half never leaves its key service (an AWS KMS key).

    It is a ``cryptography`` private key for everything that signs (``CertificateBuilder.sign``, and so
    :func:`issue_certificate`, :func:`sign_csr`, :func:`verification_certificate`, :func:`create_ca`): each
    signature is one call of ``sign_digest(digest, hash_name)`` that returns the DER ECDSA signature of the
    SHA-256 ``digest`` (hashed here: only 32 bytes travel). Nothing that would need the private number works
    (export, ECDH): those raise :class:`IoTFleetError` naming ``where``. Callers ask "sign this", never which
    backend holds the key.
    """

    def __init__(self, public_key, sign_digest, where="a key service", key_id=None):
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
            raise IoTFleetError(f"The CA key in {where} must be an EC P-256 key (ECC_NIST_P256).")
        self._public_key = public_key
        self._sign_digest = sign_digest
        self.where = where
        self.key_id = key_id   # the key's name in its service (a KMS key ARN)

    def sign(self, data, signature_algorithm):
        algorithm = getattr(signature_algorithm, "algorithm", None)
        if not isinstance(signature_algorithm, ec.ECDSA) or not isinstance(algorithm, hashes.SHA256):
            raise IoTFleetError(f"The CA key in {self.where} signs ECDSA with SHA-256 only.")
        digest = hashes.Hash(hashes.SHA256())
        digest.update(data)
        signature = self._sign_digest(digest.finalize(), "SHA256")
        try:   # a key service that signs with another key (or garbage) fails here, not at the device's TLS
            self._public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise IoTFleetError(f"The signature {self.where} returned does not verify with its public key.")
        return signature

    def public_key(self):
        return self._public_key

    @property
    def curve(self):
        return self._public_key.curve

    @property
    def key_size(self):
        return self._public_key.key_size

    def _private(self, *args, **kwargs):
        raise IoTFleetError(f"The CA private key lives in {self.where}: it only signs, it is never exported.")

    exchange = private_numbers = private_bytes = _private

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def is_delegated(key):
    """True when ``key`` signs through a key service (its private half is not here)."""
    return isinstance(key, DelegatedSigningKey)


def _hash_for(key):
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    return hashes.SHA256()


def _authority_key_identifier(ca_cert):
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())


def _check_ca(ca_cert, ca_key, now=None):
    if not is_ca(ca_cert):
        raise IoTFleetError(f"The CA certificate is not a CA (no basicConstraints CA=true; {describe(ca_cert)}).")
    if not key_matches_certificate(ca_key, ca_cert):
        raise IoTFleetError(f"The CA private key does not match the CA certificate ({describe(ca_cert)}).")
    check_validity(ca_cert, now=now, what="CA certificate")


def _validity(ca_cert, days, now):
    if not isinstance(days, int) or days < 1:
        raise IoTFleetError(f"The validity must be a positive number of days, got {days!r}.")
    start = _utc(now) - BACKDATE
    end = _utc(now) + datetime.timedelta(days=days)
    # never outlive the issuing CA: a chain with an expired CA does not verify
    return start, min(end, not_valid_after(ca_cert))


def _name(cn):
    if not isinstance(cn, str) or not cn or len(cn) > MAX_COMMON_NAME:
        raise IoTFleetError(f"A certificate common name must be 1-64 characters, got {cn!r}.")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue_certificate(ca_cert, ca_key, subject_cn, public_key, days=DEFAULT_DEVICE_DAYS, now=None):
    """A device (client) certificate for ``public_key`` signed by the CA.

    CN = ``subject_cn`` (the thing name), basicConstraints CA=false, keyUsage digitalSignature
    (+ keyEncipherment for RSA), extendedKeyUsage clientAuth, SKI/AKI, random serial. The
    validity starts 5 minutes in the past and never ends after the CA's.
    """
    _check_ca(ca_cert, ca_key, now=now)
    start, end = _validity(ca_cert, days, now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    return builder.sign(ca_key, _hash_for(ca_key))


def sign_csr(ca_cert, ca_key, csr_pem_or_obj, cn=None, days=DEFAULT_DEVICE_DAYS, now=None):
    """A device certificate for the key of a CSR (made on the device), signed by the CA.

    The CSR's own signature must verify (proof of possession). When ``cn`` is given the CSR's
    CN, when it has one, must equal it; the issued certificate's CN is ``cn`` or the CSR's CN. Only the CSR's
    public key and CN are used: requested extensions are ignored.
    """
    csr = load_csr(csr_pem_or_obj)
    if not csr.is_signature_valid:
        raise IoTFleetError("The certificate signing request's signature is invalid (not signed by its own key).")
    csr_cn = common_name(csr)
    if cn is not None and csr_cn is not None and csr_cn != cn:
        raise IoTFleetError(f"The certificate signing request's CN is {csr_cn!r}, expected {cn!r}.")
    subject_cn = cn if cn is not None else csr_cn
    if not subject_cn:
        raise IoTFleetError("The certificate signing request has no CN and none was given.")
    return issue_certificate(ca_cert, ca_key, subject_cn, csr.public_key(), days=days, now=now)


def create_csr(key, common_name):
    """A CSR for ``key`` with subject exactly ``CN=common_name``, signed by the key itself."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name))
    return builder.sign(key, _hash_for(key))


def csr_fits(csr_pem_or_obj, key, common_name):
    """True when the CSR is well signed, for ``key``, with subject exactly ``CN=common_name``."""
    try:
        csr = load_csr(csr_pem_or_obj)
    except IoTFleetError:
        return False
    if not csr.is_signature_valid:
        return False
    if not same_public_key(csr.public_key(), key):
        return False
    return csr.subject == _name(common_name)


def verification_certificate(ca_cert, ca_key, registration_code, days=VERIFICATION_DAYS, now=None):
    """The proof-of-possession certificate AWS IoT wants for RegisterCACertificate (DEFAULT mode).

    A fresh (throw-away) key, CN = ``registration_code``, signed by the CA key. Returns the
    certificate; its key is discarded.
    """
    if not isinstance(registration_code, str) or not registration_code:
        raise IoTFleetError(f"Invalid registration code {registration_code!r}.")
    _check_ca(ca_cert, ca_key, now=now)
    key = generate_private_key("ec")
    start, end = _validity(ca_cert, days, now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(registration_code))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    return builder.sign(ca_key, _hash_for(ca_key))


def create_ca(common_name, days=DEFAULT_CA_DAYS, kind="ec", key=None, now=None, path_length=0):
    """A self-signed CA: ``(certificate, private_key)``.

    basicConstraints CA=true (critical, ``path_length`` 0 by default: it signs devices only),
    keyUsage keyCertSign/cRLSign/digitalSignature, SKI and AKI.
    """
    key = key if key is not None else generate_private_key(kind)
    name = _name(common_name)
    if not isinstance(days, int) or days < 1:
        raise IoTFleetError(f"The validity must be a positive number of days, got {days!r}.")
    start = _utc(now) - BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_utc(now) + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, _hash_for(key)), key
