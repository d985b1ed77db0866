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
          "certificate_arn", "thing_arn"}


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
