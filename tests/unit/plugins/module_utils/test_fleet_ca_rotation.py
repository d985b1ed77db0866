# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation of the fleet CA itself, against the stand-in's control plane over HTTP.

Two devices provisioned under the old CA (``pki/ca/``); the next CA (``pki/ca/next/``) registered
beside it. Stage with the next CA counts every device of the old CA due (whatever its age), promote,
then ``switch_fleet_ca``: waiting while an ACTIVE certificate hangs under the old CA, then the old CA
INACTIVE and deleted, archived with its key destroyed, the next CA in its place; each interrupted
state of the switch is finished by a rerun.
"""

import os

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import live_certificate_ids
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import next_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import switch_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.iotcore import register_ca_certificate
from support.recorders import ApiCallCounter

POLICY = "fleet-device"


def _write(path, data, mode):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, mode)


@pytest.fixture
def ca_fleet(boto3_iot, tmp_path):
    """The old CA in pki/ca with two devices under it (3650-day certificates: not due by age), the
    next CA in pki/ca/next/ registered ACTIVE beside it."""
    pki = str(tmp_path / "pki")
    paths = dict(cert=os.path.join(pki, "ca", "fleet-ca.pem"), key=os.path.join(pki, "ca", "fleet-ca.key"),
                 next_cert=os.path.join(pki, "ca", "next", "fleet-ca.pem"),
                 next_key=os.path.join(pki, "ca", "next", "fleet-ca.key"))
    cas = {}
    for name, prefix in (("old", ""), ("next", "next_")):
        cert, key = _x509.create_ca("iotfleet fleet CA")
        _write(paths[prefix + "cert"], _x509.certificate_pem(cert), 0o644)
        _write(paths[prefix + "key"], _x509.private_key_pem(key), 0o600)
        register_ca_certificate(boto3_iot, cert, key)
        cas[name] = (cert, key, _x509.certificate_id(cert))
    boto3_iot.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=6, delay=0.01, max_delay=0.05))
    devices = validate_devices([dict(thing_name=f"pi-{i}", host=f"pi{i}.lan") for i in range(2)])

    def spec(ca="next", **kwargs):
        cert, key, _id = cas[ca]
        return FleetSpec([dict(d) for d in devices], cert, key, pki, policy_name=POLICY, renew_before_days=30,
                         **kwargs)

    assert ensure_fleet(client, spec("old"))["failed_devices"] == []

    def switch(**kwargs):
        return switch_fleet_ca(client, paths["cert"], paths["key"], paths["next_cert"], paths["next_key"], **kwargs)

    return client, spec, switch, pki, paths, cas


def under(boto3_iot, ca_id):
    return {c["certificateId"]: c["status"]
            for c in boto3_iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]}


def listed_cas(boto3_iot):
    return {c["certificateId"]: c["status"] for c in boto3_iot.list_ca_certificates()["certificates"]}


def files(pki):
    return {os.path.relpath(os.path.join(d, f), pki): open(os.path.join(d, f)).read()
            for d, _dirs, names in os.walk(pki) for f in names}


def test_ca_rotation_end_to_end_then_reruns_change_nothing(ca_fleet, boto3_iot):
    client, spec, switch, pki, paths, cas = ca_fleet
    old_id, new_id = cas["old"][2], cas["next"][2]
    counter = ApiCallCounter().attach(boto3_iot)

    # nothing due by age: without the next CA, stage selects nobody; with it, every device
    assert rotate_fleet(client, spec("old"), "stage")["due_devices"] == []
    staged = rotate_fleet(client, spec(), "stage")
    assert staged["due_devices"] == ["pi0.lan", "pi1.lan"] and all(d["other_ca"] for d in staged["devices"])
    new_ids = {d["certificate_id"] for d in staged["devices"]}
    assert set(under(boto3_iot, new_id)) == new_ids   # the staged certificates hang under the next CA

    # before promotion: both old certificates are ACTIVE under the old CA - the switch waits
    before = files(pki)
    waiting = switch()
    assert waiting["state"] == "waiting" and waiting["active_certificates"] == 2 and not waiting["changed"]
    assert listed_cas(boto3_iot)[old_id] == "ACTIVE" and files(pki) == before
    # check mode counts the certificates this run's promote step would retire as gone
    pending = live_certificate_ids(pki, spec().devices)
    counter.reset()
    predicted = switch(pending=pending, check_mode=True)
    assert predicted["state"] == "switched" and predicted["changed"]
    assert counter.snapshot()["writes"] == 0 and files(pki) == before

    assert rotate_fleet(client, spec(), "promote")["promoted_devices"] == ["pi0.lan", "pi1.lan"]
    assert set(under(boto3_iot, old_id)) == set()   # deleted (retire_certificates=delete)

    counter.reset()
    promoted = files(pki)
    predicted = switch(check_mode=True)
    assert predicted["changed"] and counter.snapshot()["writes"] == 0 and files(pki) == promoted
    switched = switch()
    assert switched["state"] == "switched" and switched["changed"]
    assert switched["old_ca_certificate_id"] == old_id and switched["ca_certificate_id"] == new_id
    assert set(listed_cas(boto3_iot)) == {new_id}   # the old CA is gone from ListCACertificates
    # the next CA is the fleet CA; the old one archived, its key destroyed
    assert _x509.certificate_id(_x509.load_certificate(path=paths["cert"])) == new_id
    assert _x509.key_matches_certificate(_x509.load_private_key(path=paths["key"]), cas["next"][0])
    assert os.stat(paths["key"]).st_mode & 0o777 == 0o600
    assert not os.path.exists(os.path.dirname(paths["next_cert"]))
    archive = os.path.join(pki, "ca", "retired", old_id)
    assert switched["archived_to"] == archive and os.listdir(archive) == ["fleet-ca.pem"]
    assert os.stat(archive).st_mode & 0o777 == 0o700

    # reruns (check and real): nothing in progress, nothing due, provisioning keeps every identity
    for check_mode in (True, False):
        counter.reset()
        assert switch(check_mode=check_mode)["state"] == "none"
        again = rotate_fleet(client, spec("next"), "stage", check_mode=check_mode)
        assert not again["changed"] and again["due_devices"] == []
        assert not ensure_fleet(client, spec("next"), check_mode=check_mode)["changed"]
        assert counter.snapshot()["writes"] == 0
    assert set(under(boto3_iot, new_id)) == new_ids


def test_an_unrotated_device_keeps_the_old_ca(ca_fleet, boto3_iot):
    client, spec, switch, pki, paths, cas = ca_fleet
    old_id = cas["old"][2]
    one = spec()
    one.devices = one.devices[:1]
    rotate_fleet(client, one, "stage")
    rotate_fleet(client, one, "promote")
    waiting = switch()
    left = live_certificate_ids(pki, spec().devices[1:])
    assert waiting["state"] == "waiting" and waiting["active_certificates"] == 1
    assert set(waiting["active_certificate_ids"]) == left and "1 ACTIVE" in waiting["msg"]
    assert listed_cas(boto3_iot)[old_id] == "ACTIVE" and os.path.exists(paths["key"])
    # the stand-in refuses what AWS refuses: an ACTIVE CA is not deleted
    with pytest.raises(boto3_iot.exceptions.CertificateStateException):
        boto3_iot.delete_ca_certificate(certificateId=old_id)
    # the other Pi rotated on a later run: the switch goes through
    rotate_fleet(client, spec(), "stage")
    rotate_fleet(client, spec(), "promote")
    assert switch()["state"] == "switched" and old_id not in listed_cas(boto3_iot)


def test_an_operator_quarantine_does_not_hold_the_old_ca(ca_fleet, boto3_iot):
    """Only ACTIVE certificates keep the old CA; an INACTIVE one (quarantine) or a REVOKED one does not."""
    client, spec, switch, pki, _paths, cas = ca_fleet
    one = spec()
    one.devices = one.devices[:1]
    rotate_fleet(client, one, "stage")
    rotate_fleet(client, one, "promote")
    (held,) = live_certificate_ids(pki, spec().devices[1:])
    boto3_iot.update_certificate(certificateId=held, newStatus="INACTIVE")
    assert switch()["state"] == "switched"
    assert cas["old"][2] not in listed_cas(boto3_iot)


def _rotated(ca_fleet):
    client, spec, _switch, _pki, _paths, _cas = ca_fleet
    rotate_fleet(client, spec(), "stage")
    rotate_fleet(client, spec(), "promote")


def test_a_switch_stopped_after_the_cloud_step_is_finished_by_a_rerun(ca_fleet, boto3_iot):
    client, _spec, switch, pki, paths, cas = ca_fleet
    _rotated(ca_fleet)
    old_id, new_id = cas["old"][2], cas["next"][2]
    boto3_iot.update_ca_certificate(certificateId=old_id, newStatus="INACTIVE")
    boto3_iot.delete_ca_certificate(certificateId=old_id)
    finished = switch()
    assert finished["state"] == "switched"
    assert _x509.certificate_id(_x509.load_certificate(path=paths["cert"])) == new_id
    assert os.listdir(os.path.join(pki, "ca", "retired", old_id)) == ["fleet-ca.pem"]


@pytest.mark.parametrize("stop_after", ["old key destroyed", "certificate moved", "key moved"])
def test_each_interrupted_file_step_is_finished_by_a_rerun(ca_fleet, boto3_iot, stop_after):
    """The file steps after the cloud step, stopped after each: never two CAs in pki/ca/, never a lost key."""
    _client, _spec, switch, pki, paths, cas = ca_fleet
    _rotated(ca_fleet)
    old_id, new_id = cas["old"][2], cas["next"][2]
    boto3_iot.update_ca_certificate(certificateId=old_id, newStatus="INACTIVE")
    boto3_iot.delete_ca_certificate(certificateId=old_id)
    archive = os.path.join(pki, "ca", "retired", old_id)
    os.makedirs(archive, mode=0o700)
    with open(os.path.join(archive, "fleet-ca.pem"), "w") as f:
        f.write(_x509.certificate_pem(cas["old"][0]))
    os.remove(paths["key"])
    if stop_after in ("certificate moved", "key moved"):
        os.rename(paths["next_cert"], paths["cert"])
    if stop_after == "key moved":
        os.rename(paths["next_key"], paths["key"])
    finished = switch()
    assert finished["state"] == "switched" and finished["changed"]
    assert _x509.certificate_id(_x509.load_certificate(path=paths["cert"])) == new_id
    assert _x509.key_matches_certificate(_x509.load_private_key(path=paths["key"]), cas["next"][0])
    assert not os.path.exists(os.path.dirname(paths["next_cert"]))
    assert switch()["state"] == "none"


def test_a_next_ca_still_being_made_is_left_alone(ca_fleet):
    """next/ with a key but no certificate yet (the ca role stopped between them): the live CA and
    both keys stay; the ca role finishes making it."""
    _client, _spec, switch, pki, paths, cas = ca_fleet
    os.remove(paths["next_cert"])
    before = files(pki)
    result = switch()
    assert result["state"] == "creating" and not result["changed"] and files(pki) == before


def test_an_unregistered_next_ca_is_refused_before_anything_is_retired(ca_fleet, boto3_iot):
    _client, _spec, switch, pki, _paths, cas = ca_fleet
    boto3_iot.update_ca_certificate(certificateId=cas["next"][2], newStatus="INACTIVE")
    before = files(pki)
    with pytest.raises(IoTFleetError, match="not registered ACTIVE"):
        switch()
    assert files(pki) == before and listed_cas(boto3_iot)[cas["old"][2]] == "ACTIVE"


def test_provisioning_during_a_ca_rotation(ca_fleet, boto3_iot):
    """provision.yml while pki/ca/next/ exists: a Pi rotated already keeps its certificate of the next CA,
    a new Pi is signed by the live CA (the next rotate run moves it), nothing else changes."""
    client, spec, _switch, pki, paths, cas = ca_fleet
    one = spec()
    one.devices = one.devices[:1]
    rotate_fleet(client, one, "stage")
    rotate_fleet(client, one, "promote")
    held = live_certificate_ids(pki, spec().devices)
    accepted = next_fleet_ca(paths["cert"], paths["key"])
    assert [_x509.certificate_id(c) for c in accepted] == [cas["next"][2]]
    provision = spec("old", accepted_cas=accepted)
    assert not ensure_fleet(client, provision, check_mode=True)["changed"]
    assert not ensure_fleet(client, provision)["changed"]
    assert live_certificate_ids(pki, spec().devices) == held
    # without the next CA accepted the rotated Pi would be issued a certificate of the old CA again
    assert ensure_fleet(client, spec("old"), check_mode=True)["changed"]
    provision.devices = provision.devices + validate_devices([dict(thing_name="pi-new", host="new.lan")])
    added = ensure_fleet(client, provision)
    assert added["failed_devices"] == [] and added["devices"][2]["certificate_id"] in under(boto3_iot, cas["old"][2])
    # without next/ nothing is accepted
    assert next_fleet_ca(os.path.join(pki, "elsewhere", "fleet-ca.pem"), paths["key"]) == []


def test_an_operators_own_ca_is_switched_in_aws_only_and_its_files_stay(ca_fleet, boto3_iot, tmp_path):
    """ca_create: false - the operator's CA and the next CA they gave (anywhere, here a company directory): the
    switch waits while a certificate hangs under the old CA, then retires the old CA in AWS IoT only; every file
    stays byte for byte where it was (no archive, no rename, no deleted key), and the result names the variables
    to point at the next CA. Registration during the rotation keeps the next CA's certificates."""
    client, spec, _switch, pki, paths, cas = ca_fleet
    old_id, new_id = cas["old"][2], cas["next"][2]
    company = tmp_path / "company-pki"
    company.mkdir()
    given = dict(cert=str(company / "ca-2027.crt"), key=str(company / "ca-2027.key"))
    os.rename(paths["next_cert"], given["cert"])
    os.rename(paths["next_key"], given["key"])
    os.rmdir(os.path.dirname(paths["next_cert"]))

    def switch(**kwargs):
        return switch_fleet_ca(client, paths["cert"], paths["key"], given["cert"], given["key"], keep_ca_files=True,
                               **kwargs)

    def everything():
        return dict(files(pki), **{name: open(path).read() for name, path in given.items()})

    one = spec()
    one.devices = one.devices[:1]
    rotate_fleet(client, one, "stage")
    rotate_fleet(client, one, "promote")
    # provisioning meanwhile: the rotated Pi keeps its certificate of the next CA the operator gave
    accepted = next_fleet_ca(paths["cert"], paths["key"], next_certificate_path=given["cert"])
    assert [_x509.certificate_id(c) for c in accepted] == [new_id]
    assert not ensure_fleet(client, spec("old", accepted_cas=accepted), check_mode=True)["changed"]

    before = everything()
    waiting = switch()
    assert waiting["state"] == "waiting" and waiting["active_certificates"] == 1 and everything() == before
    rotate_fleet(client, spec(), "stage")
    rotate_fleet(client, spec(), "promote")
    before = everything()
    assert switch(check_mode=True)["changed"] and listed_cas(boto3_iot)[old_id] == "ACTIVE"
    switched = switch()
    assert switched["state"] == "switched" and switched["changed"] and switched["archived_to"] is None
    assert set(listed_cas(boto3_iot)) == {new_id}
    assert everything() == before                       # nothing archived, moved, renamed or deleted
    assert f"ca_certificate_path={given['cert']}" in switched["msg"]
    assert f"ca_private_key_path={given['key']}" in switched["msg"] and "ca_next_certificate_path" in switched["msg"]
    again = switch()
    assert again["state"] == "switched" and not again["changed"] and everything() == before
    # the operator made the next CA the fleet CA and kept the next variables: nothing left to do, nothing touched
    done = switch_fleet_ca(client, given["cert"], given["key"], given["cert"], given["key"], keep_ca_files=True)
    assert done["state"] == "none" and not done["changed"] and "rotation is over" in done["msg"]
    # no next CA given (its file is gone): nothing in progress
    assert switch_fleet_ca(client, paths["cert"], paths["key"], str(company / "none.crt"), str(company / "none.key"),
                           keep_ca_files=True)["state"] == "none"
    assert next_fleet_ca(paths["cert"], paths["key"], next_certificate_path=str(company / "none.crt")) == []
