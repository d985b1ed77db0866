# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_attachment: ARN validation, the thing-principal decision, and both ensure functions against moto.

moto 5.2.5 does not enforce EXCLUSIVE_THING; the collection's own check is what is tested here.
"""

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_policy_attachment
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_thing_principal
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import thing_principal_action
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import validate_certificate_arn
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import validate_target_arn
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.unit import four_runs

CERT_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
CERT_ARN = f"arn:aws:iot:eu-west-1:123456789012:cert/{CERT_ID}"
GROUP_ARN = "arn:aws:iot:eu-west-1:123456789012:thinggroup/kitchen"
POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}'


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        CERT_ARN,
        f"arn:aws-us-gov:iot:us-gov-west-1:123456789012:cert/{CERT_ID}",
        f"arn:aws-cn:iot:cn-north-1:123456789012:cert/{CERT_ID}",
    ],
)
def test_valid_certificate_arns(arn):
    assert validate_certificate_arn(arn) == arn
    assert validate_target_arn(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "",
        None,
        CERT_ID,
        f"arn:aws:iot:eu-west-1:123456789012:cert/{CERT_ID[:-1]}",
        f"arn:aws:iot:eu-west-1:123456789012:cert/{CERT_ID.upper()}",
        f"arn:aws:iam:eu-west-1:123456789012:cert/{CERT_ID}",
        f"arn:aws:iot:eu-west-1:12345:cert/{CERT_ID}",
        f"arn:aws:iot:eu-west-1:123456789012:cert/{CERT_ID}/x",
        GROUP_ARN,
    ],
)
def test_invalid_certificate_arns(arn):
    with pytest.raises(IoTFleetError, match="expected a certificate ARN"):
        validate_certificate_arn(arn)


def test_thing_group_is_a_policy_target():
    assert validate_target_arn(GROUP_ARN) == GROUP_ARN
    for bad in (
        "arn:aws:iot:eu-west-1:123456789012:thinggroup/has space",
        "arn:aws:iot:eu-west-1:123456789012:thing/kitchen",
        "arn:aws:iot:eu-west-1:123456789012:thinggroup/",
    ):
        with pytest.raises(IoTFleetError, match="Invalid policy target"):
            validate_target_arn(bad)


# --- decision --------------------------------------------------------------------------------


def test_thing_principal_action():
    assert thing_principal_action("t1", [], "present") == "attach"
    assert thing_principal_action("t1", ["t1"], "present") is None
    assert thing_principal_action("t1", ["t2"], "present") == "attach"
    assert thing_principal_action("t1", ["t1"], "present", exclusive=True) is None
    assert thing_principal_action("t1", ["t1"], "absent") == "detach"
    assert thing_principal_action("t1", ["t2"], "absent") is None
    assert thing_principal_action("t1", ["t2"], "absent", exclusive=True) is None


@pytest.mark.parametrize("things", [["t2"], ["t1", "t2"]])
def test_exclusive_refused_when_attached_elsewhere(things):
    with pytest.raises(IoTFleetError, match="also attached to t2"):
        thing_principal_action("t1", things, "present", exclusive=True)


# --- ensure_thing_principal against moto -----------------------------------------------------


@pytest.fixture
def cert_arn(boto3_iot):
    return boto3_iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]


def principal_things(boto3_iot, arn):
    return boto3_iot.list_principal_things(principal=arn)["things"]


def test_thing_principal_four_runs(iot_client, boto3_iot, cert_arn):
    boto3_iot.create_thing(thingName="t1")
    results = four_runs(ensure_thing_principal, iot_client, "t1", cert_arn)
    assert [r.changed for r in results] == [True, True, False, False]
    assert results[1].before["attached"] is False and results[1].after["attached"] is True
    assert results[1].values == dict(thing_name="t1", principal=cert_arn, attached=True)
    assert principal_things(boto3_iot, cert_arn) == ["t1"]

    absent = [
        ensure_thing_principal(iot_client, "t1", cert_arn, state="absent", check_mode=True),
        ensure_thing_principal(iot_client, "t1", cert_arn, state="absent"),
        ensure_thing_principal(iot_client, "t1", cert_arn, state="absent", check_mode=True),
        ensure_thing_principal(iot_client, "t1", cert_arn, state="absent"),
    ]
    assert [r.changed for r in absent] == [True, True, False, False]
    assert principal_things(boto3_iot, cert_arn) == []


def test_check_mode_writes_nothing(iot_client, boto3_iot, cert_arn):
    boto3_iot.create_thing(thingName="t1")
    ensure_thing_principal(iot_client, "t1", cert_arn, check_mode=True)
    assert principal_things(boto3_iot, cert_arn) == []


def test_exclusive_attach_and_refusal(iot_client, boto3_iot, cert_arn):
    boto3_iot.create_thing(thingName="t1")
    boto3_iot.create_thing(thingName="t2")
    assert ensure_thing_principal(iot_client, "t1", cert_arn, exclusive=True).changed
    assert not ensure_thing_principal(iot_client, "t1", cert_arn, exclusive=True).changed
    with pytest.raises(IoTFleetError, match="also attached to t1") as e:
        ensure_thing_principal(iot_client, "t2", cert_arn, exclusive=True)
    assert e.value.kwargs["other_things"] == ["t1"]
    assert principal_things(boto3_iot, cert_arn) == ["t1"]


def test_non_exclusive_may_share(iot_client, boto3_iot, cert_arn):
    boto3_iot.create_thing(thingName="t1")
    boto3_iot.create_thing(thingName="t2")
    ensure_thing_principal(iot_client, "t1", cert_arn)
    assert ensure_thing_principal(iot_client, "t2", cert_arn).changed
    assert sorted(principal_things(boto3_iot, cert_arn)) == ["t1", "t2"]


@pytest.mark.parametrize(
    "thing, principal, message",
    [
        ("has space", CERT_ARN, "Invalid thing name"),
        ("pi.local", CERT_ARN, "Invalid thing name"),
        ("t1", "arn:aws:iot:eu-west-1:123456789012:cert/nothex", "expected a certificate ARN"),
    ],
)
def test_thing_principal_bad_input(iot_client, boto3_iot, thing, principal, message):
    with pytest.raises(IoTFleetError, match=message):
        ensure_thing_principal(iot_client, thing, principal)
    assert boto3_iot.list_things()["things"] == []


# --- ensure_policy_attachment against moto ---------------------------------------------------


def attached(boto3_iot, target):
    return [p["policyName"] for p in boto3_iot.list_attached_policies(target=target)["policies"]]


@pytest.mark.parametrize("kind", ["cert", "group"])
def test_policy_attachment_four_runs(iot_client, boto3_iot, cert_arn, kind):
    boto3_iot.create_policy(policyName="p1", policyDocument=POLICY)
    boto3_iot.create_policy(policyName="other", policyDocument=POLICY)
    target = cert_arn if kind == "cert" else boto3_iot.create_thing_group(thingGroupName="g1")["thingGroupArn"]
    boto3_iot.attach_policy(policyName="other", target=target)

    results = four_runs(ensure_policy_attachment, iot_client, "p1", target)
    assert [r.changed for r in results] == [True, True, False, False]
    assert results[1].before["attached"] is False and results[1].after["attached"] is True
    assert sorted(attached(boto3_iot, target)) == ["other", "p1"]

    absent = [
        ensure_policy_attachment(iot_client, "p1", target, state="absent", check_mode=True),
        ensure_policy_attachment(iot_client, "p1", target, state="absent"),
        ensure_policy_attachment(iot_client, "p1", target, state="absent", check_mode=True),
        ensure_policy_attachment(iot_client, "p1", target, state="absent"),
    ]
    assert [r.changed for r in absent] == [True, True, False, False]
    assert attached(boto3_iot, target) == ["other"]


def test_policy_attachment_check_mode_writes_nothing(iot_client, boto3_iot, cert_arn):
    boto3_iot.create_policy(policyName="p1", policyDocument=POLICY)
    assert ensure_policy_attachment(iot_client, "p1", cert_arn, check_mode=True).changed
    assert attached(boto3_iot, cert_arn) == []


@pytest.mark.parametrize(
    "policy, target, message",
    [
        ("bad name", CERT_ARN, "Invalid policy name"),
        ("p1", "arn:aws:iot:eu-west-1:123456789012:cert/xyz", "Invalid policy target"),
        ("p1", "arn:aws:iot:eu-west-1:123456789012:thing/t1", "Invalid policy target"),
        ("p1", CERT_ARN, "Invalid state"),
    ],
)
def test_policy_attachment_bad_input(iot_client, policy, target, message):
    """Refused before any call: the client is never used (a broken one proves it)."""
    state = "gone" if message == "Invalid state" else "present"

    class NoCalls:
        def __getattr__(self, name):
            raise AssertionError(f"unexpected AWS call {name}")

    with pytest.raises(IoTFleetError, match=message):
        ensure_policy_attachment(NoCalls(), policy, target, state=state)
