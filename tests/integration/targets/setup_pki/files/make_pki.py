"""Write a small test PKI into DIR and print the certificate ids as JSON.

The setup_pki target runs it for the targets that depend on it (meta/main.yml). Uses the
collection's X.509 helpers (unit-tested on their own against cryptography's primitives).

Files: ca.pem/ca.key (fleet CA), other_ca.pem/other_ca.key, device1.pem/.key and device2.pem/.key
(fleet CA), foreign.pem (signed by other_ca), impostor.pem (signed by another key under the fleet
CA's name), expired.pem (an old CA's device, expired), invalid.pem (not a certificate).
"""

import datetime
import json
import os
import sys

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    if name.endswith(".key"):
        os.chmod(path, 0o600)


def main(directory, prefix):
    ids = {}

    def cert(name, certificate, key=None):
        write(directory, f"{name}.pem", _x509.certificate_pem(certificate))
        if key is not None:
            write(directory, f"{name}.key", _x509.private_key_pem(key))
        ids[name] = _x509.certificate_id(certificate)

    ca = _x509.create_ca(f"{prefix} fleet CA")
    other = _x509.create_ca(f"{prefix} other CA", kind="rsa")
    cert("ca", *ca)
    cert("other_ca", *other)
    for name in ("device1", "device2"):
        key = _x509.generate_private_key()
        cert(name, _x509.issue_certificate(ca[0], ca[1], f"{prefix}-{name}", key.public_key()), key)
    key = _x509.generate_private_key()
    cert("foreign", _x509.issue_certificate(other[0], other[1], f"{prefix}-foreign", key.public_key()))
    impostor = _x509.create_ca(f"{prefix} fleet CA")
    cert("impostor", _x509.issue_certificate(impostor[0], impostor[1], f"{prefix}-impostor", key.public_key()))
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    old = _x509.create_ca(f"{prefix} old CA", days=30, now=past)
    cert("expired", _x509.issue_certificate(old[0], old[1], f"{prefix}-expired", key.public_key(), days=1, now=past))
    invalid = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    write(directory, "invalid.pem", invalid)
    print(json.dumps(ids))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "test")
