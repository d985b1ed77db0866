# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key mode controller, the controller keeps no device key (issue 19): once a Pi verified with its identity
the device role's ``forget_key`` deletes ``pki/devices/<thing>/private.key``; the certificate stays cached.

The registration then converges from what the Pi proves (its installed certificate, its key matched on the
Pi): no change, no write, no key made. A Pi that lost its key (it proves nothing) gets a new identity, the
old certificate retired. A Pi the run did not reach (``reached`` false: registered offline, ``--tags cloud``)
keeps the identity the cache names. Against the stand-in over HTTP.
"""

import os

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.recorders import is_write_operation
from support.unit import POLICY, principals


def _spec(account, devices, **kwargs):
    return FleetSpec(validate_devices(devices, registration=kwargs.get("registration", "api")), account.ca_cert,
                     account.ca_key, account.pki, policy_name=POLICY, **kwargs)


def _forget_keys(account, n):
    """What forget_key does after each Pi verified: the key goes, the certificate (public) stays."""
    pems = {}
    for i in range(n):
        directory = os.path.join(account.pki, "devices", f"pi-{i}")
        os.remove(os.path.join(directory, "private.key"))
        with open(os.path.join(directory, "certificate.pem")) as f:
            pems[f"pi-{i}"] = f.read()
    return pems


def _writes(counter):
    return {op: c for op, c in counter.snapshot()["calls"].items() if is_write_operation(op)}


def _files(account, thing):
    return sorted(os.listdir(os.path.join(account.pki, "devices", thing)))


def test_a_pi_that_proves_its_installed_identity_converges_with_no_key_on_the_controller(fleet_account):
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, [dict(thing_name="pi-0")]), workers=1)
    assert first["devices"][0]["key_on_controller"] is True
    installed = _forget_keys(account, 1)
    devices = [dict(thing_name="pi-0", installed_certificate=installed["pi-0"])]
    account.counter.reset()
    for check_mode in (True, False):
        result = ensure_fleet(account.client, _spec(account, devices), workers=1, check_mode=check_mode)
        device = result["devices"][0]
        assert not result["changed"] and not device["failed"], device
        assert device["certificate_id"] == first["devices"][0]["certificate_id"]
        # nothing to push: the device role sends no key when the controller holds none
        assert device["key_on_controller"] is False
        assert _files(account, "pi-0") == ["certificate.pem"]
    assert _writes(account.counter) == {}


def test_a_pi_that_lost_its_key_gets_a_new_identity_and_the_old_one_is_retired(fleet_account, boto3_iot):
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, [dict(thing_name="pi-0")]), workers=1)
    old_id = first["devices"][0]["certificate_id"]
    _forget_keys(account, 1)
    # the Pi's raw check found no certificate whose key it holds: no installed_certificate
    result = ensure_fleet(account.client, _spec(account, [dict(thing_name="pi-0")]), workers=1)
    device = result["devices"][0]
    assert result["changed"] and not device["failed"], device
    assert {"key", "certificate"} <= set(device["changes"]) and device["superseded_certificates"] == [old_id]
    assert device["key_on_controller"] is True   # pushed in this run; forgotten once the Pi verified with it
    assert principals(boto3_iot, "pi-0") == {device["certificate_id"]: "ACTIVE"}
    assert old_id not in [c["certificateId"] for c in boto3_iot.list_certificates()["certificates"]]
    key_path = os.path.join(account.pki, "devices", "pi-0", "private.key")
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(key_path)).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("registration", ["api", "jitp"])
def test_a_pi_the_run_did_not_reach_keeps_the_identity_the_cache_names(fleet_account, boto3_iot, registration):
    """Registered offline or --tags cloud: the Pi showed nothing, and nothing says it lost its key - its
    identity stays (without ``reached: false`` it would get a new key and its live certificate retired)."""
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, [dict(thing_name="pi-0"), dict(thing_name="pi-1")],
                                               registration=registration), workers=1)
    live = {d["thing_name"]: d["certificate_id"] for d in first["devices"]}
    _forget_keys(account, 1)   # pi-0 verified; pi-1 never did (its key stays)
    devices = [dict(thing_name="pi-0", reached=False), dict(thing_name="pi-1", reached=False),
               dict(thing_name="pi-2", reached=False)]
    account.counter.reset()
    checked = ensure_fleet(account.client, _spec(account, devices, registration=registration), workers=1,
                           check_mode=True)
    by_thing = {d["thing_name"]: d for d in checked["devices"]}
    assert not by_thing["pi-0"]["changed"] and not by_thing["pi-1"]["changed"], checked["devices"]
    assert by_thing["pi-2"]["changed"]   # a new Pi registered offline gets its identity, as before
    result = ensure_fleet(account.client, _spec(account, devices, registration=registration), workers=1)
    by_thing = {d["thing_name"]: d for d in result["devices"]}
    for thing in ("pi-0", "pi-1"):
        assert not by_thing[thing]["changed"] and by_thing[thing]["certificate_id"] == live[thing], by_thing[thing]
    assert by_thing["pi-0"]["key_on_controller"] is False and _files(account, "pi-0") == ["certificate.pem"]
    assert by_thing["pi-1"]["key_on_controller"] is True
    assert by_thing["pi-2"]["changed"] and by_thing["pi-2"]["key_on_controller"] is True
    if registration == "api":
        assert set(_writes(account.counter)) <= {"CreateThing", "RegisterCertificate", "RegisterCertificateWithoutCA",
                                                 "AttachPolicy", "AttachThingPrincipal", "AddThingToThingGroup",
                                                 "CreateThingGroup", "UpdateCertificate"}
        for thing in ("pi-0", "pi-1"):
            assert principals(boto3_iot, thing) == {live[thing]: "ACTIVE"}


def test_only_a_device_the_run_did_not_reach_carries_the_flag():
    """A device entry that says nothing was reached (the default): without a key and an installed certificate it
    is a Pi that lost its key."""
    devices = validate_devices([dict(thing_name="pi-0"), dict(thing_name="pi-1", reached=False),
                                dict(thing_name="pi-2", reached=True)])
    assert "reached" not in devices[0] and devices[1]["reached"] is False and "reached" not in devices[2]


def test_rotation_stages_and_promotes_when_the_live_key_was_forgotten(fleet_account, boto3_iot):
    """The staged key is kept until its promotion (the role forgets the new live key after that); staging reads
    only the live certificate, so a forgotten live key changes nothing."""
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, [dict(thing_name="pi-0")]), workers=1)
    _forget_keys(account, 1)
    spec = _spec(account, [dict(thing_name="pi-0", host="pi-0")])
    staged = rotate_fleet(account.client, spec, "stage", rotate_all=True, workers=1)
    assert staged["staged_devices"] == ["pi-0"], staged
    staged_dir = os.path.join(account.pki, "staged", "devices", "pi-0")
    assert sorted(os.listdir(staged_dir)) == ["certificate.pem", "private.key"]
    assert os.stat(os.path.join(staged_dir, "private.key")).st_mode & 0o777 == 0o600
    promoted = rotate_fleet(account.client, spec, "promote", workers=1)
    assert promoted["promoted_devices"] == ["pi-0"], promoted
    assert promoted["devices"][0]["retired_certificates"] == [first["devices"][0]["certificate_id"]]
    assert _files(account, "pi-0") == ["certificate.pem", "private.key"]
    assert not os.path.exists(staged_dir)
    retired = os.listdir(os.path.join(account.pki, "retired"))
    assert len(retired) == 1 and os.listdir(os.path.join(account.pki, "retired", retired[0])) == ["certificate.pem"]
