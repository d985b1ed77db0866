# -*- coding: utf-8 -*-
"""The fleet CA registration against a real moto server.

moto accepts any verification certificate, so the tests record what the collection sends (a thin
recording wrapper around the real client, no mocks) and check the verification certificate
themselves: CN == the registration code AWS handed out, signature by the CA key.
"""

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.aws.plugins.module_utils import _ca_certificate as cac
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.recorders import CERTIFICATE_WRITES, Recorder

R1 = "arn:aws:iam::123456789012:role/r1"
R2 = "arn:aws:iam::123456789012:role/r2"
TEMPLATE = {"Parameters": {"AWS::IoT::Certificate::Id": {"Type": "String"}}, "Resources": {}}


@pytest.fixture(scope="module")
def ca():
    return _x509.create_ca("Fleet CA")


@pytest.fixture
def rec(iot_client):
    return Recorder(iot_client, CERTIFICATE_WRITES)


def _cn(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# ---------------------------------------------------------------- pure helpers


def test_normalize_registration_config():
    assert cac.normalize_registration_config(None) is None
    got = cac.normalize_registration_config(
        dict(template_body=json.dumps(TEMPLATE, indent=4), template_name=None, role_arn="arn:aws:iam::1:role/r")
    )
    assert got == {"templateBody": json.dumps(TEMPLATE, sort_keys=True, separators=(",", ":")),
                   "roleArn": "arn:aws:iam::1:role/r"}
    assert cac.normalize_registration_config(dict(template_body=TEMPLATE)) == {"templateBody": got["templateBody"]}
    with pytest.raises(IoTFleetError, match="not valid JSON"):
        cac.normalize_registration_config(dict(template_body="{nope"))
    with pytest.raises(IoTFleetError, match="JSON object"):
        cac.normalize_registration_config(dict(template_body="[1]"))
    with pytest.raises(IoTFleetError, match="Unknown registration_config keys"):
        cac.normalize_registration_config(dict(templateBody="{}"))


def test_registration_config_changes_compares_normalised():
    desired = cac.normalize_registration_config(dict(template_body=TEMPLATE))
    assert cac.registration_config_changes(desired, {"templateBody": json.dumps(TEMPLATE, indent=2)}) is None
    assert cac.registration_config_changes(None, {"roleArn": "x"}) is None
    merged = cac.registration_config_changes(
        cac.normalize_registration_config(dict(role_arn="new")), {"roleArn": "old", "templateBody": "{}"}
    )
    assert merged == {"roleArn": "new", "templateBody": "{}"}


def test_normalize_status_and_mode():
    assert cac.normalize_status("active") == "ACTIVE"
    assert cac.normalize_mode("sni_only") == "SNI_ONLY"
    assert cac.normalize_mode(None) == "DEFAULT"
    with pytest.raises(IoTFleetError, match="Invalid CA certificate status"):
        cac.normalize_status("revoked")
    with pytest.raises(IoTFleetError, match="certificate_mode"):
        cac.normalize_mode("bogus")


# ---------------------------------------------------------------- local validation (no call at all)


def test_load_ca_refusals(ca):
    other_cert, other_key = _x509.create_ca("Other CA")
    with pytest.raises(IoTFleetError, match="does not match the CA certificate"):
        cac.load_ca(_x509.certificate_pem(ca[0]), ca_private_key=_x509.private_key_pem(other_key))
    device = _x509.issue_certificate(ca[0], ca[1], "pi", _x509.generate_private_key().public_key())
    with pytest.raises(IoTFleetError, match="is not a CA"):
        cac.load_ca(_x509.certificate_pem(device))
    with pytest.raises(IoTFleetError, match="not a PEM certificate"):
        cac.load_ca("junk")
    with pytest.raises(IoTFleetError, match="expired"):
        cac.load_ca(ca[0], now=datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc))
    with pytest.raises(IoTFleetError, match="required"):
        cac.load_ca(ca[0], need_key=True)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(ca_key="other"), "does not match"),
        (dict(ca_cert="device"), "is not a CA"),
        (dict(ca_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "not a valid PEM"),
        (dict(registration_config=dict(template_body="{")), "not valid JSON"),
        (dict(status="revoked"), "Invalid CA certificate status"),
        (dict(certificate_mode="x"), "certificate_mode"),
    ],
)
def test_ensure_refuses_bad_input_before_any_call(ca, rec, boto3_iot, kwargs, fragment):
    other_key = _x509.create_ca("Other")[1]
    device = _x509.issue_certificate(ca[0], ca[1], "pi", _x509.generate_private_key().public_key())
    args = dict(ca_cert=ca[0], ca_key=ca[1])
    args.update(kwargs)
    if args["ca_key"] == "other":
        args["ca_key"] = other_key
    if args["ca_cert"] == "device":
        args["ca_cert"] = device
    with pytest.raises(IoTFleetError, match=fragment):
        cac.ensure_ca_certificate(rec, **args)
    assert rec.calls == []
    assert boto3_iot.describe_ca_certificate.__self__  # client alive
    assert boto3_iot.list_certificates()["certificates"] == []


