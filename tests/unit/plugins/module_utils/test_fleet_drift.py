# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift of the certificates on the fleet's things and of the account's CAs (issue 19), against the stand-in.

A second controller without pki/ registered a second fleet CA (the same CN) and new certificates for every
Pi, attached to the things and ACTIVE; the original controller's next run kept its own certificates. Drift
names the second controller's certificates (ACTIVE, attached to a thing of the run, not the device's
identity) and its CA (fleet-CA-like, not owned); prune retires them (check mode first), a rerun finds
nothing. Not drift: a rotation's staged certificate, the next CA of a CA rotation in progress, a CA of
another name, the Pis outside the run (--limit, a job slice).
"""

import os

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import effective_retire_mode
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import fleet_ca_base_name
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import fleet_drift
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import is_fleet_ca_name as is_fleet_like_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from ansible_collections.iotfleet.aws.plugins.modules import iot_fleet_drift
from support.iotcore import register_ca_certificate
from support.unit import POLICY
from support.unit import principals

NAMES = [f"pi-{i}" for i in range(3)]


@pytest.fixture
def fleet(fleet_account, boto3_iot):
    """Three Pis provisioned; ``devices(names)`` the run's devices as the registration step names them;
    ``drift(**kw)`` fleet_drift of the whole inventory with those devices."""
    account = fleet_account
    provisioned = ensure_fleet(account.client, FleetSpec(validate_devices([dict(thing_name=n, host=f"{n}.lan")
                                                                          for n in NAMES]),
                                                         account.ca_cert, account.ca_key, account.pki,
                                                         policy_name=POLICY))
    assert provisioned["failed_devices"] == []
    ids = {d["thing_name"]: d["certificate_id"] for d in provisioned["devices"]}
    ca_path = os.path.join(account.pki, "ca", "fleet-ca.pem")
    os.makedirs(os.path.dirname(ca_path))
    with open(ca_path, "w") as f:
        f.write(_x509.certificate_pem(account.ca_cert))

    def devices(names=NAMES):
        return [dict(host=f"{n}.lan", thing_name=n, certificate_id=ids[n]) for n in names]

    def drift(names=NAMES, retire="delete", inventory=NAMES, **kwargs):
        spec = FleetSpec(devices(names), account.ca_cert, None, account.pki, retire_certificates=retire)
        return fleet_drift(account.client, spec, inventory, ca_certificate_path=ca_path, **kwargs)

    account.counter.reset()
    return account, ids, drift, ca_path


def second_controller(boto3_iot, names=NAMES, cn="Fleet CA"):
    """What issue 19's second controller did: a second fleet CA and a new certificate for each Pi, ACTIVE,
    the policy and the thing attached. Returns (CA id, {thing: certificate id})."""
    ca_cert, ca_key = _x509.create_ca(cn)
    ca_id = register_ca_certificate(boto3_iot, ca_cert, ca_key)["certificateId"]
    ids = {}
    for name in names:
        cert = _x509.issue_certificate(ca_cert, ca_key, name, _x509.generate_private_key().public_key())
        registered = boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(cert),
                                                    caCertificatePem=_x509.certificate_pem(ca_cert), status="ACTIVE")
        boto3_iot.attach_policy(policyName=POLICY, target=registered["certificateArn"])
        boto3_iot.attach_thing_principal(thingName=name, principal=registered["certificateArn"])
        ids[name] = registered["certificateId"]
    return ca_id, ids


def ca_status(boto3_iot, ca_id):
    for ca in boto3_iot.list_ca_certificates()["certificates"]:
        if ca["certificateId"] == ca_id:
            return ca["status"]
    return None


def test_a_second_controllers_certificates_and_ca_are_drift_and_prune_retires_them(fleet, boto3_iot):
    account, ids, drift, _ca_path = fleet
    foreign_id, theirs = second_controller(boto3_iot)
    # the original controller's next run keeps its own certificates and sees nothing wrong with the others
    spec = FleetSpec(validate_devices([dict(thing_name=n, host=f"{n}.lan") for n in NAMES]), account.ca_cert,
                     account.ca_key, account.pki, policy_name=POLICY)
    assert not ensure_fleet(account.client, spec)["changed"]
    for name in NAMES:
        assert principals(boto3_iot, name) == {ids[name]: "ACTIVE", theirs[name]: "ACTIVE"}

    account.counter.reset()
    report = drift()
    assert not report["changed"] and account.counter.snapshot()["writes"] == 0
    assert [(e["thing_name"], e["certificate_id"], e["ca_certificate_id"]) for e in report["extra_certificates"]] == \
        [(n, theirs[n], foreign_id) for n in NAMES]
    assert [(c["certificate_id"], c["common_name"], c["status"], c["active_certificates"])
            for c in report["foreign_cas"]] == [(foreign_id, "Fleet CA", "ACTIVE", 3)]
    assert report["orphan_things"] == [] and report["orphan_certificates"] == [] and report["failures"] == []

    predicted = drift(prune=True, check_mode=True)
    assert predicted["changed"] and account.counter.snapshot()["writes"] == 0
    assert sorted(predicted["retired_certificates"]) == sorted(theirs.values())
    assert predicted["retired_cas"] == [dict(certificate_id=foreign_id, done=["inactive", "deleted"])]

    pruned = drift(prune=True)
    assert pruned["changed"] and pruned["failures"] == []
    assert sorted(pruned["retired_certificates"]) == sorted(theirs.values())
    assert pruned["retired_cas"] == [dict(certificate_id=foreign_id, done=["inactive", "deleted"])]
    for name in NAMES:
        assert principals(boto3_iot, name) == {ids[name]: "ACTIVE"}   # one live identity per thing again
        with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
            boto3_iot.describe_certificate(certificateId=theirs[name])
    assert ca_status(boto3_iot, foreign_id) is None

    for check_mode in (False, True):
        account.counter.reset()
        again = drift(prune=True, check_mode=check_mode)
        assert not again["changed"] and account.counter.snapshot()["writes"] == 0
        assert again["extra_certificates"] == [] and again["foreign_cas"] == []


def test_revoke_keeps_the_extra_certificates_revoked_and_a_ca_with_active_certificates_is_only_set_inactive(
        fleet, boto3_iot):
    account, ids, drift, _ca_path = fleet
    foreign_id, theirs = second_controller(boto3_iot)
    # a run on pi-0 and pi-1 only (--limit): pi-2's certificate under the foreign CA is not this run's
    pruned = drift(names=NAMES[:2], retire="revoke", prune=True, whole_inventory=False)
    assert pruned["failures"] == [] and sorted(pruned["retired_certificates"]) == sorted([theirs["pi-0"],
                                                                                          theirs["pi-1"]])
    for name in NAMES[:2]:
        described = boto3_iot.describe_certificate(certificateId=theirs[name])["certificateDescription"]
        assert described["status"] == "REVOKED"
        assert principals(boto3_iot, name) == {ids[name]: "ACTIVE"}
    assert principals(boto3_iot, "pi-2") == {ids["pi-2"]: "ACTIVE", theirs["pi-2"]: "ACTIVE"}   # not looked at
    # the foreign CA: INACTIVE (its certificates no longer connect), kept while an ACTIVE one hangs under it
    assert pruned["retired_cas"] == [dict(certificate_id=foreign_id, done=["inactive"])]
    assert ca_status(boto3_iot, foreign_id) == "INACTIVE"
    again = drift(names=NAMES[:2], retire="revoke", prune=True, whole_inventory=False)
    assert not again["changed"] and again["foreign_cas"] == [] and again["extra_certificates"] == []
    # the run that covers pi-2 retires its extra certificate; the CA then has nothing ACTIVE and goes
    last = drift(names=["pi-2"], prune=True, whole_inventory=False)
    assert last["retired_certificates"] == [theirs["pi-2"]]
    assert last["foreign_cas"] == [] and last["retired_cas"] == [dict(certificate_id=foreign_id, done=["deleted"])]
    assert ca_status(boto3_iot, foreign_id) is None


def test_a_run_on_part_of_the_fleet_reports_nothing_of_the_pis_it_does_not_see(fleet, boto3_iot):
    account, ids, drift, _ca_path = fleet
    _foreign_id, theirs = second_controller(boto3_iot, names=["pi-2"])
    lone = _x509.issue_certificate(account.ca_cert, account.ca_key, "lone", _x509.generate_private_key().public_key())
    boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(lone),
                                   caCertificatePem=_x509.certificate_pem(account.ca_cert), status="ACTIVE")
    # an AWX slice holding pi-0 and pi-1: its inventory does not name pi-2, whose thing is managed
    part = drift(names=NAMES[:2], inventory=NAMES[:2], whole_inventory=False, prune=True, check_mode=True)
    assert part["orphan_things"] == [] and part["orphan_certificates"] == [] and part["extra_certificates"] == []
    assert part["whole_inventory"] is False and part["devices"] == []
    # the CA is the account's, whatever the run sees
    assert [c["active_certificates"] for c in part["foreign_cas"]] == [1]
    # the same inventory seen whole: pi-2 is a thing out of the inventory (as before this change)
    whole = drift(names=NAMES[:2], inventory=NAMES[:2])
    assert whole["orphan_things"] == ["pi-2"] and len(whole["orphan_certificates"]) == 1
    assert theirs["pi-2"] not in [e["certificate_id"] for e in whole["extra_certificates"]]


def test_not_drift_a_staged_rotation_the_next_ca_another_fleets_ca_an_unknown_identity(fleet, boto3_iot):
    account, ids, drift, ca_path = fleet
    # a rotation staged pi-0's next identity: ACTIVE and attached beside the live one, not drift
    spec = FleetSpec(validate_devices([dict(thing_name="pi-0", host="pi-0.lan")]), account.ca_cert, account.ca_key,
                     account.pki, policy_name=POLICY)
    assert rotate_fleet(account.client, spec, "stage", rotate_all=True)["staged_devices"] == ["pi-0.lan"]
    assert len(principals(boto3_iot, "pi-0")) == 2
    # a CA rotation in progress: its next CA (pki/ca/next/, named by the ca role) is this run's
    next_cert, next_key = _x509.create_ca("Fleet CA 2026-05-01T10:00:00Z")
    register_ca_certificate(boto3_iot, next_cert, next_key)
    os.makedirs(os.path.join(os.path.dirname(ca_path), "next"))
    with open(os.path.join(os.path.dirname(ca_path), "next", "fleet-ca.pem"), "w") as f:
        f.write(_x509.certificate_pem(next_cert))
    # another fleet's CA (another name) in the same account
    other_cert, other_key = _x509.create_ca("Greenhouse CA")
    register_ca_certificate(boto3_iot, other_cert, other_key)
    report = drift()
    assert report["extra_certificates"] == [] and report["foreign_cas"] == [] and not report["changed"]

    # the identity of a device is not known (check mode before issuing, no file): none of its certificates is drift
    os.remove(os.path.join(account.pki, "devices", "pi-1", "certificate.pem"))
    second_controller(boto3_iot, names=["pi-1"], cn="Fleet CA 2026-06-01T10:00:00Z")
    spec = FleetSpec([dict(host="pi-1.lan", thing_name="pi-1")], account.ca_cert, None, account.pki)
    unknown = fleet_drift(account.client, spec, NAMES, ca_certificate_path=ca_path)
    assert unknown["unknown_identity_devices"] == ["pi-1.lan"] and unknown["extra_certificates"] == []
    # ... but its CA (named as a rotation of this fleet's CA, not this run's) is
    assert [c["common_name"] for c in unknown["foreign_cas"]] == ["Fleet CA 2026-06-01T10:00:00Z"]


def test_fleet_like_ca_names():
    cert, _key = _x509.create_ca("iotfleet fleet CA 2026-05-01T10:00:00Z")
    assert fleet_ca_base_name(cert) == "iotfleet fleet CA"
    assert is_fleet_like_ca("iotfleet fleet CA", "iotfleet fleet CA")
    assert is_fleet_like_ca("iotfleet fleet CA 2027-01-01T00:00:00Z", "iotfleet fleet CA")
    assert not is_fleet_like_ca("Greenhouse CA", "iotfleet fleet CA") and not is_fleet_like_ca(None, "x")
    long_name = "A" * 60
    assert is_fleet_like_ca(long_name[:43] + " 2027-01-01T00:00:00Z", long_name)


def test_effective_retire_mode_revokes_in_jitp():
    assert effective_retire_mode("api", None) == ("delete", None)
    assert effective_retire_mode("api", "revoke") == ("revoke", None)
    assert effective_retire_mode("jitp", None) == ("revoke", None)
    assert effective_retire_mode("jitp", "revoke") == ("revoke", None)
    mode, warning = effective_retire_mode("jitp", "delete")
    assert mode == "revoke" and "registers itself again" in warning
    with pytest.raises(IoTFleetError):
        effective_retire_mode("api", "shred")


# --- the module's run: paced by the rate share as iot_fleet is; jitp revokes

class _Module:
    def __init__(self, params, client, check_mode=False):
        self.params, self._client, self.check_mode = params, client, check_mode
        self.limiters, self.warnings = [], []

    def warn(self, text):
        self.warnings.append(text)

    def iot_client(self, limiter=None):
        self.limiters.append(limiter)
        return self._client


def _params(account, ca_path, **overrides):
    params = dict(inventory=["pi-0"], devices=[dict(thing_name="pi-0", host="pi0.lan", certificate_id=None)],
                  whole_inventory=True, ca_certificate=ca_path, pki_dir=account.pki,
                  managed_thing_group="iotfleet-managed", prune=False, registration="api", retire_certificates=None,
                  workers=2, rate_limits={"CreateThing": 4}, rate_share=0.25)
    params.update(overrides)
    return params


@pytest.fixture
def ca_path(fleet_account, tmp_path):
    path = tmp_path / "fleet-ca.pem"
    path.write_text(_x509.certificate_pem(fleet_account.ca_cert))
    return str(path)


def test_the_rate_share_paces_every_call(fleet_account, ca_path):
    module = _Module(_params(fleet_account, ca_path), fleet_account.client)
    result = iot_fleet_drift.run(module)
    assert result["rate_limits"]["CreateThing"] == 1.0
    assert result["rate_limits"]["DescribeCertificate"] == DEFAULT_RATE_LIMITS["DescribeCertificate"] * 0.25
    assert [limiter._rates for limiter in module.limiters] == [result["rate_limits"]]
    assert result["extra_certificates"] == [] and result["foreign_cas"] == [] and module.warnings == []
    assert result["unknown_identity_devices"] == ["pi0.lan"]   # no certificate named, no file: not looked at
    with pytest.raises(IoTFleetError, match="rate_share"):
        iot_fleet_drift.run(_Module(_params(fleet_account, ca_path, rate_share=0), fleet_account.client))


def test_jitp_revokes_whatever_is_asked_and_warns_about_delete(fleet_account, ca_path):
    module = _Module(_params(fleet_account, ca_path, registration="jitp", retire_certificates="delete"),
                     fleet_account.client)
    iot_fleet_drift.run(module)
    assert len(module.warnings) == 1 and "REVOKED, not deleted" in module.warnings[0]
    assert os.path.isfile(ca_path)
