# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batched fleet path: calls per device (counted with botocore event hooks), reruns, throttling.

Against the real moto server (``moto`` / ``boto3_iot`` fixtures). Throttling is injected with a
botocore ``before-send`` handler that answers HTTP 400 ThrottlingException, because moto never
throttles.
"""

import collections
import os
import threading

import pytest
from botocore.awsrequest import AWSResponse

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_policy_attachment
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_thing_principal
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import ensure_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_device_identity
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from support.unit import POLICY
from support.recorders import Recorder, is_write_operation

FIRST_RUN = {"DescribeThing": 1, "RegisterCertificate": 1, "CreateThing": 1, "AttachPolicy": 1,
             "AttachThingPrincipal": 1, "AddThingToThingGroup": 1}   # + the managed group, once per run
PER_RUN = ("DescribeThingGroup", "CreateThingGroup")   # the managed group, made sure of once per run
RERUN = {"DescribeCertificate": 1, "DescribeThing": 1, "ListAttachedPolicies": 1, "ListPrincipalThings": 1}


@pytest.fixture
def fleet(fleet_account):
    """The account of ``fleet_account``; ``spec(n)``: n devices with an attribute each."""
    account = fleet_account

    def spec(n, prefix="pi"):
        devices = validate_devices([dict(thing_name=f"{prefix}-{i}", attributes=dict(room=str(i))) for i in range(n)])
        return FleetSpec(devices, account.ca_cert, account.ca_key, account.pki, policy_name=POLICY)

    return account.client, account.counter, spec


def per_device(counter, n):
    calls = counter.snapshot()["calls"]
    assert all(calls.pop(op, 0) <= 1 for op in PER_RUN), calls
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


def test_what_the_caller_knows_replaces_reads_and_a_wrong_hint_is_survived(fleet, fleet_ca, boto3_iot):
    """known_new: no describe of a certificate issued now, no lists of one registered now; each
    function reads on its own when not told (no order between them), and a stale hint still converges."""
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    boto3_iot.create_thing(thingName="pi-x")
    cert = _x509.issue_certificate(ca_cert, ca_key, "pi-x", _x509.generate_private_key("ec").public_key())
    recorder = Recorder(client, write_operations=frozenset(("register_certificate", "attach_policy",
                                                            "attach_thing_principal")))
    outcome = ensure_certificate(recorder, cert=cert, ca_cert=ca_cert, known_new=True)
    arn = outcome.values["certificate_arn"]
    assert outcome.changed and outcome.before == {} and recorder.operations() == ["register_certificate"]
    assert ensure_thing_principal(recorder, "pi-x", arn, known_new=True).changed
    assert ensure_policy_attachment(recorder, POLICY, arn, known_new=True).changed
    assert recorder.operations() == ["register_certificate", "attach_thing_principal", "attach_policy"]
    assert boto3_iot.list_principal_things(principal=arn)["things"] == ["pi-x"]
    # not told: each reads for itself, in any order, and finds nothing to do
    recorder.calls.clear()
    assert not ensure_policy_attachment(recorder, POLICY, arn).changed
    assert not ensure_thing_principal(recorder, "pi-x", arn).changed
    assert not ensure_certificate(recorder, cert=cert, ca_cert=ca_cert).changed
    assert recorder.writes() == []
    # a stale known_new (the certificate is registered after all): the refusal is read back, nothing changes
    again = ensure_certificate(recorder, cert=cert, ca_cert=ca_cert, status=None, known_new=True)
    assert not again.changed and again.values["certificate_arn"] == arn and again.values["status"] == "ACTIVE"


def test_a_certificate_issued_but_never_registered_is_registered_without_lists(fleet, boto3_iot):
    """A run that wrote the certificate and failed before registering it: the rerun describes it once,
    registers it and attaches it without listing what cannot be attached to it."""
    client, counter, spec = fleet
    fleet_spec = spec(1)
    ensure_device_identity(fleet_spec, "pi-0")   # the files only, as a run stopped right after them
    counter.reset()
    result = ensure_fleet(client, fleet_spec)
    assert result["failed_devices"] == [] and result["changed"]
    assert per_device(counter, 1) == dict(FIRST_RUN, DescribeCertificate=1)
    arn = result["devices"][0]["certificate_arn"]
    assert boto3_iot.list_principal_things(principal=arn)["things"] == ["pi-0"]
    assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=arn)["policies"]] == [POLICY]


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
    long_name = "p" * 129
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
    assert "pi-long.lan" in by_host["pi-long.lan"]["msg"] and "128" in by_host["pi-long.lan"]["msg"]
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


def test_thing_names_of_65_to_128_characters_work_in_registration_api(fleet, boto3_iot, fleet_ca, tmp_path):
    """The CN holds 64 characters: a longer thing name gets a stable, distinct CN (its first 55
    characters, '-', 8 hex digits of its SHA-256); the binding is the thing attachment. The
    certificate is kept on a rerun (the usable check knows the CN), and recovery and retirement
    work with it."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import retire_fleet
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    names = ["p" * 128, "p" * 100 + "a", "p" * 100 + "b"]   # the last two share their first 64 characters
    pki = str(tmp_path / "pki")

    def long_spec():
        return FleetSpec(validate_devices([dict(thing_name=n, host=f"h{i}") for i, n in enumerate(names)]),
                         ca_cert, ca_key, pki, policy_name=POLICY)

    first = ensure_fleet(client, long_spec())
    assert first["failed_devices"] == []
    cns = []
    for device, name in zip(first["devices"], names):
        cert = _x509.load_certificate(path=device["certificate_path"], what="certificate")
        cn = _x509.common_name(cert)
        assert len(cn) == 64 and cn == _x509.device_common_name(name) and cn.startswith(name[:55] + "-")
        cns.append(cn)
        assert _principals(boto3_iot, name) == [device["certificate_arn"]]
    assert len(set(cns)) == 3
    assert _x509.device_common_name("p" * 64) == "p" * 64

    counter.reset()
    again = ensure_fleet(client, long_spec())
    assert not again["changed"] and counter.snapshot()["writes"] == 0
    assert [d["certificate_id"] for d in again["devices"]] == [d["certificate_id"] for d in first["devices"]]

    old = first["devices"][1]
    boto3_iot.update_certificate(certificateId=old["certificate_id"], newStatus="REVOKED")
    recovered = ensure_fleet(client, long_spec())["devices"][1]
    assert recovered["superseded_certificates"] == [old["certificate_id"]]
    assert _principals(boto3_iot, names[1]) == [recovered["certificate_arn"]]

    retired = retire_fleet(client, FleetSpec(validate_devices([dict(thing_name=names[1])]), None, None, pki))
    assert retired["failed_devices"] == [] and retired["devices"][0]["thing_deleted"]
    assert retired["devices"][0]["retired_certificates"] == [recovered["certificate_id"]]
    assert sorted(t["thingName"] for t in boto3_iot.list_things()["things"]) == sorted([names[0], names[2]])


