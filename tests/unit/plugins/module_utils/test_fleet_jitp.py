# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registration jitp of the batched fleet path: keys and certificates only, no AWS call.

Against the stand-in's control plane (``moto`` / ``boto3_iot`` fixtures) with botocore's event
hooks counting every call the client makes: registration jitp must make none (in check mode or
not, on a new fleet, a converged one, or one that api registered before), while the same devices
under registration api are registered as before (the two modes share the certificate files).
"""

import os

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.unit import POLICY

FIELDS = {"host", "thing_name", "changed", "changes", "failed", "certificate_path", "certificate_id",
          "certificate_arn", "thing_arn", "key_on_controller"}


@pytest.fixture
def fleet(fleet_account):
    """The account of ``fleet_account``; ``spec(n)``: n devices in registration jitp (by default)."""
    account = fleet_account

    def spec(n, registration="jitp", key_mode="controller", names=None):
        names = names or [f"pi-{i}" for i in range(n)]
        devices = validate_devices([dict(thing_name=name, attributes=dict(room="r")) for name in names],
                                   registration=registration)
        return FleetSpec(devices, account.ca_cert, account.ca_key, account.pki, policy_name=POLICY,
                         key_mode=key_mode, registration=registration)

    return account.client, account.counter, spec, account.pki


def _calls(counter):
    return counter.snapshot()["calls"]


def test_jitp_issues_certificates_with_no_aws_call(fleet, fleet_ca, boto3_iot):
    client, counter, spec, pki = fleet
    counter.reset()
    result = ensure_fleet(client, spec(3), workers=2)
    assert _calls(counter) == {}
    assert result["changed"] and result["failed_devices"] == []
    for device in result["devices"]:
        assert set(device) == FIELDS
        assert device["changes"] == ["key", "certificate"] and device["changed"]
        assert device["certificate_arn"] is None and device["thing_arn"] is None
        cert = _x509.load_certificate(path=device["certificate_path"])
        # the id AWS IoT will give the certificate on the device's first connect
        assert device["certificate_id"] == _x509.certificate_id(cert)
        assert _x509.common_name(cert) == device["thing_name"] and _x509.is_issued_by(cert, fleet_ca[0])
        key_path = os.path.join(os.path.dirname(device["certificate_path"]), "private.key")
        assert os.stat(key_path).st_mode & 0o777 == 0o600
    # nothing registered: the devices do that themselves
    assert boto3_iot.list_things()["things"] == []
    assert boto3_iot.list_certificates()["certificates"] == []


def test_jitp_rerun_and_check_mode_change_nothing_and_call_nothing(fleet):
    client, counter, spec, pki = fleet
    first = ensure_fleet(client, spec(2))
    counter.reset()
    again = ensure_fleet(client, spec(2))
    checked = ensure_fleet(client, spec(2), check_mode=True)
    assert _calls(counter) == {}
    for result in (again, checked):
        assert not result["changed"] and result["failed_devices"] == []
        assert [d["certificate_id"] for d in result["devices"]] == [d["certificate_id"] for d in first["devices"]]
        assert all(d["changes"] == [] for d in result["devices"])


def test_jitp_check_mode_on_a_new_fleet_predicts_and_writes_nothing(fleet):
    client, counter, spec, pki = fleet
    counter.reset()
    result = ensure_fleet(client, spec(2), check_mode=True)
    assert _calls(counter) == {}
    assert result["changed"]
    assert all(d["changes"] == ["key", "certificate"] and d["certificate_id"] is None for d in result["devices"])
    assert not os.path.exists(pki)


def test_jitp_key_mode_device_signs_the_csr(fleet, fleet_ca):
    client, counter, spec, pki = fleet
    key = _x509.generate_private_key("ec")
    directory = os.path.join(pki, "devices", "pi-0")
    os.makedirs(directory)
    with open(os.path.join(directory, "device.csr"), "w") as f:
        f.write(_x509.csr_pem(_csr(key, "pi-0")))
    counter.reset()
    result = ensure_fleet(client, spec(1, key_mode="device"))
    assert _calls(counter) == {}
    device = result["devices"][0]
    assert device["changes"] == ["certificate"]
    cert = _x509.load_certificate(path=device["certificate_path"])
    assert _x509.key_matches_certificate(key, cert) and _x509.is_issued_by(cert, fleet_ca[0])
    assert not os.path.exists(os.path.join(directory, "private.key"))


def _csr(key, cn):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    return x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())


def test_api_fleet_moves_to_jitp_unchanged_and_back(fleet, boto3_iot):
    """A fleet api registered, then run in jitp: nothing changes (the certificates stay), no call.
    Back to api: nothing to change either (the registered certificates are the same)."""
    client, counter, spec, pki = fleet
    api = ensure_fleet(client, spec(2, registration="api"))
    assert api["changed"] and all(d["certificate_arn"] for d in api["devices"])
    counter.reset()
    jitp = ensure_fleet(client, spec(2))
    assert _calls(counter) == {}
    assert not jitp["changed"]
    assert [d["certificate_id"] for d in jitp["devices"]] == [d["certificate_id"] for d in api["devices"]]
    back = ensure_fleet(client, spec(2, registration="api"))
    assert not back["changed"] and counter.snapshot()["writes"] == 0


def test_jitp_fleet_moves_to_api_registered_by_the_api(fleet, boto3_iot):
    """Certificates issued in jitp that never connected: api registers the same certificates."""
    client, counter, spec, pki = fleet
    jitp = ensure_fleet(client, spec(2))
    api = ensure_fleet(client, spec(2, registration="api"))
    assert api["failed_devices"] == []
    for before, after in zip(jitp["devices"], api["devices"]):
        assert after["certificate_id"] == before["certificate_id"]
        assert after["changes"] == ["certificate registration", "thing", "thing groups", "policy attachment",
                                    "thing principal"]   # thing groups: the managed group
        status = boto3_iot.describe_certificate(certificateId=after["certificate_id"])["certificateDescription"]
        assert status["status"] == "ACTIVE"


def test_jitp_thing_name_longer_than_a_cn_fails_that_device_only(fleet):
    client, counter, spec, pki = fleet
    long_name = "pi-" + "x" * 70
    counter.reset()
    result = ensure_fleet(client, spec(2, names=["pi-ok", long_name]))
    assert _calls(counter) == {}
    assert result["failed_devices"] == [long_name]
    failed = result["devices"][1]
    assert "64" in failed["msg"] and "CN" in failed["msg"] and failed["msg"].startswith(long_name + ":")
    assert not os.path.exists(os.path.join(pki, "devices", long_name))
    assert not result["devices"][0]["failed"]


def test_unknown_registration_refused(fleet_ca, tmp_path):
    with pytest.raises(IoTFleetError, match="registration must be one of api, jitp"):
        FleetSpec([], fleet_ca[0], fleet_ca[1], str(tmp_path), registration="jit")


class _Module:
    """iot_fleet's run in-process, its client the fleet account's."""

    def __init__(self, params, client, check_mode=False):
        self.params, self._client, self.check_mode, self._diff = params, client, check_mode, False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def iot_client(self, limiter=None):
        return self._client


@pytest.mark.parametrize("asked", ["delete", None, "revoke"])
def test_decommission_in_jitp_revokes_and_never_deletes(fleet, boto3_iot, asked):
    """A deleted certificate of a CA with auto-registration registers itself again on the device's next
    connect (a stolen Pi comes back): in registration jitp a decommission revokes, whatever is asked, and
    warns when delete was asked for. The same devices registered (as JITP would) first."""
    from ansible_collections.iotfleet.aws.plugins.modules import iot_fleet

    client, counter, spec, pki = fleet
    registered = ensure_fleet(client, spec(2, registration="api"))
    ids = [d["certificate_id"] for d in registered["devices"]]
    params = dict(devices=[dict(thing_name=f"pi-{i}", host=f"pi-{i}", attributes=None, reactivate=False,
                                thing_groups=None) for i in range(2)],
                  state="absent", registration="jitp", retire_certificates=asked, pki_dir=pki, workers=2,
                  rate_limits={}, rate_share=1.0)
    module = _Module(params, client)
    result = iot_fleet.run(module)
    assert result["failed_devices"] == [] and result["changed"]
    for cert_id in ids:
        assert boto3_iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "REVOKED"
    assert boto3_iot.list_things()["things"] == []
    assert len(module.warnings) == (1 if asked == "delete" else 0)
    # the same under api deletes (the default)
    api = ensure_fleet(client, spec(1, registration="api", names=["pi-9"]))
    params.update(devices=[dict(thing_name="pi-9", host="pi-9")], registration="api", retire_certificates=None)
    assert iot_fleet.run(_Module(params, client))["devices"][0]["retired_certificates"] == \
        [api["devices"][0]["certificate_id"]]
    with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
        boto3_iot.describe_certificate(certificateId=api["devices"][0]["certificate_id"])


def _first_connect(boto3_iot, ca_cert, pem, thing):
    """What the fleet CA's JITP template does on a device's first connect with an unregistered certificate
    (lab/iotcore/templates.py through the broker; here through the API): the certificate registered ACTIVE,
    the policy attached, attached to the thing (made when missing)."""
    arn = boto3_iot.register_certificate(certificatePem=pem, caCertificatePem=_x509.certificate_pem(ca_cert),
                                         status="ACTIVE")["certificateArn"]
    if thing not in [t["thingName"] for t in boto3_iot.list_things()["things"]]:
        boto3_iot.create_thing(thingName=thing)
    boto3_iot.attach_policy(policyName=POLICY, target=arn)
    boto3_iot.attach_thing_principal(thingName=thing, principal=arn)
    return arn.rsplit("/", 1)[-1]


def test_rotation_in_jitp_stages_without_registering_and_promotes_what_the_pi_registered(fleet, fleet_ca, boto3_iot):
    """rotate.yml on a jitp fleet: stage makes the next identity and does not register it; the Pi registers it
    on its first connect with it (the round trip); promote then finds it ACTIVE and attached and retires the
    old certificate REVOKED (never deleted in jitp). A Pi whose round trip did not happen is refused by promote
    and keeps its identity."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet

    client, counter, _spec, pki = fleet
    ca_cert, ca_key = fleet_ca

    def spec(**kwargs):
        devices = validate_devices([dict(thing_name=f"pi-{i}", host=f"pi{i}.lan") for i in range(2)],
                                   registration="jitp")
        return FleetSpec(devices, ca_cert, ca_key, pki, policy_name=POLICY, registration="jitp",
                         retire_certificates="delete", **kwargs)

    provisioned = ensure_fleet(client, spec(certificate_days=20))
    old = {}
    for device in provisioned["devices"]:
        with open(device["certificate_path"]) as f:
            old[device["thing_name"]] = _first_connect(boto3_iot, ca_cert, f.read(), device["thing_name"])
        assert old[device["thing_name"]] == device["certificate_id"]

    counter.reset()
    predicted = rotate_fleet(client, spec(), "stage", check_mode=True)
    assert predicted["staged_devices"] == ["pi0.lan", "pi1.lan"] and counter.snapshot()["writes"] == 0
    staged = rotate_fleet(client, spec(), "stage")
    assert staged["staged_devices"] == ["pi0.lan", "pi1.lan"] and staged["failed_devices"] == []
    assert counter.snapshot()["writes"] == 0   # nothing registered by the API
    new = {d["thing_name"]: d["certificate_id"] for d in staged["devices"]}
    for device in staged["devices"]:
        assert "certificate registration" not in device["changes"] and device["certificate_arn"] is None
        assert new[device["thing_name"]] == _x509.certificate_id(_x509.load_certificate(path=device["certificate_path"]))
        with pytest.raises(boto3_iot.exceptions.ResourceNotFoundException):
            boto3_iot.describe_certificate(certificateId=new[device["thing_name"]])
    again = rotate_fleet(client, spec(), "stage")
    assert not again["changed"] and [d["certificate_id"] for d in again["devices"]] == list(new.values())

    # pi-0's round trip with the next identity: its first connect registers it (JITP)
    with open(os.path.join(pki, "staged", "devices", "pi-0", "certificate.pem")) as f:
        assert _first_connect(boto3_iot, ca_cert, f.read(), "pi-0") == new["pi-0"]
    promoted = rotate_fleet(client, spec(), "promote")
    assert promoted["promoted_devices"] == ["pi0.lan"] and promoted["failed_devices"] == ["pi1.lan"]
    assert "first connect" in promoted["devices"][1]["msg"]
    assert promoted["devices"][0]["retired_certificates"] == [old["pi-0"]]
    # REVOKED, not deleted: the old certificate cannot register itself again
    assert boto3_iot.describe_certificate(certificateId=old["pi-0"])["certificateDescription"]["status"] == "REVOKED"
    arns = boto3_iot.list_thing_principals(thingName="pi-0")["principals"]
    assert [a.rsplit("/", 1)[-1] for a in arns] == [new["pi-0"]]
    # pi-1 keeps its identity; its staged one waits for the round trip
    arns = boto3_iot.list_thing_principals(thingName="pi-1")["principals"]
    assert [a.rsplit("/", 1)[-1] for a in arns] == [old["pi-1"]]
    assert os.path.isdir(os.path.join(pki, "staged", "devices", "pi-1"))
