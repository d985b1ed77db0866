"""X.509 for the lab itself (not for the collection): the lab root CA and the broker's server
certificate. Built on the collection's one X.509 module (plugins/module_utils/_x509.py: keys, CA,
PEM, loading); only the TLS *server* certificate, which the collection never needs, is made here.
The fleet's CA and device certificates are the collection's business (its `ca` role); the lab
never makes them.
"""
from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509


def key_pem(key) -> bytes:
    return _x509.private_key_pem(key).encode("ascii")


def pem(cert: x509.Certificate) -> bytes:
    return _x509.certificate_pem(cert).encode("ascii")


def make_ca(cn: str, days: int = 3650):
    """A self-signed CA (EC P-256) that signs server certificates directly: (certificate, key)."""
    return _x509.create_ca(cn, days=days)


def subject_alternative_names(names: list[str]) -> list:
    """DNS names and IP addresses (v4/v6) as SAN entries, in order."""
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    return sans


def issue_server(ca_cert, ca_key, names: list[str], days: int = 825):
    """A TLS server certificate for the given DNS names and IP addresses: (certificate, key).

    CN = the first name, EKU serverAuth, validity as the collection's (5 minutes back-dated,
    never beyond the CA's).
    """
    key = _x509.generate_private_key("ec")
    now = dt.datetime.now(dt.timezone.utc)
    start = now - _x509.BACKDATE
    end = min(now + dt.timedelta(days=days), _x509.not_valid_after(ca_cert))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(subject_alternative_names(names)), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def load(cert_path, key_path):
    """The lab root (certificate, key) from its PEM files."""
    return _x509.load_certificate(path=str(cert_path)), _x509.load_private_key(path=str(key_path))