# ---------------------------------------------------------------- against moto


def test_register_default_mode_sends_a_real_verification_certificate(ca, rec, boto3_iot):
    out = cac.ensure_ca_certificate(rec, ca[0], ca[1], allow_auto_registration=True,
                                    registration_config=dict(template_body=TEMPLATE, role_arn="arn:aws:iam::1:role/r"))
    assert out.changed
    cert_id = _x509.certificate_id(ca[0])
    assert out.values["certificate_id"] == cert_id
    assert out.values["certificate_arn"].endswith(f":cacert/{cert_id}") or cert_id in out.values["certificate_arn"]
    assert rec.operations() == ["describe_ca_certificate", "get_registration_code", "register_ca_certificate"]
    code = rec.calls[1][2]["registrationCode"]
    sent = rec.calls[2][1]
    assert sent["certificateMode"] == "DEFAULT" and sent["setAsActive"] is True
    assert sent["allowAutoRegistration"] is True
    verification = x509.load_pem_x509_certificate(sent["verificationCertificate"].encode())
    assert _cn(verification) == code
    assert verification.issuer == ca[0].subject
    ca[0].public_key().verify(
        verification.signature, verification.tbs_certificate_bytes, ec.ECDSA(verification.signature_hash_algorithm)
    )
    # readback
    got = boto3_iot.describe_ca_certificate(certificateId=cert_id)
    assert got["certificateDescription"]["status"] == "ACTIVE"
    assert json.loads(got["registrationConfig"]["templateBody"]) == TEMPLATE
    assert got["registrationConfig"]["roleArn"] == "arn:aws:iam::1:role/r"
    assert "PRIVATE" not in json.dumps(out.to_result(diff=True))


def test_register_rsa_ca(rec, boto3_iot):
    ca_cert, ca_key = _x509.create_ca("RSA fleet CA", kind="rsa")
    cac.ensure_ca_certificate(rec, _x509.certificate_pem(ca_cert), _x509.private_key_pem(ca_key))
    code = rec.calls[1][2]["registrationCode"]
    verification = x509.load_pem_x509_certificate(rec.calls[2][1]["verificationCertificate"].encode())
    assert _cn(verification) == code
    assert _x509.is_issued_by(verification, ca_cert)


def test_idempotent_and_check_mode(ca, rec, boto3_iot):
    cert_id = _x509.certificate_id(ca[0])
    args = dict(ca_cert=ca[0], ca_key=ca[1], registration_config=dict(template_body=TEMPLATE))
    assert cac.ensure_ca_certificate(rec, check_mode=True, **args).changed
    assert rec.writes() == []
    assert boto3_iot.list_certificates()["certificates"] == []
    with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
        boto3_iot.describe_ca_certificate(certificateId=cert_id)
    assert cac.ensure_ca_certificate(rec, **args).changed
    rec.calls.clear()
    assert not cac.ensure_ca_certificate(rec, check_mode=True, **args).changed
    assert not cac.ensure_ca_certificate(rec, **args).changed
    # a JSON string with other formatting is the same template
    args["registration_config"] = dict(template_body=json.dumps(TEMPLATE, indent=3))
    assert not cac.ensure_ca_certificate(rec, **args).changed
    assert rec.operations() == ["describe_ca_certificate"] * 3


def test_existing_ca_needs_no_key(ca, iot_client, rec):
    cac.ensure_ca_certificate(iot_client, ca[0], ca[1])
    assert not cac.ensure_ca_certificate(rec, ca[0]).changed


def test_key_required_to_register_in_default_mode(ca, rec, boto3_iot):
    with pytest.raises(IoTFleetError, match="private key .* is required to register"):
        cac.ensure_ca_certificate(rec, ca[0])
    assert rec.writes() == [] and rec.operations() == ["describe_ca_certificate"]


def test_sni_only_registers_without_verification(ca, rec, boto3_iot):
    out = cac.ensure_ca_certificate(rec, ca[0], certificate_mode="sni_only", status="inactive")
    assert out.changed and out.values["certificate_mode"] == "SNI_ONLY"
    assert rec.operations() == ["describe_ca_certificate", "register_ca_certificate"]
    sent = rec.calls[1][1]
    assert sent["certificateMode"] == "SNI_ONLY" and "verificationCertificate" not in sent
    assert sent["setAsActive"] is False
    got = boto3_iot.describe_ca_certificate(certificateId=out.values["certificate_id"])
    assert got["certificateDescription"]["status"] == "INACTIVE"


