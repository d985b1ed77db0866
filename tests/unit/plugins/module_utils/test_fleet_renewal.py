# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renewal in the batched registration (iot_fleet renewal=rotate, what provision.yml runs) against
the real moto server: a due certificate that is still valid stays live and is reported due; the
rotation phases replace it; a device whose rotation stops midway (unreachable, its round trip
failed) keeps both certificates ACTIVE and attached through any number of registration reruns; a
dead certificate (expired, REVOKED) is still replaced at once.
"""

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import retire_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.unit import POLICY
from support.unit import principals


@pytest.fixture
def fleet(fleet_account):
    """Two devices provisioned with 20-day certificates; ``spec(**kw)`` is the registration spec
    (renewal rotate, due within 30 days: both are due)."""
    client, counter, ca_cert, ca_key, pki = fleet_account

    def spec(renew_before_days=30, renewal="rotate", **kwargs):
        devices = validate_devices([dict(thing_name=f"pi-{i}", host=f"pi{i}.lan") for i in range(2)])
        return FleetSpec(devices, ca_cert, ca_key, pki, policy_name=POLICY, renew_before_days=renew_before_days,
                         renewal=renewal, **kwargs)

    provisioned = ensure_fleet(client, spec(renew_before_days=10, certificate_days=20))
    assert provisioned["failed_devices"] == [] and provisioned["renewal_due_devices"] == []
    counter.reset()
    return client, counter, spec, pki, {d["thing_name"]: d["certificate_id"] for d in provisioned["devices"]}


def live_id(pki, thing):
    return _x509.certificate_id(_x509.load_certificate(path=os.path.join(pki, "devices", thing, "certificate.pem")))


def test_a_due_certificate_stays_live_and_is_reported_due(fleet, boto3_iot):
    client, counter, spec, pki, old = fleet
    for check_mode in (True, False, False, True):
        counter.reset()
        result = ensure_fleet(client, spec(), check_mode=check_mode)
        assert not result["changed"] and result["failed_devices"] == []
        assert result["renewal_due_devices"] == ["pi0.lan", "pi1.lan"]
        assert counter.snapshot()["writes"] == 0
        for device in result["devices"]:
            assert device["renewal_due"] and device["certificate_id"] == old[device["thing_name"]]
            assert datetime.datetime.fromisoformat(device["expires"]) > datetime.datetime.now(datetime.timezone.utc)
    for thing, cert_id in old.items():
        assert principals(boto3_iot, thing) == {cert_id: "ACTIVE"} and live_id(pki, thing) == cert_id
    # not due within 10 days: nothing reported
    assert ensure_fleet(client, spec(renew_before_days=10))["renewal_due_devices"] == []


def test_replace_still_renews_in_the_same_run(fleet, boto3_iot):
    """renewal=replace (the module's default): a new certificate at once, the old one retired."""
    client, _counter, spec, pki, old = fleet
    result = ensure_fleet(client, spec(renewal="replace"))
    assert result["changed"] and result["renewal_due_devices"] == []
    for device in result["devices"]:
        thing = device["thing_name"]
        assert device["superseded_certificates"] == [old[thing]]
        assert principals(boto3_iot, thing) == {device["certificate_id"]: "ACTIVE"}


def test_a_rotation_stopped_midway_keeps_both_identities_active_until_it_finishes(fleet, boto3_iot):
    """pi0's rotation stops after the stage (unreachable for the push, or its round trip failed): its
    old certificate stays ACTIVE and attached beside the staged one, through registration reruns,
    which keep reporting it due; pi1 finishes. The next stage and promote finish pi0."""
    client, _counter, spec, pki, old = fleet
    due = ensure_fleet(client, spec())["renewal_due_devices"]
    rotation = spec()
    rotation.devices = [d for d in rotation.devices if d["host"] in due]
    staged = rotate_fleet(client, rotation, "stage", rotate_all=True)
    new = {d["thing_name"]: d["certificate_id"] for d in staged["devices"]}
    only_pi1 = spec()
    only_pi1.devices = [d for d in only_pi1.devices if d["host"] == "pi1.lan"]
    assert rotate_fleet(client, only_pi1, "promote")["promoted_devices"] == ["pi1.lan"]

    for _rerun in range(2):
        again = ensure_fleet(client, spec())
        assert not again["changed"] and again["renewal_due_devices"] == ["pi0.lan"], again
        assert principals(boto3_iot, "pi-0") == {old["pi-0"]: "ACTIVE", new["pi-0"]: "ACTIVE"}
        assert live_id(pki, "pi-0") == old["pi-0"]
        assert principals(boto3_iot, "pi-1") == {new["pi-1"]: "ACTIVE"} and live_id(pki, "pi-1") == new["pi-1"]

    # the rerun of the rotation reuses the staged identity and finishes pi0
    only_pi0 = spec()
    only_pi0.devices = [d for d in only_pi0.devices if d["host"] == "pi0.lan"]
    restaged = rotate_fleet(client, only_pi0, "stage", rotate_all=True)
    assert restaged["devices"][0]["certificate_id"] == new["pi-0"] and not restaged["changed"]
    assert rotate_fleet(client, only_pi0, "promote")["promoted_devices"] == ["pi0.lan"]
    assert principals(boto3_iot, "pi-0") == {new["pi-0"]: "ACTIVE"}
    final = ensure_fleet(client, spec())
    assert not final["changed"] and final["renewal_due_devices"] == []


def test_a_dead_certificate_is_replaced_at_once(fleet, boto3_iot, fleet_ca):
    """Expired (it no longer connects) or REVOKED: the old identity is dead, so registration gives the
    device a new one directly and retires the old one, renewal rotate or not."""
    client, _counter, spec, pki, old = fleet
    ca_cert, ca_key = fleet_ca
    key = _x509.load_private_key(path=os.path.join(pki, "devices", "pi-0", "private.key"))
    now = datetime.datetime.now(datetime.timezone.utc)
    live = _x509.load_certificate(path=os.path.join(pki, "devices", "pi-0", "certificate.pem"))
    expired = (x509.CertificateBuilder().subject_name(live.subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now - datetime.timedelta(minutes=5))
               .sign(ca_key, hashes.SHA256()))
    assert _x509.not_valid_after(expired) < now
    with open(os.path.join(pki, "devices", "pi-0", "certificate.pem"), "w", encoding="ascii") as f:
        f.write(_x509.certificate_pem(expired))
    boto3_iot.update_certificate(certificateId=old["pi-1"], newStatus="REVOKED")

    result = ensure_fleet(client, spec())
    by_thing = {d["thing_name"]: d for d in result["devices"]}
    assert result["failed_devices"] == [] and result["renewal_due_devices"] == []
    assert "certificate" in by_thing["pi-0"]["changes"] and not by_thing["pi-0"].get("renewal_due")
    assert by_thing["pi-1"]["superseded_certificates"] == [old["pi-1"]]
    for thing, device in by_thing.items():
        assert principals(boto3_iot, thing) == {device["certificate_id"]: "ACTIVE"}
        assert live_id(pki, thing) == device["certificate_id"] != old[thing]


def test_renewal_refuses_an_unknown_mode():
    with pytest.raises(IoTFleetError, match="renewal must be one of replace, rotate"):
        FleetSpec([], None, None, "/nonexistent", renewal="later")


@pytest.mark.parametrize("retire", ["delete", "revoke"])
def test_a_recovery_also_retires_a_pending_renewal(fleet, boto3_iot, retire):
    """pi0's renewal was staged (its next certificate ACTIVE and attached), then its live certificate is
    REVOKED: the recovery gives it a new identity and retires both others, and the staged files go
    (key destroyed), so no later rotation registers the retired certificate again or stops on it."""
    client, _counter, spec, pki, old = fleet
    only_pi0 = spec(retire_certificates=retire)
    only_pi0.devices = [d for d in only_pi0.devices if d["host"] == "pi0.lan"]
    staged = rotate_fleet(client, only_pi0, "stage", rotate_all=True)["devices"][0]["certificate_id"]
    boto3_iot.update_certificate(certificateId=old["pi-0"], newStatus="REVOKED")

    result = ensure_fleet(client, only_pi0)
    device = result["devices"][0]
    assert result["failed_devices"] == [] and "archived the staged identity" in device["changes"]
    assert sorted(device["superseded_certificates"]) == sorted([old["pi-0"], staged])
    assert not os.path.exists(os.path.join(pki, "staged", "devices", "pi-0"))
    archived = [d for d in os.listdir(os.path.join(pki, "retired")) if d.startswith("pi-0-staged-")]
    assert len(archived) == 1
    assert sorted(os.listdir(os.path.join(pki, "retired", archived[0]))) == ["certificate.pem"]
    assert principals(boto3_iot, "pi-0") == {device["certificate_id"]: "ACTIVE"}

    # the new certificate is not due: a rotation stages nothing and revives nothing
    restage = rotate_fleet(client, spec(retire_certificates=retire, renew_before_days=10), "stage")
    assert restage["failed_devices"] == [] and restage["staged_devices"] == []
    assert principals(boto3_iot, "pi-0") == {device["certificate_id"]: "ACTIVE"}
    assert not ensure_fleet(client, only_pi0)["changed"]


def test_decommission_retires_a_staged_identity_too(fleet, boto3_iot):
    """A device decommissioned with a rotation staged: both certificates retired, both keys destroyed."""
    client, _counter, spec, pki, old = fleet
    only_pi0 = spec()
    only_pi0.devices = [d for d in only_pi0.devices if d["host"] == "pi0.lan"]
    staged = rotate_fleet(client, only_pi0, "stage", rotate_all=True)["devices"][0]["certificate_id"]
    for check_mode in (True, False, False):
        device = retire_fleet(client, only_pi0, check_mode=check_mode)["devices"][0]
        if check_mode:
            assert device["changed"] and device["staged_archived_to"] == "(check mode)"
            assert os.path.isdir(os.path.join(pki, "staged", "devices", "pi-0"))
    assert not device["changed"] and not device.get("staged_archived_to")
    assert not os.path.exists(os.path.join(pki, "staged", "devices", "pi-0"))
    keys = [f for _d, _s, files in os.walk(os.path.join(pki, "retired")) for f in files if f.endswith(".key")]
    assert keys == []
    for cert_id in (old["pi-0"], staged):
        with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
            boto3_iot.describe_certificate(certificateId=cert_id)


def test_a_recovery_retires_a_staged_certificate_its_stage_left_unattached(fleet, boto3_iot):
    """A stage that stopped after registering the next certificate but before attaching it to the thing:
    the recovery of a REVOKED live identity retires that certificate too (it is none of the thing's
    principals), so no ACTIVE certificate is left with its key destroyed."""
    client, _counter, spec, pki, old = fleet
    only_pi0 = spec()
    only_pi0.devices = [d for d in only_pi0.devices if d["host"] == "pi0.lan"]
    staged = rotate_fleet(client, only_pi0, "stage", rotate_all=True)["devices"][0]
    boto3_iot.detach_thing_principal(thingName="pi-0", principal=staged["certificate_arn"])
    boto3_iot.update_certificate(certificateId=old["pi-0"], newStatus="REVOKED")

    device = ensure_fleet(client, only_pi0)["devices"][0]
    assert sorted(device["superseded_certificates"]) == sorted([old["pi-0"], staged["certificate_id"]])
    with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
        boto3_iot.describe_certificate(certificateId=staged["certificate_id"])
    assert principals(boto3_iot, "pi-0") == {device["certificate_id"]: "ACTIVE"}
    assert not ensure_fleet(client, only_pi0)["changed"]
