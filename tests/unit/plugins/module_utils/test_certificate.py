# -*- coding: utf-8 -*-
"""Device certificates against a real moto server.

moto accepts device certificates from any CA, REVOKED->ACTIVE and invalid PEM; these tests prove
the collection refuses them itself, before any write (a recording wrapper around the real
client counts the calls; no mocks).
"""

import datetime

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _certificate as certs
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.iotcore import register_ca_certificate
from support.recorders import CERTIFICATE_WRITES, Recorder
from support.unit import run_in_threads

UTC = datetime.timezone.utc
POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'


@pytest.fixture(scope="module")
def ca():
    return _x509.create_ca("Fleet CA")


@pytest.fixture(scope="module")
def other_ca():
    return _x509.create_ca("Other CA")


@pytest.fixture
def rec(iot_client):
    return Recorder(iot_client, CERTIFICATE_WRITES)


@pytest.fixture
def registered_ca(ca, boto3_iot):
    register_ca_certificate(boto3_iot, ca[0], ca[1])
    return ca


def _device(ca, cn="pi-1", **kwargs):
    return _x509.issue_certificate(ca[0], ca[1], cn, _x509.generate_private_key().public_key(), **kwargs)


def _status(boto3_iot, cert_id):
    return boto3_iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]


# ---------------------------------------------------------------- pure helpers


def test_normalize_status():
    assert certs.normalize_status("active") == "ACTIVE"
    assert certs.normalize_status("REVOKED") == "REVOKED"
    assert certs.normalize_status(None) is None
    with pytest.raises(IoTFleetError, match="Invalid certificate status 'PENDING_TRANSFER'"):
        certs.normalize_status("PENDING_TRANSFER")


@pytest.mark.parametrize("current, desired", [("ACTIVE", "INACTIVE"), ("INACTIVE", "ACTIVE"), ("ACTIVE", "REVOKED"),
                                              ("REVOKED", "REVOKED"), ("REVOKED", None), (None, "ACTIVE")])
def test_allowed_transitions(current, desired):
    certs.check_transition("abc", current, desired)


@pytest.mark.parametrize("desired", ["ACTIVE", "INACTIVE"])
def test_revoked_is_final(desired):
    with pytest.raises(IoTFleetError, match=f"abc is REVOKED, which is final: it cannot become {desired}"):
        certs.check_transition("abc", "REVOKED", desired)


# ---------------------------------------------------------------- refusals before any write


def test_device_from_another_ca_refused_before_any_call(ca, other_ca, rec, boto3_iot):
    device = _device(other_ca)
    with pytest.raises(IoTFleetError, match="not issued by the CA certificate: its issuer 'CN=Other CA'"):
        certs.ensure_certificate(rec, _x509.certificate_pem(device), _x509.certificate_pem(ca[0]))
    assert rec.calls == []
    assert boto3_iot.list_certificates()["certificates"] == []


def test_device_from_an_impostor_ca_with_the_same_name(ca, rec):
    impostor = _x509.create_ca("Fleet CA")
    with pytest.raises(IoTFleetError, match="signature does not verify"):
        certs.ensure_certificate(rec, cert=_device(impostor), ca_cert=ca[0])
    assert rec.calls == []


