# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet CA key in AWS KMS (issue 19, ``iotfleet_ca_backend: kms``), against the stand-in over HTTP.

- The stand-in's KMS refuses what AWS refuses and signs a DIGEST as AWS does (moto alone hashes it again,
  so a certificate it signs would not verify): disabled key, wrong key usage, wrong algorithm, a digest of
  the wrong length.
- Through ansible-playbook: the ca role creates the KMS key under its alias, the CA certificate signed by
  KMS, registers the CA (the verification certificate signed by KMS); iot_fleet signs a device certificate
  through KMS. No private key of the CA exists in any file; a second run changes nothing; check mode on a
  fresh account predicts and writes nothing.
"""

import hashlib
import os

import pytest

from support.iotcore import CREDENTIALS, REGION, module_defaults
from support.procs import ansible_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
{module_defaults}
  tasks:
    - name: The fleet CA (the ca role, key in KMS)
      ansible.builtin.include_role:
        name: iotfleet.aws.ca
      vars:
        ca_certificate_path: "{{{{ pki }}}}/ca/fleet-ca.pem"
        iotfleet_ca_backend: kms

    - name: One device signed through KMS
      iotfleet.aws.iot_fleet:
        devices: [{{thing_name: pi-kms}}]
        ca_certificate: "{{{{ pki }}}}/ca/fleet-ca.pem"
        ca_kms_key: alias/iotfleet-fleet-ca
        pki_dir: "{{{{ pki }}}}"
        policy_name: kms-device
      register: fleet
      when: not ansible_check_mode
"""


def _kms_client(moto):
    import boto3
    return boto3.client("kms", region_name=REGION, endpoint_url=moto.url, **CREDENTIALS)


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_standin_kms_signs_a_digest_and_refuses_what_aws_refuses(moto):
    from botocore.exceptions import ClientError
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    kms = _kms_client(moto)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    public = kms.get_public_key(KeyId=key)
    assert public["KeySpec"] == "ECC_NIST_P256" and public["KeyUsage"] == "SIGN_VERIFY"
    digest = hashlib.sha256(b"tbs certificate").digest()
    signature = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    # the signature of the digest itself (as AWS), not of its hash
    load_der_public_key(public["PublicKey"]).verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=digest[:20], MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert _code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert _code(e) == "InvalidKeyUsageException"
    symmetric = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=symmetric, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert _code(e) == "InvalidKeyUsageException"
    kms.disable_key(KeyId=key.rsplit("/", 1)[1])   # moto's DisableKey takes the key id only (AWS also the ARN)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert _code(e) == "DisabledException"
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId="alias/none", Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert _code(e) == "NotFoundException"


def test_signing_key_refuses_a_key_that_cannot_be_a_ca_key(moto):
    from ansible_collections.iotfleet.aws.plugins.module_utils import _kms
    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, retry_decorator
    from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

    raw = _kms_client(moto)
    client = IoTClient(raw, retry=retry_decorator(retries=1, delay=0.01))
    rsa = raw.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(IoTFleetError, match=f"{rsa} is RSA_2048 for SIGN_VERIFY; a fleet CA key must be ECC_NIST_P256"):
        _kms.signing_key(client, rsa)
    with pytest.raises(IoTFleetError, match="alias/missing does not exist"):
        _kms.signing_key(client, "alias/missing")
    # an alias on a key of another kind is never moved, nothing created
    raw.create_alias(AliasName="alias/taken", TargetKeyId=rsa)
    with pytest.raises(IoTFleetError, match="Nothing was written"):
        _kms.ensure_key(client, "alias/taken", "x")
    assert len(raw.list_keys()["Keys"]) == 1


def _run(tmp_path, moto, *args, pki="pki"):
    play = PLAYBOOK.format(module_defaults=module_defaults(moto.url))
    return ansible_playbook(tmp_path, play, {"hosts": "localhost ansible_connection=local\n"},
                            dict(pki=str(tmp_path / pki)), *args)


def _private_key_files(root):
    found = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                if b"PRIVATE KEY-----" in f.read():
                    found.append(os.path.relpath(path, root))
    return found