def test_update_status_and_config(ca, iot_client, rec, boto3_iot):
    cert_id = _x509.certificate_id(ca[0])
    cac.ensure_ca_certificate(iot_client, ca[0], ca[1], registration_config=dict(role_arn=R1, template_body=TEMPLATE))
    out = cac.ensure_ca_certificate(rec, ca[0], status="inactive", registration_config=dict(role_arn=R2))
    assert out.changed
    assert out.before["status"] == "ACTIVE" and out.after["status"] == "INACTIVE"
    assert out.before["registration_config"]["role_arn"] == R1
    assert out.after["registration_config"] == {"role_arn": R2, "template_body": TEMPLATE}
    assert rec.writes() == ["update_ca_certificate"]
    got = boto3_iot.describe_ca_certificate(certificateId=cert_id)
    assert got["certificateDescription"]["status"] == "INACTIVE"
    assert got["registrationConfig"]["roleArn"] == R2
    assert json.loads(got["registrationConfig"]["templateBody"]) == TEMPLATE  # undeclared key kept
    assert not cac.ensure_ca_certificate(rec, ca[0], status="inactive",
                                         registration_config=dict(role_arn=R2)).changed


def test_mode_change_refused(ca, iot_client, rec):
    """moto does not describe certificateMode: a recorded AWS-shaped answer stands in for it."""
    cac.ensure_ca_certificate(iot_client, ca[0], certificate_mode="sni_only")

    class AWSLike:
        def get(self, operation, **kwargs):
            answer = iot_client.get(operation, **kwargs)
            answer["certificateDescription"]["certificateMode"] = "SNI_ONLY"
            answer["certificateDescription"]["autoRegistrationStatus"] = "DISABLE"
            return answer

        def call(self, operation, **kwargs):
            rec.calls.append((operation, kwargs, None))

    with pytest.raises(IoTFleetError, match="mode cannot be changed"):
        cac.ensure_ca_certificate(AWSLike(), ca[0], ca[1], certificate_mode="default")
    # the same AWS-shaped answer drives auto-registration updates
    out = cac.ensure_ca_certificate(AWSLike(), ca[0], certificate_mode="sni_only", allow_auto_registration=True)
    assert out.changed and rec.calls[-1][1]["newAutoRegistrationStatus"] == "ENABLE"
    assert not cac.ensure_ca_certificate(AWSLike(), ca[0], certificate_mode="sni_only",
                                         allow_auto_registration=False).changed


def _device(boto3_iot, ca, cn, status="ACTIVE"):
    cert = _x509.issue_certificate(ca[0], ca[1], cn, _x509.generate_private_key().public_key())
    boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(cert),
                                   caCertificatePem=_x509.certificate_pem(ca[0]), status=status)
    return _x509.certificate_id(cert)


def test_remove(ca, iot_client, rec, boto3_iot):
    cert_id = _x509.certificate_id(ca[0])
    assert not cac.remove_ca_certificate(rec, ca[0]).changed
    cac.ensure_ca_certificate(iot_client, ca[0], ca[1])
    inactive = _device(boto3_iot, ca, "pi-off", status="INACTIVE")
    rec.calls.clear()
    out = cac.remove_ca_certificate(rec, ca[0], check_mode=True)
    assert out.changed and rec.writes() == []
    out = cac.remove_ca_certificate(rec, _x509.certificate_pem(ca[0]))
    assert out.changed and out.values["deactivated_certificates"] == []
    assert rec.writes() == ["update_ca_certificate", "delete_ca_certificate"]
    with pytest.raises(Exception, match="ResourceNotFound"):
        boto3_iot.describe_ca_certificate(certificateId=cert_id)
    assert boto3_iot.describe_certificate(certificateId=inactive)["certificateDescription"]["status"] == "INACTIVE"
    assert not cac.remove_ca_certificate(rec, ca[0]).changed


def test_remove_refuses_with_active_devices_unless_force(ca, iot_client, rec, boto3_iot):
    cert_id = _x509.certificate_id(ca[0])
    cac.ensure_ca_certificate(iot_client, ca[0], ca[1])
    active = sorted(_device(boto3_iot, ca, f"pi-{i}") for i in range(2))
    with pytest.raises(IoTFleetError, match="2 ACTIVE device certificate") as err:
        cac.remove_ca_certificate(rec, ca[0])
    assert all(a in err.value.message for a in active)
    assert rec.writes() == []
    assert boto3_iot.describe_ca_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    out = cac.remove_ca_certificate(rec, ca[0], force=True, check_mode=True)
    assert out.changed and out.values["deactivated_certificates"] == active and rec.writes() == []
    out = cac.remove_ca_certificate(rec, ca[0], force=True)
    assert out.values["deactivated_certificates"] == active
    for device_id in active:
        assert boto3_iot.describe_certificate(certificateId=device_id)["certificateDescription"]["status"] == "INACTIVE"
    with pytest.raises(Exception, match="ResourceNotFound"):
        boto3_iot.describe_ca_certificate(certificateId=cert_id)