def test_jitp_refuses_a_thing_name_over_64_naming_the_host_before_any_write():
    devices = validate_devices([dict(host="pi-long.lan", thing_name="p" * 65), dict(thing_name="pi-ok")],
                               registration="jitp")
    assert devices[0]["error"].startswith("pi-long.lan: ") and "64" in devices[0]["error"]
    assert "error" not in devices[1]
    assert "error" not in validate_devices([dict(thing_name="p" * 65)])[0]   # api allows 128


def _groups_of(boto3_iot, thing):
    return sorted(g["groupName"] for g in boto3_iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"])


def test_thing_groups_are_made_once_per_run_and_joined_per_device(fleet, boto3_iot, fleet_ca, tmp_path, monkeypatch):
    """Groups named by devices are described (and made, static) once per run, not per device; each
    thing joins its groups and, when created here, the managed group; a dynamic group fails only the
    devices that name it; a rerun writes nothing."""
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    boto3_iot.create_thing_group(thingGroupName="kitchen")   # exists already
    stubbed_dynamic = "dyn"
    from ansible_collections.iotfleet.aws.plugins.module_utils import _fleet

    real_ensure = _fleet.ensure_thing_group

    def ensure_group(client_, name, check_mode=False):   # moto has no dynamic groups: this one answers as one
        outcome = real_ensure(client_, "kitchen" if name == stubbed_dynamic else name, check_mode=check_mode)
        if name == stubbed_dynamic:
            outcome.values["dynamic"] = True
        return outcome

    entries = [dict(host=f"h{i}", thing_name=f"pi-{i}", thing_groups=["kitchen", "site-a"]) for i in range(3)]
    entries.append(dict(host="h-dyn", thing_name="pi-dyn", thing_groups=[stubbed_dynamic]))
    entries.append(dict(host="h-bad", thing_name="pi-bad", thing_groups="kitchen"))

    def group_spec():
        return FleetSpec(validate_devices(entries), ca_cert, ca_key, str(tmp_path / "pki"), policy_name=POLICY)

    monkeypatch.setattr(_fleet, "ensure_thing_group", ensure_group)
    counter.reset()
    predicted = ensure_fleet(client, group_spec(), check_mode=True)
    assert counter.snapshot()["writes"] == 0
    assert sorted(predicted["thing_groups_created"]) == ["iotfleet-managed", "site-a"]
    counter.reset()
    result = ensure_fleet(client, group_spec())
    calls = counter.snapshot()["calls"]
    assert calls["DescribeThingGroup"] == 4 and calls["CreateThingGroup"] == 2   # once per group, not per device
    assert calls["AddThingToThingGroup"] == 9 and "ListThingGroupsForThing" not in calls   # new things: no list
    assert sorted(result["thing_groups_created"]) == ["iotfleet-managed", "site-a"] and result["changed"]
    assert result["failed_devices"] == ["h-dyn", "h-bad"]
    for refused in ("pi-dyn", "pi-bad"):   # refused before any write: no key or certificate made for it
        assert not (tmp_path / "pki" / "devices" / refused).exists()
    by_host = {d["host"]: d for d in result["devices"]}
    assert "h-dyn:" in by_host["h-dyn"]["msg"] and "dynamic" in by_host["h-dyn"]["msg"]
    assert "thing_groups must be a list" in by_host["h-bad"]["msg"]
    for i in range(3):
        assert _groups_of(boto3_iot, f"pi-{i}") == ["iotfleet-managed", "kitchen", "site-a"]
        assert by_host[f"h{i}"]["thing_groups"] == ["iotfleet-managed", "kitchen", "site-a"]
    assert sorted(t["thingName"] for t in boto3_iot.list_things()["things"]) == ["pi-0", "pi-1", "pi-2"]

    counter.reset()
    again = ensure_fleet(client, group_spec())
    assert not again["changed"] and counter.snapshot()["writes"] == 0
    assert counter.snapshot()["calls"]["ListThingGroupsForThing"] == 3   # one read per device with groups

    boto3_iot.remove_thing_from_thing_group(thingGroupName="site-a", thingName="pi-1")
    repaired = ensure_fleet(client, group_spec())
    assert [d["host"] for d in repaired["devices"] if d["changed"]] == ["h1"]
    assert _groups_of(boto3_iot, "pi-1") == ["iotfleet-managed", "kitchen", "site-a"]


def test_an_existing_thing_is_not_marked_managed(fleet, boto3_iot, fleet_ca, tmp_path):
    """Only things this collection creates join the managed group (what prune may retire)."""
    client, counter, spec = fleet
    boto3_iot.create_thing(thingName="pi-0")   # made by someone else before
    result = ensure_fleet(client, spec(2))
    assert result["failed_devices"] == []
    assert _groups_of(boto3_iot, "pi-0") == [] and _groups_of(boto3_iot, "pi-1") == ["iotfleet-managed"]


def test_diff_per_device_before_after_without_secrets_and_nothing_when_unchanged(fleet, boto3_iot, tmp_path):
    client, counter, spec = fleet
    first = ensure_fleet(client, spec(2), diff=True)
    assert [d["before_header"] for d in first["diff"]] == ["pi-0 (thing pi-0)", "pi-1 (thing pi-1)"]
    new = first["diff"][0]
    assert new["before"]["certificate"] is None and new["before"]["thing"] is None
    assert new["after"]["certificate"] == dict(certificate_id=first["devices"][0]["certificate_id"], status="ACTIVE")
    assert new["after"]["thing"] == dict(attributes={"room": "0"}, thing_type=None)
    assert new["after"]["thing_groups"] == ["iotfleet-managed"]
    assert new["after"]["policy_attached"] and new["after"]["thing_principal_attached"]
    assert all("diff" not in d for d in first["devices"])
    text = repr(first["diff"])
    key = (tmp_path / "pki" / "devices" / "pi-0" / "private.key").read_text()
    assert "PRIVATE KEY" not in text and key.splitlines()[1] not in text and "BEGIN" not in text

    assert ensure_fleet(client, spec(2), diff=True)["diff"] == []   # nothing changed: no diff at all

    boto3_iot.update_thing(thingName="pi-1", attributePayload={"attributes": {"room": "moved"}})
    boto3_iot.detach_policy(policyName=POLICY, target=first["devices"][1]["certificate_arn"])
    for check_mode in (True, False):
        changed = ensure_fleet(client, spec(2), diff=True, check_mode=check_mode)["diff"]
        assert len(changed) == 1 and changed[0]["before_header"] == "pi-1 (thing pi-1)"
        assert changed[0]["before"]["thing"]["attributes"] == {"room": "moved"}
        assert changed[0]["after"]["thing"]["attributes"] == {"room": "1"}
        assert changed[0]["before"]["policy_attached"] is False and changed[0]["after"]["policy_attached"] is True
        assert changed[0]["before"]["certificate"] == changed[0]["after"]["certificate"]
    assert "diff" not in ensure_fleet(client, spec(2))   # asked for only with --diff


def test_drift_reports_managed_things_out_of_the_inventory_and_lone_certificates_then_prunes(
        fleet, boto3_iot, fleet_ca, tmp_path):
    """(a) things this collection created that the inventory no longer names, (b) fleet CA
    certificates attached to no thing; not: a thing made by hand, a REVOKED certificate (kept for
    audit), an inventory device's own certificate. The default only reports; prune retires them
    (check mode first: nothing written), and a rerun finds nothing."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import fleet_drift
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    pki = tmp_path / "pki"
    devices = ensure_fleet(client, spec(4))["devices"]
    boto3_iot.create_thing(thingName="by-hand")   # not this collection's
    lone = _x509.issue_certificate(ca_cert, ca_key, "lone", _x509.generate_private_key().public_key())
    lone_id = boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(lone),
                                             caCertificatePem=_x509.certificate_pem(ca_cert),
                                             status="ACTIVE")["certificateId"]
    audit = _x509.issue_certificate(ca_cert, ca_key, "audit", _x509.generate_private_key().public_key())
    boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(audit),
                                   caCertificatePem=_x509.certificate_pem(ca_cert), status="REVOKED")
    # pi-1: its certificate detached by hand (a failed run): provision repairs it, it is no orphan
    boto3_iot.detach_thing_principal(thingName="pi-1", principal=devices[1]["certificate_arn"])
    inventory = ["pi-0", "pi-1", "pi-2", "by-hand"]   # pi-3 left the inventory
    drift_spec = FleetSpec([], ca_cert, None, str(pki))

    counter.reset()
    report = fleet_drift(client, drift_spec, inventory)
    assert report["orphan_things"] == ["pi-3"] and report["orphan_certificates"] == [lone_id]
    assert not report["changed"] and counter.snapshot()["writes"] == 0
    # pages + one ListPrincipalThings per CA certificate no inventory device holds (pi-3's, lone's)
    assert counter.snapshot()["calls"]["ListPrincipalThings"] == 2

    predicted = fleet_drift(client, drift_spec, inventory, prune=True, check_mode=True)
    assert predicted["changed"] and predicted["retired_certificates"] == [lone_id]
    assert counter.snapshot()["writes"] == 0 and (pki / "devices" / "pi-3").exists()

    with pytest.raises(Exception, match="empty inventory"):
        fleet_drift(client, drift_spec, [], prune=True)

    pruned = fleet_drift(client, drift_spec, inventory, prune=True)
    assert pruned["changed"] and pruned["failures"] == []
    assert pruned["devices"][0]["thing_name"] == "pi-3" and pruned["devices"][0]["thing_deleted"]
    assert pruned["devices"][0]["retired_certificates"] == [devices[3]["certificate_id"]]
    assert not (pki / "devices" / "pi-3").exists()
    ids = {c["certificateId"]: c["status"] for c in boto3_iot.list_certificates()["certificates"]}
    assert lone_id not in ids and devices[3]["certificate_id"] not in ids
    assert sorted(ids.values()) == ["ACTIVE", "ACTIVE", "ACTIVE", "REVOKED"]   # pi-0..2 and the audit one
    assert sorted(t["thingName"] for t in boto3_iot.list_things()["things"]) == ["by-hand", "pi-0", "pi-1", "pi-2"]

    again = fleet_drift(client, drift_spec, inventory, prune=True)
    assert not again["changed"] and again["orphan_things"] == [] and again["orphan_certificates"] == []


def test_a_large_fleet_with_thing_groups_reads_memberships_in_pages(fleet, boto3_iot, fleet_ca, tmp_path, monkeypatch):
    """With the registry snapshot (large fleets) the members of the declared groups are read in
    pages once: a rerun lists no device's groups, and a membership removed behind the module's back
    is still repaired."""
    from ansible_collections.iotfleet.aws.plugins.module_utils import _fleet
    monkeypatch.setattr(_fleet, "BULK_READ_MIN_DEVICES", 4)
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    n = 6

    def group_spec():
        devices = validate_devices([dict(thing_name=f"pi-{i}", thing_groups=["site-a"]) for i in range(n)])
        return FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), policy_name=POLICY)

    assert ensure_fleet(client, group_spec())["failed_devices"] == []
    boto3_iot.remove_thing_from_thing_group(thingGroupName="site-a", thingName="pi-4")
    counter.reset()
    again = ensure_fleet(client, group_spec())
    calls = counter.snapshot()["calls"]
    assert [d["thing_name"] for d in again["devices"] if d["changed"]] == ["pi-4"]
    assert "ListThingGroupsForThing" not in calls and calls["ListThingsInThingGroup"] == 1, calls
    assert calls["AddThingToThingGroup"] == 1 and counter.snapshot()["writes"] == 1
    assert _groups_of(boto3_iot, "pi-4") == ["iotfleet-managed", "site-a"]


def test_the_thing_type_is_checked_once_per_run_and_a_bad_one_fails_every_device_before_any_write(
        fleet, fleet_ca, boto3_iot, tmp_path):
    client, counter, spec = fleet
    ca_cert, ca_key = fleet_ca
    pki = tmp_path / "pki"

    def typed(n):
        devices = validate_devices([dict(host=f"pi-{i}.lan", thing_name=f"pi-{i}") for i in range(n)])
        return FleetSpec(devices, ca_cert, ca_key, str(pki), policy_name=POLICY, thing_type="sensor")

    for check_mode in (True, False):
        result = ensure_fleet(client, typed(3), check_mode=check_mode)
        assert result["failed_devices"] == ["pi-0.lan", "pi-1.lan", "pi-2.lan"] and not result["changed"]
        for device in result["devices"]:
            assert device["msg"].startswith(f"{device['host']}: Thing type 'sensor' does not exist")
            assert "pi-0.lan, pi-1.lan, pi-2.lan" in device["msg"]
    assert not (pki / "devices").exists() and boto3_iot.list_things()["things"] == []
    assert counter.snapshot()["calls"].get("DescribeThingType") == 2   # once per run
    assert boto3_iot.list_certificates()["certificates"] == []

    boto3_iot.create_thing_type(thingTypeName="sensor")
    counter.reset()
    result = ensure_fleet(client, typed(3))
    assert result["failed_devices"] == [] and counter.snapshot()["calls"]["DescribeThingType"] == 1
    assert {t["thingTypeName"] for t in boto3_iot.list_things()["things"]} == {"sensor"}

    boto3_iot.deprecate_thing_type(thingTypeName="sensor")
    result = ensure_fleet(client, typed(4))
    assert result["failed_devices"] == ["pi-0.lan", "pi-1.lan", "pi-2.lan", "pi-3.lan"]
    assert "deprecated" in result["devices"][3]["msg"] and not (pki / "devices" / "pi-3").exists()

    with pytest.raises(IoTFleetError, match="Invalid thing type name"):
        ensure_fleet(client, FleetSpec(typed(1).devices, ca_cert, ca_key, str(pki), thing_type="no spaces"))


def test_an_identity_that_cannot_be_made_fails_its_device_alone(fleet, boto3_iot):
    """The identities are made by one thread ahead of the API threads: a device whose key cannot be read
    fails alone, with the reason, before any AWS call for it; the others register."""
    client, _counter, spec = fleet
    first = spec(3)
    damaged = os.path.join(first.pki_dir, "devices", "pi-1")
    os.makedirs(damaged, mode=0o700)
    with open(os.path.join(damaged, "private.key"), "w") as f:
        f.write("not a key\n")
    result = ensure_fleet(client, first)
    assert result["failed_devices"] == ["pi-1"], result
    assert "private key of pi-1" in result["devices"][1]["msg"]
    assert sorted(t["thingName"] for t in boto3_iot.list_things()["things"]) == ["pi-0", "pi-2"]
    assert [r["changed"] for r in result["devices"]] == [True, False, True]


def test_an_account_with_far_more_things_than_the_fleet_is_not_listed_whole(fleet, boto3_iot, monkeypatch):
    """ListThings lists the whole account: past THING_PAGES_PER_DEVICE pages per device the snapshot stops
    reading it and each thing is described instead; the rerun still writes nothing, and a thing changed
    behind the module's back is still repaired."""
    from ansible_collections.iotfleet.aws.plugins.module_utils import _fleet
    client, counter, spec = fleet
    n = _fleet.BULK_READ_MIN_DEVICES
    first = ensure_fleet(client, spec(n), workers=4)
    assert first["failed_devices"] == []
    for i in range(210):   # other things of the account: 260 in all, two pages of 250
        boto3_iot.create_thing(thingName=f"other-{i}")
    counter.reset()
    ensure_fleet(client, spec(n), workers=4)
    pages = counter.snapshot()["calls"]["ListThings"]
    assert pages == 2, pages

    monkeypatch.setattr(_fleet, "THING_PAGES_PER_DEVICE", (pages - 1) / n)   # one page short
    boto3_iot.update_thing(thingName="pi-3", attributePayload={"attributes": {"room": "moved"}})
    counter.reset()
    again = ensure_fleet(client, spec(n), workers=4)
    calls = counter.snapshot()["calls"]
    assert calls["ListThings"] == pages - 1 and calls["DescribeThing"] == n, calls
    assert [d["thing_name"] for d in again["devices"] if d["changed"]] == ["pi-3"]
    assert counter.snapshot()["writes"] == 1   # UpdateThing of pi-3 only
    assert boto3_iot.describe_thing(thingName="pi-3")["attributes"]["room"] == "3"