def test_ca_role_and_iot_fleet_sign_through_kms(tmp_path, moto, boto3_iot):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_public_key, Encoding, PublicFormat

    boto3_iot.create_policy(policyName="kms-device", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    kms = _kms_client(moto)

    check = _run(tmp_path, moto, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert not (tmp_path / "pki").exists()
    assert all(a["AliasName"] != "alias/iotfleet-fleet-ca" for a in kms.list_aliases()["Aliases"])
    assert boto3_iot.list_ca_certificates()["certificates"] == []

    first = _run(tmp_path, moto)
    assert first.returncode == 0, first.stdout + first.stderr
    key = kms.describe_key(KeyId="alias/iotfleet-fleet-ca")["KeyMetadata"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca" / "fleet-ca.pem").read_bytes())
    kms_public = load_der_public_key(kms.get_public_key(KeyId=key["Arn"])["PublicKey"])
    assert ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == \
        kms_public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    cas = boto3_iot.list_ca_certificates()["certificates"]
    assert len(cas) == 1 and cas[0]["status"] == "ACTIVE"
    device = x509.load_pem_x509_certificate((tmp_path / "pki" / "devices" / "pi-kms" / "certificate.pem").read_bytes())
    device.verify_directly_issued_by(ca)
    # the CA key is nowhere on this controller; only the device key of key mode controller is
    assert _private_key_files(tmp_path / "pki") == [os.path.join("devices", "pi-kms", "private.key")]
    assert "PRIVATE KEY" not in first.stdout

    second = _run(tmp_path, moto)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in second.stdout, second.stdout
    assert len(boto3_iot.list_ca_certificates()["certificates"]) == 1

    # another controller (no pki/): check mode predicts no change and writes nothing; the run finds the CA in
    # AWS IoT, checks it against the KMS key, and makes no second CA or key
    other_check = _run(tmp_path, moto, "--check", pki="other-pki")
    assert other_check.returncode == 0 and "changed=0" in other_check.stdout, other_check.stdout + other_check.stderr
    assert not (tmp_path / "other-pki").exists()
    other = _run(tmp_path, moto, pki="other-pki")
    assert other.returncode == 0, other.stdout + other.stderr
    assert len(boto3_iot.list_ca_certificates()["certificates"]) == 1
    assert len(kms.list_keys()["Keys"]) == 1
    assert (tmp_path / "other-pki" / "ca" / "fleet-ca.pem").read_bytes() == (tmp_path / "pki" / "ca" / "fleet-ca.pem").read_bytes()


def test_kms_fleet_ca_makes_what_is_missing_and_keeps_what_exists(tmp_path, moto):
    from ansible_collections.iotfleet.aws.plugins.module_utils import _kms, _x509
    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, retry_decorator
    from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

    raw = _kms_client(moto)
    client = IoTClient(raw, retry=retry_decorator(retries=1, delay=0.01))
    path = str(tmp_path / "ca" / "fleet-ca.pem")

    predicted = _kms.ensure_fleet_ca(client, "alias/fleet", path, check_mode=True)
    assert predicted["changed"] and predicted["key_created"] and predicted["key_arn"] is None
    assert raw.list_keys()["Keys"] == [] and not os.path.exists(path)

    made = _kms.ensure_fleet_ca(client, "alias/fleet", path, common_name="kms CA")
    assert made["changed"] and made["key_created"] and made["certificate_created"]
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    from support.recorders import ApiCallCounter
    calls = ApiCallCounter().attach(raw)
    again = _kms.ensure_fleet_ca(client, "alias/fleet", path, common_name="kms CA")
    assert not again["changed"] and again["certificate_id"] == made["certificate_id"]
    assert calls.snapshot()["calls"] == {"DescribeKey": 1, "GetPublicKey": 1}   # the key asked for once, no write

    # an operator's own key, named by id: used, never created; its certificate made when missing
    own = raw.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    other_path = str(tmp_path / "own" / "ca.pem")
    mine = _kms.ensure_fleet_ca(client, own, other_path)
    assert mine["changed"] and not mine["key_created"] and mine["certificate_created"]
    assert len(raw.list_keys()["Keys"]) == 2

    # a certificate file that is not the key's is never replaced
    stranger, _key = _x509.create_ca("someone else's CA")
    before = _x509.certificate_pem(stranger)
    with open(path, "w") as f:
        f.write(before)
    with pytest.raises(IoTFleetError, match="is not a CA certificate for the KMS key alias/fleet"):
        _kms.ensure_fleet_ca(client, "alias/fleet", path)
    with open(path) as f:
        assert f.read() == before
