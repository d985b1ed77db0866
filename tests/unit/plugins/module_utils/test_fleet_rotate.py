# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate rotation (iot_fleet rotation=stage|promote) against the real moto server.

A fleet is provisioned with short-lived certificates (20 days), then rotated by age (due within 30
days): the four runs of each phase (check, run, rerun unchanged, check unchanged), a device that
fails midway and the rerun that finishes it, revoke instead of delete, key mode device.
"""

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.unit import POLICY
from support.unit import principals


@pytest.fixture
def fleet(fleet_account):
    """Two devices provisioned with 20-day certificates; ``spec(**kw)`` builds the rotation spec
    (renewal within 30 days: both are due)."""
    client, counter, ca_cert, ca_key, pki = fleet_account

    def spec(renew_before_days=30, **kwargs):
        devices = validate_devices([dict(thing_name=f"pi-{i}", host=f"pi{i}.lan") for i in range(2)])
        return FleetSpec(devices, ca_cert, ca_key, pki, policy_name=POLICY, renew_before_days=renew_before_days,
                         **kwargs)

    provisioned = ensure_fleet(client, spec(renew_before_days=10, certificate_days=20))
    assert provisioned["failed_devices"] == []
    counter.reset()
    return client, counter, spec, pki, {d["thing_name"]: d["certificate_id"] for d in provisioned["devices"]}


def tree(pki):
    """Every file under pki with its mode (what a check run must leave as it was)."""
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mode for d, _dirs, files in os.walk(pki) for f in files}


def live_id(pki, thing):
    return _x509.certificate_id(_x509.load_certificate(path=os.path.join(pki, "devices", thing, "certificate.pem")))


def test_stage_then_promote_four_runs_each(fleet, boto3_iot):
    client, counter, spec, pki, old = fleet
    before = tree(pki)

    # stage: check, run, rerun unchanged, check unchanged
    predicted = rotate_fleet(client, spec(), "stage", check_mode=True)
    assert predicted["changed"] and predicted["staged_devices"] == ["pi0.lan", "pi1.lan"]
    assert all("certificate registration" in d["changes"] for d in predicted["devices"])
    assert counter.snapshot()["writes"] == 0 and tree(pki) == before

    staged = rotate_fleet(client, spec(), "stage")
    assert staged["changed"] and staged["failed_devices"] == [] and staged["due_devices"] == ["pi0.lan", "pi1.lan"]
    new = {d["thing_name"]: d["certificate_id"] for d in staged["devices"]}
    for thing in new:
        assert new[thing] != old[thing]
        # the new identity beside the live one: both ACTIVE and attached, the new one carries the policy
        assert principals(boto3_iot, thing) == {old[thing]: "ACTIVE", new[thing]: "ACTIVE"}
        arn = boto3_iot.describe_certificate(certificateId=new[thing])["certificateDescription"]["certificateArn"]
        assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
        key = os.path.join(pki, "staged", "devices", thing, "private.key")
        assert os.stat(key).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(key)).st_mode & 0o777 == 0o700
        assert live_id(pki, thing) == old[thing]   # the live files are untouched until promotion

    for check_mode in (False, True):
        counter.reset()
        again = rotate_fleet(client, spec(), "stage", check_mode=check_mode)
        assert not again["changed"] and counter.snapshot()["writes"] == 0
        assert {d["thing_name"]: d["certificate_id"] for d in again["devices"]} == new

    # promote: check, run, rerun unchanged, check unchanged
    counter.reset()
    staged_tree = tree(pki)
    predicted = rotate_fleet(client, spec(), "promote", check_mode=True)
    assert predicted["changed"] and predicted["promoted_devices"] == ["pi0.lan", "pi1.lan"]
    assert all(d["retired_certificates"] == [old[d["thing_name"]]] for d in predicted["devices"])
    assert counter.snapshot()["writes"] == 0 and tree(pki) == staged_tree

    promoted = rotate_fleet(client, spec(), "promote")
    assert promoted["changed"] and promoted["failed_devices"] == []
    for device in promoted["devices"]:
        thing = device["thing_name"]
        assert device["retired_certificates"] == [old[thing]]
        assert principals(boto3_iot, thing) == {new[thing]: "ACTIVE"}
        with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
            boto3_iot.describe_certificate(certificateId=old[thing])
        assert live_id(pki, thing) == new[thing]
        assert not os.path.exists(os.path.join(pki, "staged", "devices", thing))
        archive = device["archived_to"]
        assert os.path.basename(archive).startswith(thing + "-")
        assert sorted(os.listdir(archive)) == ["certificate.pem"]   # the old key is destroyed

    # reruns: promotion finds nothing staged; staging finds nothing due, so the playbook promotes
    # nobody (check mode promotes only what the stage step staged or predicted)
    for phase, check_mode in (("promote", False), ("stage", False), ("stage", True)):
        counter.reset()
        again = rotate_fleet(client, spec(), phase, check_mode=check_mode)
        assert not again["changed"], again
        assert counter.snapshot()["writes"] == 0
        assert again.get("staged_devices", []) == [] and again.get("promoted_devices", []) == []
    # nothing due any more (the new certificates run 3650 days): the stage run says so per device
    assert again["due_devices"] == [] and all(d["old_certificate_id"] == new[d["thing_name"]] for d in again["devices"])
    # provision.yml after a rotation keeps the rotated identity
    counter.reset()
    assert not ensure_fleet(client, spec())["changed"] and counter.snapshot()["writes"] == 0


def test_failure_midway_keeps_the_old_identity_and_a_rerun_finishes(fleet, boto3_iot):
    client, counter, spec, pki, old = fleet
    staged = rotate_fleet(client, spec(), "stage")
    new = {d["thing_name"]: d["certificate_id"] for d in staged["devices"]}

    # pi1 did not verify (or was unreachable): only pi0 is promoted; pi1 keeps its live identity
    devices = spec().devices
    only_pi0 = spec()
    only_pi0.devices = devices[:1]
    assert rotate_fleet(client, only_pi0, "promote")["promoted_devices"] == ["pi0.lan"]
    assert principals(boto3_iot, "pi-1") == {old["pi-1"]: "ACTIVE", new["pi-1"]: "ACTIVE"}
    assert live_id(pki, "pi-1") == old["pi-1"]

    # the staged certificate lost its thing attachment meanwhile: promotion refuses, naming the host,
    # and retires nothing; the other device is not affected
    arn = boto3_iot.describe_certificate(certificateId=new["pi-1"])["certificateDescription"]["certificateArn"]
    boto3_iot.detach_thing_principal(thingName="pi-1", principal=arn)
    refused = rotate_fleet(client, spec(), "promote")
    assert refused["failed_devices"] == ["pi1.lan"]
    msg = refused["devices"][1]["msg"]
    assert "pi1.lan" in msg and new["pi-1"] in msg and "not attached" in msg
    assert principals(boto3_iot, "pi-1") == {old["pi-1"]: "ACTIVE"}
    assert not refused["devices"][0]["changed"]

    # the rerun: stage reuses the staged identity (same certificate, the attachment restored) ...
    counter.reset()
    rerun = rotate_fleet(client, spec(), "stage")
    assert rerun["due_devices"] == ["pi1.lan"] and rerun["devices"][1]["certificate_id"] == new["pi-1"]
    assert rerun["devices"][1]["changes"] == ["thing principal"]
    assert counter.snapshot()["calls"].get("RegisterCertificate") is None
    # ... and promotion finishes it
    assert rotate_fleet(client, spec(), "promote")["promoted_devices"] == ["pi1.lan"]
    assert principals(boto3_iot, "pi-1") == {new["pi-1"]: "ACTIVE"}
    assert live_id(pki, "pi-1") == new["pi-1"]


def test_revoke_keeps_the_old_certificate_revoked_and_detached(fleet, boto3_iot):
    client, _counter, spec, _pki, old = fleet
    rotate_fleet(client, spec(retire_certificates="revoke"), "stage")
    promoted = rotate_fleet(client, spec(retire_certificates="revoke"), "promote")
    assert promoted["failed_devices"] == []
    for thing, cert_id in old.items():
        described = boto3_iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
        assert described["status"] == "REVOKED"
        assert boto3_iot.list_principal_things(principal=described["certificateArn"])["things"] == []
        assert boto3_iot.list_attached_policies(target=described["certificateArn"])["policies"] == []
        assert len(principals(boto3_iot, thing)) == 1


def test_rotate_all_and_selection_by_age(fleet):
    client, _counter, spec, _pki, _old = fleet
    not_due = rotate_fleet(client, spec(renew_before_days=5), "stage")
    assert not not_due["changed"] and not_due["due_devices"] == []
    forced = rotate_fleet(client, spec(renew_before_days=5), "stage", rotate_all=True)
    assert forced["changed"] and forced["staged_devices"] == ["pi0.lan", "pi1.lan"]
    # a staged identity is finished by a rerun even when selection by age would not pick the device
    assert rotate_fleet(client, spec(renew_before_days=5), "stage")["due_devices"] == ["pi0.lan", "pi1.lan"]


def test_a_device_without_a_live_identity_fails_alone(fleet, fleet_ca):
    client, _counter, spec, pki, _old = fleet
    rotation = spec()
    rotation.devices = rotation.devices + validate_devices([dict(thing_name="pi-new", host="new.lan")])
    result = rotate_fleet(client, rotation, "stage")
    assert result["failed_devices"] == ["new.lan"]
    assert "new.lan" in result["devices"][2]["msg"] and "provision.yml" in result["devices"][2]["msg"]
    assert result["staged_devices"] == ["pi0.lan", "pi1.lan"]
    assert not os.path.exists(os.path.join(pki, "staged", "devices", "pi-new"))
    with pytest.raises(IoTFleetError):
        rotate_fleet(client, rotation, "retire")


def _csr(thing):
    key = _x509.generate_private_key("ec")
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)])).sign(key, hashes.SHA256())
    return key, _x509.csr_pem(csr)


def test_key_mode_device_waits_for_the_device_csr(fleet_account):
    client, ca_cert, ca_key, pki = fleet_account.client, fleet_account.ca_cert, fleet_account.ca_key, fleet_account.pki
    os.makedirs(os.path.join(pki, "devices", "pi-0"))
    with open(os.path.join(pki, "devices", "pi-0", "device.csr"), "w") as f:
        f.write(_csr("pi-0")[1])

    def spec():
        return FleetSpec(validate_devices([dict(thing_name="pi-0")]), ca_cert, ca_key, pki, key_mode="device",
                         certificate_days=20, renew_before_days=30)

    provisioned = ensure_fleet(client, FleetSpec(spec().devices, ca_cert, ca_key, pki, key_mode="device",
                                                 certificate_days=20, renew_before_days=10))
    old = provisioned["devices"][0]["certificate_id"]
    waiting = rotate_fleet(client, spec(), "stage")
    assert waiting["pending_csr_devices"] == ["pi-0"] and not waiting["changed"]
    assert rotate_fleet(client, spec(), "stage", check_mode=True)["changed"]
    staged_dir = os.path.join(pki, "staged", "devices", "pi-0")
    os.makedirs(staged_dir)
    with open(os.path.join(staged_dir, "device.csr"), "w") as f:
        f.write(_csr("pi-0")[1])
    staged = rotate_fleet(client, spec(), "stage")
    assert staged["staged_devices"] == ["pi-0"] and not os.path.exists(os.path.join(staged_dir, "private.key"))
    promoted = rotate_fleet(client, spec(), "promote")
    assert promoted["devices"][0]["retired_certificates"] == [old]
    assert sorted(os.listdir(os.path.join(pki, "devices", "pi-0"))) == ["certificate.pem", "device.csr"]


def test_a_stage_retires_an_earlier_staged_certificate_whose_files_are_gone(fleet, boto3_iot):
    """A rotation staged pi-0 and never promoted it (the Pi was down); then its files under pki/staged went
    (another controller, an operator). The next stage retires that certificate before staging another, so
    the thing holds the live and the new staged certificate only - not 3 ACTIVE ones. A certificate another CA
    issued is not the stage's to retire (drift reports it)."""
    import shutil

    client, counter, spec, pki, old = fleet
    first = rotate_fleet(client, spec(), "stage")
    earlier = {d["thing_name"]: d["certificate_id"] for d in first["devices"]}
    shutil.rmtree(os.path.join(pki, "staged", "devices", "pi-0"))
    other_ca, other_key = _x509.create_ca("Another CA")
    from support.iotcore import register_ca_certificate
    register_ca_certificate(boto3_iot, other_ca, other_key)
    foreign = _x509.issue_certificate(other_ca, other_key, "pi-0", _x509.generate_private_key().public_key())
    foreign_arn = boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(foreign),
                                                 caCertificatePem=_x509.certificate_pem(other_ca),
                                                 status="ACTIVE")["certificateArn"]
    boto3_iot.attach_thing_principal(thingName="pi-0", principal=foreign_arn)
    foreign_id = foreign_arn.rsplit("/", 1)[-1]

    counter.reset()
    predicted = rotate_fleet(client, spec(), "stage", check_mode=True)
    assert counter.snapshot()["writes"] == 0
    assert predicted["devices"][0]["retired_certificates"] == [earlier["pi-0"]]
    assert "retired an earlier staged certificate" in predicted["devices"][0]["changes"]
    assert predicted["devices"][1]["retired_certificates"] == []   # pi-1's staged files are there: reused

    staged = rotate_fleet(client, spec(), "stage")
    assert staged["failed_devices"] == [] and staged["devices"][0]["retired_certificates"] == [earlier["pi-0"]]
    new = staged["devices"][0]["certificate_id"]
    assert new != earlier["pi-0"] and staged["devices"][1]["certificate_id"] == earlier["pi-1"]
    assert principals(boto3_iot, "pi-0") == {old["pi-0"]: "ACTIVE", new: "ACTIVE", foreign_id: "ACTIVE"}
    with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
        boto3_iot.describe_certificate(certificateId=earlier["pi-0"])

    counter.reset()
    again = rotate_fleet(client, spec(), "stage")
    assert not again["changed"] and counter.snapshot()["writes"] == 0
    assert all(d["retired_certificates"] == [] for d in again["devices"])


def test_an_earlier_staged_certificate_is_revoked_with_retire_revoke(fleet, boto3_iot):
    import shutil

    client, _counter, spec, pki, old = fleet
    earlier = rotate_fleet(client, spec(), "stage")["devices"][1]["certificate_id"]
    shutil.rmtree(os.path.join(pki, "staged", "devices", "pi-1"))
    staged = rotate_fleet(client, spec(retire_certificates="revoke"), "stage")
    assert staged["devices"][1]["retired_certificates"] == [earlier]
    assert boto3_iot.describe_certificate(certificateId=earlier)["certificateDescription"]["status"] == "REVOKED"
    assert principals(boto3_iot, "pi-1") == {old["pi-1"]: "ACTIVE", staged["devices"][1]["certificate_id"]: "ACTIVE"}