@pytest.mark.parametrize("pem", ["not a pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_invalid_pem_refused_before_any_call(pem, ca, rec, boto3_iot):
    with pytest.raises(IoTFleetError, match="PEM certificate"):
        certs.ensure_certificate(rec, pem)
    with pytest.raises(IoTFleetError, match="CA certificate"):
        certs.ensure_certificate(rec, _x509.certificate_pem(_device(ca)), pem)
    assert rec.calls == []
    assert boto3_iot.list_certificates()["certificates"] == []


def test_expired_and_not_yet_valid_refused(ca, rec):
    device = _device(ca)
    with pytest.raises(IoTFleetError, match="has expired"):
        certs.ensure_certificate(rec, cert=device, now=datetime.datetime(2200, 1, 1, tzinfo=UTC))
    with pytest.raises(IoTFleetError, match="not yet valid"):
        certs.ensure_certificate(rec, cert=device, now=datetime.datetime(2000, 1, 1, tzinfo=UTC))
    assert rec.calls == []


def test_bad_status_refused(ca, rec):
    with pytest.raises(IoTFleetError, match="Invalid certificate status"):
        certs.ensure_certificate(rec, cert=_device(ca), status="gone")
    assert rec.calls == []


def test_id_mismatch_refused(ca, rec):
    with pytest.raises(IoTFleetError, match="not the certificate_id"):
        certs.ensure_certificate(rec, cert=_device(ca), certificate_id="0" * 64)
    assert rec.calls == []


# ---------------------------------------------------------------- against moto


def test_register_with_ca(registered_ca, rec, boto3_iot):
    ca = registered_ca
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    assert certs.ensure_certificate(rec, _x509.certificate_pem(device), _x509.certificate_pem(ca[0]),
                                    check_mode=True).changed
    assert rec.writes() == [] and boto3_iot.list_certificates()["certificates"] == []
    out = certs.ensure_certificate(rec, _x509.certificate_pem(device), _x509.certificate_pem(ca[0]))
    assert out.changed
    assert out.values == dict(certificate_id=cert_id, certificate_arn=out.values["certificate_arn"], status="ACTIVE",
                              ca_certificate_id=_x509.certificate_id(ca[0]))
    assert cert_id in out.values["certificate_arn"]
    assert rec.operations() == ["describe_certificate", "describe_certificate", "register_certificate"]
    listed = boto3_iot.list_certificates_by_ca(caCertificateId=_x509.certificate_id(ca[0]))["certificates"]
    assert [c["certificateId"] for c in listed] == [cert_id]
    assert _status(boto3_iot, cert_id) == "ACTIVE"
    rec.calls.clear()
    # idempotent: one describe, no write (objects, as the fleet module passes them)
    assert not certs.ensure_certificate(rec, cert=device, ca_cert=ca[0], check_mode=True).changed
    assert not certs.ensure_certificate(rec, cert=device, ca_cert=ca[0]).changed
    assert rec.operations() == ["describe_certificate"] * 2


def test_register_without_ca_and_default_status(ca, rec, boto3_iot):
    device = _device(ca)
    out = certs.ensure_certificate(rec, cert=device)
    assert out.changed and out.values["status"] == "ACTIVE" and out.values["ca_certificate_id"] is None
    assert rec.writes() == ["register_certificate_without_ca"]
    assert _status(boto3_iot, _x509.certificate_id(device)) == "ACTIVE"


def test_register_inactive_then_activate(ca, rec, boto3_iot):
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    certs.ensure_certificate(rec, cert=device, status="INACTIVE")
    assert _status(boto3_iot, cert_id) == "INACTIVE"
    rec.calls.clear()
    out = certs.ensure_certificate(rec, cert=device, status="active")
    assert out.changed and out.before["status"] == "INACTIVE" and out.after["status"] == "ACTIVE"
    assert rec.operations() == ["describe_certificate", "update_certificate"]
    assert _status(boto3_iot, cert_id) == "ACTIVE"
    # status None leaves it alone
    assert not certs.ensure_certificate(rec, cert=device, status=None).changed


def test_revoked_to_active_refused_before_any_write(ca, rec, boto3_iot):
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    certs.ensure_certificate(rec, cert=device)
    assert certs.ensure_certificate(rec, cert=device, status="REVOKED").changed
    rec.calls.clear()
    with pytest.raises(IoTFleetError, match="REVOKED, which is final"):
        certs.ensure_certificate(rec, cert=device, status="ACTIVE")
    assert rec.writes() == []
    assert _status(boto3_iot, cert_id) == "REVOKED"
    # by id too
    with pytest.raises(IoTFleetError, match="REVOKED, which is final"):
        certs.ensure_certificate(rec, certificate_id=cert_id, status="INACTIVE")
    assert rec.writes() == []


def test_by_id(ca, rec, boto3_iot):
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    with pytest.raises(IoTFleetError, match="not registered; give its PEM"):
        certs.ensure_certificate(rec, certificate_id=cert_id)
    certs.ensure_certificate(rec, cert=device)
    assert certs.ensure_certificate(rec, certificate_id=cert_id, status="INACTIVE").changed
    assert _status(boto3_iot, cert_id) == "INACTIVE"


def test_concurrent_registration_of_the_same_certificate(ca, iot_client, boto3_iot):
    """Threads racing on one certificate: exactly one registers, none fails."""
    device = _device(ca)
    outcomes = []

    def work(_thread):
        outcomes.append(certs.ensure_certificate(iot_client, cert=device))

    assert run_in_threads(work, 6) == []
    assert _status(boto3_iot, _x509.certificate_id(device)) == "ACTIVE"
    assert len(boto3_iot.list_certificates()["certificates"]) == 1


def _attach(boto3_iot, arn, policy="p1", thing="t1"):
    boto3_iot.create_policy(policyName=policy, policyDocument=POLICY)
    boto3_iot.attach_policy(policyName=policy, target=arn)
    boto3_iot.create_thing(thingName=thing)
    boto3_iot.attach_thing_principal(thingName=thing, principal=arn)


def test_remove_plain(ca, rec, boto3_iot):
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    assert not certs.remove_certificate(rec, cert=device).changed
    certs.ensure_certificate(rec, cert=device)
    rec.calls.clear()
    assert certs.remove_certificate(rec, cert=device, check_mode=True).changed
    assert rec.writes() == []
    out = certs.remove_certificate(rec, _x509.certificate_pem(device))
    assert out.changed and out.before["status"] == "ACTIVE" and out.after == {}
    assert rec.writes() == ["update_certificate", "delete_certificate"]
    assert boto3_iot.list_certificates()["certificates"] == []
    assert not certs.remove_certificate(rec, certificate_id=cert_id).changed


def test_remove_attached_refused_unless_force(ca, rec, boto3_iot):
    device = _device(ca)
    cert_id = _x509.certificate_id(device)
    arn = certs.ensure_certificate(rec, cert=device).values["certificate_arn"]
    _attach(boto3_iot, arn)
    rec.calls.clear()
    with pytest.raises(IoTFleetError, match="still attached to policies p1 and things t1") as err:
        certs.remove_certificate(rec, cert=device)
    assert err.value.kwargs == dict(attached_policies=["p1"], attached_things=["t1"])
    assert rec.writes() == []
    assert _status(boto3_iot, cert_id) == "ACTIVE"
    out = certs.remove_certificate(rec, cert=device, force=True)
    assert out.values["detached_policies"] == ["p1"] and out.values["detached_things"] == ["t1"]
    assert rec.writes() == ["update_certificate", "delete_certificate"]
    assert [c[0] for c in rec.calls if c[0].startswith("detach")] == ["detach_policy", "detach_thing_principal"]
    assert boto3_iot.list_certificates()["certificates"] == []
    assert boto3_iot.list_thing_principals(thingName="t1")["principals"] == []
    assert boto3_iot.list_targets_for_policy(policyName="p1")["targets"] == []


def test_delete_waits_for_the_asynchronous_detach_and_says_when_it_gave_up(ca, rec, boto3_iot, monkeypatch):
    """The stand-in, like AWS, refuses the delete while a DetachThingPrincipal propagates (2 s)."""
    device = _device(ca)
    arn = certs.ensure_certificate(rec, cert=device).values["certificate_arn"]
    _attach(boto3_iot, arn)
    monkeypatch.setattr(certs, "DETACH_WAIT_SECONDS", 0.2)
    with pytest.raises(IoTAWSError, match="propagates asynchronously") as err:
        certs.remove_certificate(rec, cert=device, force=True)
    assert "still refused to delete it after 0 s" in err.value.message
    monkeypatch.setattr(certs, "DETACH_WAIT_SECONDS", 30.0)
    assert certs.remove_certificate(rec, cert=device, force=True).changed   # the rerun finishes it
    assert boto3_iot.list_certificates()["certificates"] == []


def test_a_failed_call_after_a_write_counts_the_write(iot_client, boto3_iot):
    iot_client.call("create_thing", thingName="written")
    with pytest.raises(IoTAWSError):
        iot_client.call("describe_thing", thingName="never-made")
    assert iot_client.writes == 1   # the module reports changed=true with its failure


def test_remove_revoked_keeps_it_revoked(ca, rec, boto3_iot):
    device = _device(ca)
    certs.ensure_certificate(rec, cert=device, status="REVOKED")
    rec.calls.clear()
    assert certs.remove_certificate(rec, cert=device).changed
    assert rec.writes() == ["delete_certificate"]


def test_info(registered_ca, rec, boto3_iot):
    ca = registered_ca
    with_ca = [_device(ca, f"pi-{i}") for i in range(3)]
    for d in with_ca:
        certs.ensure_certificate(rec, cert=d, ca_cert=ca[0])
    loose = _device(ca, "loose")
    certs.ensure_certificate(rec, cert=loose, status="INACTIVE")
    ca_id = _x509.certificate_id(ca[0])
    ids = sorted(_x509.certificate_id(d) for d in with_ca)

    everything = certs.certificate_info(rec)["certificates"]
    assert len(everything) == 4
    by_ca = certs.certificate_info(rec, ca_certificate_id=ca_id)["certificates"]
    assert sorted(c["certificate_id"] for c in by_ca) == ids
    assert all(c["ca_certificate_id"] == ca_id and c["status"] == "ACTIVE" for c in by_ca)
    assert all(isinstance(c["creation_date"], str) and "certificate_pem" not in c for c in by_ca)
    with_pem = certs.certificate_info(rec, ca_certificate_id=ca_id, include_pem=True)["certificates"]
    assert all(_x509.load_certificate(c["certificate_pem"]) in with_ca for c in with_pem)
    one = certs.certificate_info(rec, certificate_ids=[_x509.certificate_id(loose), "f" * 64], include_pem=True)
    assert len(one["certificates"]) == 1 and one["certificates"][0]["status"] == "INACTIVE"
    assert _x509.load_certificate(one["certificates"][0]["certificate_pem"]) == loose
    assert one["changed"] is False


def test_check_mode_predicts_the_arn_aws_gives(registered_ca, moto, boto3_iot):
    """The ARN of a certificate still to be registered: region and account (one STS
    GetCallerIdentity of the stand-in, asked once per client) + cert/<SHA-256 of the DER>."""
    import boto3

    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, retry_decorator
    from support.iotcore import CREDENTIALS

    asked = []

    def account_info():
        sts = boto3.client("sts", region_name=boto3_iot.meta.region_name, endpoint_url=moto.url, **CREDENTIALS)
        arn = sts.get_caller_identity()["Arn"]
        asked.append(arn)
        return arn.split(":")[4], arn.split(":")[1]

    client = IoTClient(boto3_iot, retry=retry_decorator(retries=1, delay=0.01), account_info=account_info)
    devices = [_device(registered_ca, cn=f"pi-{i}") for i in range(2)]
    predicted = [certs.ensure_certificate(client, cert=d, ca_cert=registered_ca[0], check_mode=True, predict_arn=True)
                 for d in devices]
    assert len(asked) == 1   # cached per client
    assert boto3_iot.list_certificates()["certificates"] == []
    unpredicted = certs.ensure_certificate(client, cert=devices[0], ca_cert=registered_ca[0], check_mode=True)
    assert unpredicted.values["certificate_arn"] is None   # the fleet does not ask (no STS call there)
    for device, outcome in zip(devices, predicted):
        real = certs.ensure_certificate(client, cert=device, ca_cert=registered_ca[0])
        assert outcome.values["certificate_arn"] == real.values["certificate_arn"]
        assert real.values["certificate_arn"].endswith(":cert/" + _x509.certificate_id(device))
