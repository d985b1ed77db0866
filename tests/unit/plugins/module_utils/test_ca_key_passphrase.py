# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet CA key encrypted with a passphrase (issue 19): every reader of the CA key (iot_ca_certificate,
iot_fleet registration and rotation, the CA switch) decrypts it with ``ca_private_key_passphrase``; a
wrong or missing passphrase fails before any AWS call, naming the file and never echoing the passphrase.
An Ansible Vault file is refused with a message that says how (the action plugins decrypt it: see
tests/integration/test_ca_key_vault.py)."""

import os
from unittest.mock import MagicMock

import pytest

from cryptography.hazmat.primitives import serialization

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import run_ca_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import load_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import switch_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.iotcore import register_ca_certificate

PASSPHRASE = "correct horse battery staple"
WRONG = "Tr0ub4dor&3"
VAULTED = "$ANSIBLE_VAULT;1.1;AES256\n6162636465660a\n"


def encrypted_pem(key, passphrase=PASSPHRASE, traditional=False):
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.BestAvailableEncryption(passphrase.encode())).decode()


def write_ca(directory, passphrase=PASSPHRASE, name="iotfleet fleet CA"):
    cert, key = _x509.create_ca(name)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(directory, "fleet-ca.pem"), os.path.join(directory, "fleet-ca.key")
    with open(cert_path, "w") as f:
        f.write(_x509.certificate_pem(cert))
    with open(key_path, "w") as f:
        f.write(encrypted_pem(key, passphrase) if passphrase else _x509.private_key_pem(key))
    os.chmod(key_path, 0o600)
    return cert, key, cert_path, key_path


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional"])
def test_encrypted_key_round_trip(tmp_path, traditional):
    cert, key = _x509.create_ca("round trip")
    path = tmp_path / "ca.key"
    path.write_text(encrypted_pem(key, traditional=traditional))
    assert _x509.is_encrypted_pem(path.read_bytes())
    loaded = _x509.load_private_key(path=str(path), passphrase=PASSPHRASE)
    assert _x509.key_matches_certificate(loaded, cert)


def test_wrong_missing_or_needless_passphrase_names_the_file(tmp_path):
    _cert, key = _x509.create_ca("wrong")
    path = tmp_path / "fleet-ca.key"
    path.write_text(encrypted_pem(key))
    with pytest.raises(IoTFleetError) as err:
        _x509.load_private_key(path=str(path), what="fleet CA private key", passphrase=WRONG)
    assert "wrong passphrase" in err.value.message and str(path) in err.value.message
    assert WRONG not in err.value.message and PASSPHRASE not in err.value.message
    with pytest.raises(IoTFleetError, match="encrypted and no passphrase was given") as err:
        _x509.load_private_key(path=str(path))
    assert str(path) in err.value.message
    plain = tmp_path / "plain.key"
    plain.write_text(_x509.private_key_pem(key))
    with pytest.raises(IoTFleetError, match="not encrypted, but a passphrase was given") as err:
        _x509.load_private_key(path=str(plain), passphrase=PASSPHRASE)
    assert PASSPHRASE not in err.value.message


def test_vault_file_is_refused_with_how_and_content_with_path_names_the_file(tmp_path):
    cert, key = _x509.create_ca("vault")
    path = tmp_path / "fleet-ca.key"
    path.write_text(VAULTED)
    with pytest.raises(IoTFleetError, match="encrypted with Ansible Vault") as err:
        _x509.load_private_key(path=str(path))
    assert str(path) in err.value.message
    # the action plugin passes the decrypted content beside the path: the content is the key, the path names it
    loaded = _x509.load_private_key(encrypted_pem(key), path=str(path), passphrase=PASSPHRASE)
    assert _x509.key_matches_certificate(loaded, cert)
    with pytest.raises(IoTFleetError, match="wrong passphrase") as err:
        _x509.load_private_key(encrypted_pem(key), path=str(path), passphrase=WRONG)
    assert str(path) in err.value.message


def test_iot_ca_certificate_wrong_passphrase_fails_before_any_call(tmp_path):
    _cert, _key, cert_path, key_path = write_ca(str(tmp_path / "ca"))
    client = MagicMock()
    with pytest.raises(IoTFleetError, match="wrong passphrase") as err:
        run_ca_certificate(client, ca_certificate=cert_path, ca_private_key=key_path,
                           ca_private_key_passphrase=WRONG, certificate_mode="default", status="ACTIVE")
    assert key_path in err.value.message
    assert client.mock_calls == []


def test_iot_ca_certificate_registers_with_an_encrypted_key(tmp_path, iot_client, boto3_iot):
    cert, _key, cert_path, key_path = write_ca(str(tmp_path / "ca"))
    outcome = run_ca_certificate(iot_client, ca_certificate=cert_path, ca_private_key=key_path,
                                 ca_private_key_passphrase=PASSPHRASE, certificate_mode="default", status="ACTIVE")
    assert outcome.changed and outcome.values["certificate_id"] == _x509.certificate_id(cert)
    described = boto3_iot.describe_ca_certificate(certificateId=_x509.certificate_id(cert))
    assert described["certificateDescription"]["status"] == "ACTIVE"


def test_fleet_registers_with_an_encrypted_ca_key(tmp_path, boto3_iot):
    cert, key, cert_path, key_path = write_ca(str(tmp_path / "pki" / "ca"))
    register_ca_certificate(boto3_iot, cert, key)
    boto3_iot.create_policy(policyName="fleet-device", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    with pytest.raises(IoTFleetError, match="wrong passphrase"):
        load_fleet_ca(cert_path, key_path, passphrase=WRONG)
    ca_cert, ca_key = load_fleet_ca(cert_path, key_path, passphrase=PASSPHRASE)
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=2, delay=0.01))
    spec = FleetSpec(validate_devices([dict(thing_name="pi-enc")]), ca_cert, ca_key, str(tmp_path / "pki"),
                     policy_name="fleet-device")
    result = ensure_fleet(client, spec)
    assert result["failed_devices"] == [] and result["devices"][0]["changed"]


def test_ca_switch_wrong_passphrase_fails_before_any_call_right_one_switches(tmp_path, boto3_iot):
    ca_dir = str(tmp_path / "pki" / "ca")
    old_cert, old_key, cert_path, key_path = write_ca(ca_dir)
    new_cert, new_key, next_cert_path, next_key_path = write_ca(os.path.join(ca_dir, "next"), name="next CA")
    for cert, key in ((old_cert, old_key), (new_cert, new_key)):
        register_ca_certificate(boto3_iot, cert, key)
    client = MagicMock()
    with pytest.raises(IoTFleetError, match="wrong passphrase") as err:
        switch_fleet_ca(client, cert_path, key_path, next_cert_path, next_key_path, passphrase=WRONG)
    assert key_path in err.value.message and WRONG not in err.value.message
    assert client.mock_calls == []

    iot = IoTClient(boto3_iot, retry=retry_decorator(retries=2, delay=0.01))
    switched = switch_fleet_ca(iot, cert_path, key_path, next_cert_path, next_key_path, passphrase=PASSPHRASE)
    assert switched["state"] == "switched" and switched["ca_certificate_id"] == _x509.certificate_id(new_cert)
    # the next CA's key (still encrypted) is the fleet CA's key now
    assert _x509.key_matches_certificate(load_fleet_ca(cert_path, key_path, passphrase=PASSPHRASE)[1], new_cert)
    assert not os.path.exists(os.path.join(ca_dir, "next"))
