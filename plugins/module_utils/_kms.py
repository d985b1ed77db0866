# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The fleet CA key as an AWS KMS asymmetric key (``iotfleet_ca_backend: kms``).

The KMS key IS the CA key: ECC_NIST_P256, KeyUsage SIGN_VERIFY, and every signature (the CA
certificate, the verification certificate, each device certificate) is one ``Sign`` call with
MessageType DIGEST and ECDSA_SHA_256. The private key never exists outside KMS. Calls go through the
collection's one client layer (:class:`~._client.IoTClient`: retries, outage wait, rate limiter).
"""

try:
    from cryptography.hazmat.primitives.serialization import load_der_public_key
except ImportError:
    pass   # the modules report the missing dependency

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._files import read_optional
from ansible_collections.iotfleet.aws.plugins.module_utils._files import write_file

KEY_SPEC = "ECC_NIST_P256"
KEY_USAGE = "SIGN_VERIFY"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
# the tag that marks a KMS key the collection created for a fleet CA
TAG_KEY = "iotfleet:fleet-ca"


def alias_of(kms_key):
    """The alias name (``alias/...``) when ``kms_key`` names a key by alias (name or alias ARN), else None."""
    if kms_key.startswith("alias/"):
        return kms_key
    if kms_key.startswith("arn:") and ":alias/" in kms_key:
        return kms_key[kms_key.index(":alias/") + 1:]
    return None


def _describe(client, key_id):
    metadata = client.get("describe_key", KeyId=key_id)
    return None if metadata is None else metadata["KeyMetadata"]


def key_problem(metadata, key_id):
    """Why the KMS key cannot be a fleet CA key (a sentence naming it), or None."""
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec")
    if metadata.get("KeyUsage") != KEY_USAGE or spec != KEY_SPEC:
        return (f"The KMS key {key_id} is {spec} for {metadata.get('KeyUsage')}; a fleet CA key must be "
                f"{KEY_SPEC} for {KEY_USAGE}.")
    if metadata.get("KeyState") != "Enabled":
        return f"The KMS key {key_id} is {metadata.get('KeyState')}, not Enabled: it cannot sign."
    return None


def signing_key(client, key_id, metadata=None):
    """The fleet CA key in KMS as a :class:`~._x509.DelegatedSigningKey` (``key_id``: id, ARN or alias).
    Checked before any signature: the key exists, is ECC_NIST_P256 for SIGN_VERIFY, and is enabled.
    ``metadata``: its DescribeKey answer when the caller has it already (not asked again)."""
    metadata = metadata if metadata is not None else _describe(client, key_id)
    if metadata is None:
        raise IoTFleetError(f"The KMS key {key_id} does not exist in this account and region (ca_kms_key).")
    problem = key_problem(metadata, key_id)
    if problem:
        raise IoTFleetError(problem)
    arn = metadata["Arn"]
    public_key = load_der_public_key(client.call("get_public_key", KeyId=arn)["PublicKey"])

    def sign_digest(digest, hash_name):
        return client.call("sign", KeyId=arn, Message=digest, MessageType="DIGEST",
                           SigningAlgorithm=SIGNING_ALGORITHM)["Signature"]

    return _x509.DelegatedSigningKey(public_key, sign_digest, where=f"AWS KMS ({arn})", key_id=arn)


def ensure_key(client, alias, description, check_mode=False):
    """The KMS key the alias names, created (ECC_NIST_P256, SIGN_VERIFY, tagged) with the alias when there is
    none. An alias that names a key of another kind is refused, never moved.

    Returns ``(changed, key metadata or None)``; None only in check mode when the key would be created."""
    metadata = _describe(client, alias)
    if metadata is not None:
        problem = key_problem(metadata, alias)
        if problem:
            raise IoTFleetError(f"{problem} Name another key (ca_kms_key) or remove the alias. Nothing was written.")
        return False, metadata
    if check_mode:
        return True, None
    created = client.call("create_key", KeySpec=KEY_SPEC, KeyUsage=KEY_USAGE, Description=description,
                          Tags=[{"TagKey": TAG_KEY, "TagValue": alias[len("alias/"):]}])["KeyMetadata"]
    client.call("create_alias", AliasName=alias, TargetKeyId=created["KeyId"])
    return True, created


def ensure_fleet_ca(client, kms_key, certificate_path, common_name="iotfleet fleet CA", validity_days=3650,
                    check_mode=False, certificate_content=None):
    """The fleet CA whose key is the KMS key ``kms_key`` (module ``kms_fleet_ca``): the key (an alias that does not
    exist is created with its key), and the self-signed CA certificate at ``certificate_path`` (made when
    missing; an existing one must be a CA for the key, and is never replaced). ``certificate_content``: the CA
    certificate found in AWS IoT when the file is not cached yet (check mode): checked, never written. Nothing
    secret is read or written."""
    alias = alias_of(kms_key)
    if alias is not None:
        key_created, metadata = ensure_key(client, alias, f"iotfleet.aws fleet CA key ({common_name})",
                                           check_mode=check_mode)
    else:
        key_created, metadata = False, None
    pem = read_optional(certificate_path) or certificate_content
    result = dict(changed=key_created, key_arn=metadata["Arn"] if metadata else None, key_created=key_created, certificate_created=pem is None,
                  certificate_id=None)
    if key_created and check_mode:
        result["changed"] = True
        return result
    key = signing_key(client, kms_key, metadata=metadata)   # one DescribeKey in all
    result["key_arn"] = key.key_id
    if pem is not None:
        cert = _x509.load_certificate(pem, what=f"fleet CA certificate {certificate_path}")
        if not _x509.is_ca(cert) or not _x509.key_matches_certificate(key, cert):
            raise IoTFleetError(
                f"The fleet CA certificate {certificate_path} is not a CA certificate for the KMS key {kms_key} "
                f"({_x509.describe(cert)}): point ca_certificate_path at the key's certificate, or name its key "
                "(iotfleet_ca_kms_key). Nothing was written."
            )
        result["certificate_id"] = _x509.certificate_id(cert)
        return result
    result["changed"] = True
    if check_mode:
        return result
    cert, _key = _x509.create_ca(common_name, days=validity_days, key=key)
    write_file(certificate_path, _x509.certificate_pem(cert).encode("ascii"), 0o644)
    result["certificate_id"] = _x509.certificate_id(cert)
    return result
