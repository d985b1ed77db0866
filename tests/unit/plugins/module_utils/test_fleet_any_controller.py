# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Any controller converges the same fleet: AWS is the source of truth, pki/ a cache (issue 19).

A second controller holds no pki/ at all (a second admin, a CI runner, an AWX job): it finds the fleet
CA in AWS by its name, takes each device's certificate that AWS holds registered and that the device
proved it holds the key of (the key never travels), writes nothing to AWS, and without the CA key fails
only the devices that need a new certificate, by name. Against the stand-in over HTTP.
"""

import os

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import ca_certificate_info
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import is_fleet_ca_name
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.unit import POLICY, principals
from support.iotcore import register_ca_certificate
from support.recorders import is_write_operation


def _devices(n, installed=None):
    return validate_devices([dict(thing_name=f"pi-{i}", attributes=dict(room=str(i)),
                                  installed_certificate=(installed or {}).get(f"pi-{i}")) for i in range(n)])


def _spec(account, devices, pki, ca_key="same", **kwargs):
    key = account.ca_key if ca_key == "same" else ca_key
    return FleetSpec(devices, account.ca_cert, key, pki, policy_name=POLICY,
                     ca_key_path=os.path.join(pki, "ca", "fleet-ca.key"), **kwargs)


def _installed(first_pki, n):
    """What each Pi reports installed: the certificate the first controller gave it (its key is on the Pi)."""
    out = {}
    for i in range(n):
        with open(os.path.join(first_pki, "devices", f"pi-{i}", "certificate.pem")) as f:
            out[f"pi-{i}"] = f.read()
    return out


def _writes(counter):
    return {op: c for op, c in counter.snapshot()["calls"].items() if is_write_operation(op)}


@pytest.mark.parametrize("ca_key", ["same", None], ids=["with-ca-key", "without-ca-key"])
def test_a_second_controller_converges_the_fleet_with_no_write(fleet_account, boto3_iot, tmp_path, ca_key):
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, _devices(3), account.pki), workers=2)
    assert first["failed_devices"] == []
    live = {d["thing_name"]: d["certificate_id"] for d in first["devices"]}

    second_pki = str(tmp_path / "second" / "pki")
    account.counter.reset()
    result = ensure_fleet(account.client, _spec(account, _devices(3, _installed(account.pki, 3)), second_pki,
                                                ca_key=ca_key), workers=2)
    assert result["failed_devices"] == [] and not result["changed"], [d["changes"] for d in result["devices"]]
    assert _writes(account.counter) == {}
    for device in result["devices"]:
        assert device["certificate_id"] == live[device["thing_name"]]
        assert device["key_on_controller"] is False
        directory = os.path.join(second_pki, "devices", device["thing_name"])
        # the certificate is cached (public); no key was made or copied on this controller
        assert os.listdir(directory) == ["certificate.pem"]
        assert principals(boto3_iot, device["thing_name"]) == {live[device["thing_name"]]: "ACTIVE"}
    # a rerun from the cache is the same
    again = ensure_fleet(account.client, _spec(account, _devices(3, _installed(account.pki, 3)), second_pki,
                                               ca_key=ca_key), workers=2)
    assert not again["changed"] and again["failed_devices"] == []


def test_without_the_ca_key_only_the_devices_that_need_signing_fail_by_name(fleet_account, boto3_iot, tmp_path):
    account = fleet_account
    ensure_fleet(account.client, _spec(account, _devices(2), account.pki), workers=2)
    installed = _installed(account.pki, 2)
    # pi-1's Pi lost its identity (nothing installed); pi-2 is new
    installed.pop("pi-1")
    devices = validate_devices([dict(thing_name=f"pi-{i}", installed_certificate=installed.get(f"pi-{i}"))
                                for i in range(3)])
    second_pki = str(tmp_path / "second" / "pki")
    account.counter.reset()
    result = ensure_fleet(account.client, _spec(account, devices, second_pki, ca_key=None), workers=2)
    assert sorted(result["failed_devices"]) == ["pi-1", "pi-2"]
    by_host = {d["host"]: d for d in result["devices"]}
    assert not by_host["pi-0"]["failed"] and not by_host["pi-0"]["changed"]
    for host in ("pi-1", "pi-2"):
        assert host in by_host[host]["msg"] and "fleet CA's private key is not on this controller" in by_host[host]["msg"]
        assert os.path.join(second_pki, "ca", "fleet-ca.key") in by_host[host]["msg"]
        # nothing written for it, here or in AWS
        assert not os.path.exists(os.path.join(second_pki, "devices", host, "private.key"))
    assert _writes(account.counter) == {}
    assert boto3_iot.list_things()["things"] and "pi-2" not in [t["thingName"] for t in boto3_iot.list_things()["things"]]


def test_an_installed_certificate_aws_does_not_hold_is_not_taken(fleet_account, boto3_iot, tmp_path):
    """A certificate of the fleet CA on the Pi that AWS no longer holds (deleted: decommissioned, retired) is
    never registered again from the Pi: the device gets a new identity."""
    account = fleet_account
    ensure_fleet(account.client, _spec(account, _devices(1), account.pki), workers=1)
    installed = _installed(account.pki, 1)
    stale_key = _x509.generate_private_key("ec")
    stale = _x509.issue_certificate(account.ca_cert, account.ca_key, "pi-0", stale_key.public_key())
    installed["pi-0"] = _x509.certificate_pem(stale)
    second_pki = str(tmp_path / "second" / "pki")
    result = ensure_fleet(account.client, _spec(account, _devices(1, installed), second_pki), workers=1)
    device = result["devices"][0]
    assert not device["failed"] and "certificate" in device["changes"]
    assert device["certificate_id"] != _x509.certificate_id(stale)
    assert device["key_on_controller"] is True
    # one live identity: the first controller's certificate was retired with the new one's arrival
    assert principals(boto3_iot, "pi-0") == {device["certificate_id"]: "ACTIVE"}


def test_an_operators_quarantine_is_kept_by_a_second_controller(fleet_account, boto3_iot, tmp_path):
    account = fleet_account
    first = ensure_fleet(account.client, _spec(account, _devices(1), account.pki), workers=1)
    boto3_iot.update_certificate(certificateId=first["devices"][0]["certificate_id"], newStatus="INACTIVE")
    second_pki = str(tmp_path / "second" / "pki")
    result = ensure_fleet(account.client, _spec(account, _devices(1, _installed(account.pki, 1)), second_pki),
                          workers=1)
    device = result["devices"][0]
    assert device.get("quarantined") and not device["changed"]
    described = boto3_iot.describe_certificate(certificateId=device["certificate_id"])["certificateDescription"]
    assert described["status"] == "INACTIVE"


def test_the_fleet_ca_is_found_in_aws_by_its_name(boto3_iot, iot_client):
    fleet, fleet_key = _x509.create_ca("iotfleet fleet CA")
    other, other_key = _x509.create_ca("someone else's CA")
    register_ca_certificate(boto3_iot, fleet, fleet_key)
    register_ca_certificate(boto3_iot, other, other_key)
    found = ca_certificate_info(iot_client, common_name="iotfleet fleet CA", statuses=["ACTIVE"])["ca_certificates"]
    assert [c["certificate_id"] for c in found] == [_x509.certificate_id(fleet)]
    assert found[0]["certificate_pem"] == _x509.certificate_pem(fleet)
    assert found[0]["common_name"] == "iotfleet fleet CA" and found[0]["status"] == "ACTIVE"
    assert len(ca_certificate_info(iot_client)["ca_certificates"]) == 2
    assert ca_certificate_info(iot_client, common_name="iotfleet fleet CA", statuses=["INACTIVE"])["ca_certificates"] == []


def test_fleet_ca_names():
    assert is_fleet_ca_name("iotfleet fleet CA", "iotfleet fleet CA")
    assert is_fleet_ca_name("iotfleet fleet CA 2026-12-07T21:00:00Z", "iotfleet fleet CA")
    assert not is_fleet_ca_name("iotfleet fleet CAX", "iotfleet fleet CA")
    assert not is_fleet_ca_name(None, "iotfleet fleet CA")


def test_key_mode_device_a_second_controller_needs_no_csr_for_a_registered_identity(fleet_account, tmp_path):
    """Key mode device: the Pi's key never left it; a second controller (check mode: its CSR is not cached)
    takes the installed certificate the Pi proved is its key's, when AWS holds it - nothing written."""
    account = fleet_account
    key = _x509.generate_private_key("ec")
    csr_dir = os.path.join(account.pki, "devices", "pi-0")
    os.makedirs(csr_dir)
    with open(os.path.join(csr_dir, "device.csr"), "w") as f:
        f.write(_x509.csr_pem(_x509.create_csr(key, "pi-0")))
    first = ensure_fleet(account.client, _spec(account, _devices(1), account.pki, key_mode="device"), workers=1)
    assert first["failed_devices"] == []
    second_pki = str(tmp_path / "second" / "pki")
    account.counter.reset()
    spec = _spec(account, _devices(1, _installed(account.pki, 1)), second_pki, ca_key=None, key_mode="device")
    checked = ensure_fleet(account.client, spec, workers=1, check_mode=True)
    assert not checked["changed"] and checked["devices"][0]["certificate_pem"] == _installed(account.pki, 1)["pi-0"]
    assert not os.path.exists(second_pki)
    result = ensure_fleet(account.client, spec, workers=1)
    assert not result["changed"] and result["failed_devices"] == []
    assert result["devices"][0]["certificate_id"] == first["devices"][0]["certificate_id"]
    assert _writes(account.counter) == {}
