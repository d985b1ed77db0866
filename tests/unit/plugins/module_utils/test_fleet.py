# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batched fleet path: calls per device (counted with botocore event hooks), reruns, throttling.

Against the real moto server (``moto`` / ``boto3_iot`` fixtures). Throttling is injected with a
botocore ``before-send`` handler that answers HTTP 400 ThrottlingException, because moto never
throttles.
"""

import collections
import threading

import pytest
from botocore.awsrequest import AWSResponse

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FreshCertificateClient
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.recorders import ApiCallCounter, is_write_operation
from support.iotcore import register_ca_certificate

POLICY = "fleet-device"
FIRST_RUN = {"DescribeThing": 1, "RegisterCertificate": 1, "CreateThing": 1, "AttachPolicy": 1,
             "AttachThingPrincipal": 1}
RERUN = {"DescribeCertificate": 1, "DescribeThing": 1, "ListAttachedPolicies": 1, "ListPrincipalThings": 1}


@pytest.fixture(scope="module")
def fleet_ca():
    return _x509.create_ca("Fleet CA")


@pytest.fixture
def fleet(boto3_iot, fleet_ca, tmp_path):
    """A moto account with the fleet CA registered and the policy; a counted, retried client."""
    ca_cert, ca_key = fleet_ca
    register_ca_certificate(boto3_iot, ca_cert, ca_key)
    boto3_iot.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    counter = ApiCallCounter().attach(boto3_iot)
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=6, delay=0.01, max_delay=0.05))

    def spec(n, prefix="pi"):
        devices = validate_devices([dict(thing_name=f"{prefix}-{i}", attributes=dict(room=str(i))) for i in range(n)])
        return FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), policy_name=POLICY)

    return client, counter, spec


def per_device(counter, n):
    calls = counter.snapshot()["calls"]
    assert all(c % n == 0 for c in calls.values()), calls
    return {op: c // n for op, c in calls.items()}


def test_is_write_operation():
    assert is_write_operation("CreateThing") and is_write_operation("AttachThingPrincipal")
    assert is_write_operation("RegisterCertificate") and is_write_operation("UpdateCertificate")
    assert not is_write_operation("DescribeThing") and not is_write_operation("ListPrincipalThings")


def test_first_run_then_rerun_minimal_calls(fleet, boto3_iot):
    client, counter, spec = fleet
    n = 4
    result = ensure_fleet(client, spec(n), workers=3)
    assert result["failed_devices"] == [] and result["changed"]
    # new devices: the certificate id is computed locally, nothing to describe or list
    assert per_device(counter, n) == FIRST_RUN
    for device in result["devices"]:
        arn = device["certificate_arn"]
        assert boto3_iot.list_principal_things(principal=arn)["things"] == [device["thing_name"]]
        assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
        described = boto3_iot.describe_certificate(certificateId=device["certificate_id"])["certificateDescription"]
        assert described["status"] == "ACTIVE"

    counter.reset()
    again = ensure_fleet(client, spec(n), workers=3)
    assert not again["changed"] and again["failed_devices"] == []
    snapshot = counter.snapshot()
    assert snapshot["writes"] == 0
    assert per_device(counter, n) == RERUN


def test_rerun_repairs_only_what_is_missing(fleet, boto3_iot):
    client, counter, spec = fleet
    first = ensure_fleet(client, spec(3), workers=2)
    victim = first["devices"][1]
    boto3_iot.detach_policy(policyName=POLICY, target=victim["certificate_arn"])
    boto3_iot.detach_thing_principal(thingName=victim["thing_name"], principal=victim["certificate_arn"])
    counter.reset()
    again = ensure_fleet(client, spec(3), workers=2)
    changed = [d for d in again["devices"] if d["changed"]]
    assert [d["thing_name"] for d in changed] == [victim["thing_name"]]
    assert changed[0]["changes"] == ["policy attachment", "thing principal"]
    calls = counter.snapshot()["calls"]
    writes = {op: c for op, c in calls.items() if is_write_operation(op)}
    assert writes == {"AttachPolicy": 1, "AttachThingPrincipal": 1}
    assert boto3_iot.list_principal_things(principal=victim["certificate_arn"])["things"] == [victim["thing_name"]]


def test_check_mode_makes_no_write(fleet):
    client, counter, spec = fleet
    result = ensure_fleet(client, spec(4), workers=2, check_mode=True)
    assert result["changed"] and result["failed_devices"] == []
    assert counter.snapshot()["writes"] == 0


def _throttle_every_other_write(boto3_iot):
    """Answer every second attempt of each write operation with HTTP 400 ThrottlingException.

    Returns a Counter of write attempts by operation, and "throttled": how many were refused.
    """
    seen = collections.Counter()
    lock = threading.Lock()

    def handler(request=None, event_name=None, **kwargs):
        op = event_name.rsplit(".", 1)[-1]
        if not is_write_operation(op):
            return None
        with lock:
            seen[op] += 1
            throttle = seen[op] % 2 == 1
            if throttle:
                seen["throttled"] += 1
        if throttle:
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
            return AWSResponse(request.url, 400, headers, _Raw(body))
        return None

    boto3_iot.meta.events.register_first("before-send.iot", handler)
    return seen


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def test_throttling_is_retried_and_no_device_fails(fleet, boto3_iot):
    client, counter, spec = fleet
    throttled = _throttle_every_other_write(boto3_iot)
    n = 6
    result = ensure_fleet(client, spec(n), workers=4)
    assert result["failed_devices"] == []
    snapshot = counter.snapshot()
    # about half of all write attempts were answered ThrottlingException (by botocore's retries or
    # the collection's AWSRetry, which makes a new call); every device is complete all the same
    assert throttled["throttled"] >= 4 * n // 2
    assert snapshot["attempts"]["CreateThing"] > n
    for device in result["devices"]:
        arn = device["certificate_arn"]
        assert boto3_iot.list_principal_things(principal=arn)["things"] == [device["thing_name"]]
        assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=arn)["policies"]] == [POLICY]


def test_shared_limiter_paces_the_whole_fleet(fleet, boto3_iot):
    client, counter, spec = fleet
    clock_sleeps = []
    limiter = RateLimiter({"CreateThing": 1000.0, "RegisterCertificate": 1000.0}, sleep=clock_sleeps.append)
    paced = IoTClient(boto3_iot, limiter=limiter, retry=retry_decorator(retries=2, delay=0.01))
    result = ensure_fleet(paced, spec(5), workers=5)
    assert result["failed_devices"] == []
    stats = limiter.stats()
    assert stats["CreateThing"]["requests"] == 5 and stats["RegisterCertificate"]["requests"] == 5


class _FakeClient:
    def __init__(self):
        self.calls = []

    def get(self, operation, **kwargs):
        self.calls.append(("get", operation))
        return {"certificateDescription": {}}

    def call(self, operation, **kwargs):
        self.calls.append(("call", operation))
        return {"certificateArn": "arn:new"}

    def paginate(self, operation, result_key, **kwargs):
        self.calls.append(("paginate", operation))
        return ["x"]


def test_fresh_certificate_view_answers_only_what_it_knows():
    real = _FakeClient()
    view = FreshCertificateClient(real, "abc")
    assert view.paginate("list_attached_policies", "policies", target="arn:new") == ["x"]  # not registered by it
    assert view.get("describe_certificate", certificateId="abc") is None  # a new certificate: not registered
    assert view.get("describe_certificate", certificateId="abc") == {"certificateDescription": {}}  # only once
    assert view.get("describe_certificate", certificateId="other") == {"certificateDescription": {}}
    view.call("register_certificate", certificatePem="...")
    assert view.paginate("list_attached_policies", "policies", target="arn:new") == []
    assert view.paginate("list_principal_things", "things", principal="arn:new") == []
    assert view.paginate("list_principal_things", "things", principal="arn:old") == ["x"]
    assert view.paginate("list_thing_principals", "principals", thingName="t") == ["x"]
    assert ("call", "register_certificate") in real.calls


def test_an_operators_quarantine_stays_and_is_reported(fleet, boto3_iot, fleet_ca, tmp_path):
    client, counter, spec = fleet
    first = ensure_fleet(client, spec(2))
    quarantined = first["devices"][0]
    boto3_iot.update_certificate(certificateId=quarantined["certificate_id"], newStatus="INACTIVE")
    counter.reset()
    again = ensure_fleet(client, spec(2))
    assert again["quarantined_devices"] == ["pi-0"] and again["failed_devices"] == []
    assert not again["changed"] and counter.snapshot()["writes"] == 0
    status = boto3_iot.describe_certificate(certificateId=quarantined["certificate_id"])["certificateDescription"]
    assert status["status"] == "INACTIVE"
    assert "quarantined" in again["devices"][0]["msg"] and "iotfleet_reactivate" in again["devices"][0]["msg"]

    ca_cert, ca_key = fleet_ca
    devices = validate_devices([dict(thing_name="pi-0", attributes=dict(room="0"), reactivate=True)])
    back = ensure_fleet(client, FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), policy_name=POLICY))
    assert back["quarantined_devices"] == [] and back["changed"]
    status = boto3_iot.describe_certificate(certificateId=quarantined["certificate_id"])["certificateDescription"]
    assert status["status"] == "ACTIVE"


def test_a_bad_device_fails_alone_named_by_its_host_before_any_write(fleet, boto3_iot, fleet_ca, tmp_path):
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    long_name = "p" * 65
    devices = validate_devices([
        dict(host="pi-good.lan", thing_name="pi-good"),
        dict(host="pi-kitchen.lan", thing_name="pi-kitchen", attributes={"room": "my kitchen"}),
        dict(host="pi-text.lan", thing_name="pi-text", attributes="room=kitchen"),
        dict(host="pi-long.lan", thing_name=long_name),
    ])
    result = ensure_fleet(client, FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), policy_name=POLICY))
    assert result["failed_devices"] == ["pi-kitchen.lan", "pi-text.lan", "pi-long.lan"]
    by_host = {d["host"]: d for d in result["devices"]}
    assert not by_host["pi-good.lan"]["failed"] and by_host["pi-good.lan"]["certificate_id"]
    assert "room" in by_host["pi-kitchen.lan"]["msg"] and "dict" in by_host["pi-text.lan"]["msg"]
    assert "pi-long.lan" in by_host["pi-long.lan"]["msg"] and "64" in by_host["pi-long.lan"]["msg"]
    for thing in ("pi-kitchen", "pi-text", long_name):   # nothing written for the bad ones
        assert not (tmp_path / "pki" / "devices" / thing).exists()
    assert [t["thingName"] for t in boto3_iot.list_things()["things"]] == ["pi-good"]


def test_two_hosts_for_one_thing_stop_the_fleet_naming_both():
    with pytest.raises(Exception, match="hosts a.lan and b.lan both map to the thing name 'pi'"):
        validate_devices([dict(host="a.lan", thing_name="pi"), dict(host="b.lan", thing_name="pi")])


@pytest.mark.parametrize("mode", ["delete", "revoke"])
def test_retire_leaves_no_usable_identity_and_no_orphan(fleet, boto3_iot, tmp_path, mode):
    from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import retire_fleet
    client, counter, spec = fleet
    registered = ensure_fleet(client, spec(2))
    gone, kept = registered["devices"]
    retire_spec = FleetSpec(validate_devices([dict(thing_name=gone["thing_name"])]), None, None, str(tmp_path / "pki"))

    predicted = retire_fleet(client, retire_spec, certificates=mode, check_mode=True)
    assert predicted["changed"] and (tmp_path / "pki" / "devices" / gone["thing_name"]).exists()
    assert boto3_iot.describe_thing(thingName=gone["thing_name"])

    result = retire_fleet(client, retire_spec, certificates=mode)
    device = result["devices"][0]
    assert result["failed_devices"] == [] and device["retired_certificates"] == [gone["certificate_id"]]
    assert device["thing_deleted"] and device["archived_to"]
    archive = tmp_path / "pki" / "retired"
    (archived,) = list(archive.iterdir())
    assert sorted(p.name for p in archived.iterdir()) == ["certificate.pem"]   # the key is destroyed
    assert oct(archive.stat().st_mode & 0o777) == "0o700"
    things = [t["thingName"] for t in boto3_iot.list_things()["things"]]
    assert things == [kept["thing_name"]]
    certificates = {c["certificateId"]: c["status"] for c in boto3_iot.list_certificates()["certificates"]}
    if mode == "delete":
        assert gone["certificate_id"] not in certificates
    else:
        assert certificates[gone["certificate_id"]] == "REVOKED"
        arn = gone["certificate_arn"]
        assert boto3_iot.list_attached_policies(target=arn)["policies"] == []
        assert boto3_iot.list_principal_things(principal=arn)["things"] == []
    assert certificates[kept["certificate_id"]] == "ACTIVE"

    again = retire_fleet(client, retire_spec, certificates=mode)
    assert not again["changed"] and again["failed_devices"] == []


def _principals(boto3_iot, thing):
    return boto3_iot.list_thing_principals(thingName=thing)["principals"]


def test_a_revoked_identity_is_replaced_and_retired(fleet, boto3_iot, tmp_path):
    client, counter, spec = fleet
    old = ensure_fleet(client, spec(1))["devices"][0]
    old_key = (tmp_path / "pki" / "devices" / "pi-0" / "private.key").read_bytes()
    boto3_iot.update_certificate(certificateId=old["certificate_id"], newStatus="REVOKED")   # key compromise

    assert ensure_fleet(client, spec(1), check_mode=True)["devices"][0]["superseded_certificates"] == [old["certificate_id"]]
    result = ensure_fleet(client, spec(1))
    new = result["devices"][0]
    assert result["failed_devices"] == [] and new["certificate_id"] != old["certificate_id"]
    assert new["superseded_certificates"] == [old["certificate_id"]]
    assert _principals(boto3_iot, "pi-0") == [new["certificate_arn"]]
    assert boto3_iot.describe_certificate(certificateId=new["certificate_id"])["certificateDescription"]["status"] == "ACTIVE"
    assert old["certificate_id"] not in [c["certificateId"] for c in boto3_iot.list_certificates()["certificates"]]
    assert (tmp_path / "pki" / "devices" / "pi-0" / "private.key").read_bytes() != old_key   # a new key
    (archived,) = list((tmp_path / "pki" / "retired").iterdir())
    assert sorted(p.name for p in archived.iterdir()) == ["certificate.pem"]
    assert not ensure_fleet(client, spec(1))["changed"]


def test_a_damaged_certificate_file_never_leaves_two_live_identities(fleet, boto3_iot, tmp_path):
    client, counter, spec = fleet
    old = ensure_fleet(client, spec(1))["devices"][0]
    (tmp_path / "pki" / "devices" / "pi-0" / "certificate.pem").write_text("overwritten by mistake\n")
    result = ensure_fleet(client, spec(1))
    new = result["devices"][0]
    assert new["certificate_id"] != old["certificate_id"] and new["superseded_certificates"] == [old["certificate_id"]]
    live = [arn for arn in _principals(boto3_iot, "pi-0")
            if boto3_iot.describe_certificate(certificateId=arn.rsplit("/", 1)[-1])["certificateDescription"]["status"]
            == "ACTIVE"]
    assert live == [new["certificate_arn"]]
    assert not ensure_fleet(client, spec(1))["changed"]


def test_a_large_fleet_reruns_on_about_one_read_per_device(fleet, boto3_iot):
    """From BULK_READ_MIN_DEVICES devices on, the registry is read in pages (things, the CA's
    certificates, the policy's targets): a no-change rerun costs ~1 read per device, 0 writes,
    and a change made behind the module's back is still found and repaired."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import BULK_READ_MIN_DEVICES
    client, counter, spec = fleet
    n = BULK_READ_MIN_DEVICES + 10
    first = ensure_fleet(client, spec(n), workers=4)
    assert first["failed_devices"] == []
    counter.reset()
    again = ensure_fleet(client, spec(n), workers=4)
    snap = counter.snapshot()
    assert not again["changed"] and snap["writes"] == 0
    reads = sum(snap["calls"].values())
    # measured: ListPrincipalThings 60, ListThings 2 pages, ListCertificatesByCA 1, ListTargetsForPolicy 1
    assert reads <= 1.1 * n, snap["calls"]
    assert snap["calls"].get("DescribeCertificate", 0) == 0 and snap["calls"].get("DescribeThing", 0) == 0

    victim = first["devices"][7]
    boto3_iot.detach_policy(policyName=POLICY, target=victim["certificate_arn"])
    boto3_iot.update_thing(thingName=victim["thing_name"], attributePayload={"attributes": {"room": "moved"}})
    repaired = ensure_fleet(client, spec(n), workers=4)
    changed = [d["thing_name"] for d in repaired["devices"] if d["changed"]]
    assert changed == [victim["thing_name"]]
    assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=victim["certificate_arn"])["policies"]] == [POLICY]
    assert boto3_iot.describe_thing(thingName=victim["thing_name"])["attributes"]["room"] == "7"
