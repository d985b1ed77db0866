# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_policy: validation, normalised comparison, version pruning, ensure_policy against moto."""

import json

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import MAX_POLICY_VERSIONS
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import ensure_policy
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import parse_policy_document
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import policy_differs
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import tag_changes
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import validate_policy_name
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import validate_tags
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import version_to_prune


def doc(*actions, resource="*"):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p", "fleet-device", "a_b+c=d,e.f@g-h", "x" * 128])
def test_valid_policy_names(name):
    assert validate_policy_name(name) == name


@pytest.mark.parametrize("name", ["", "with space", "x" * 129, "slash/name", "ünicode", None, 5])
def test_invalid_policy_names(name):
    with pytest.raises(IoTFleetError, match="Invalid policy name"):
        validate_policy_name(name)


def test_parse_document_from_dict_and_text():
    assert parse_policy_document(doc("iot:Connect")) == doc("iot:Connect")
    assert parse_policy_document(json.dumps(doc("iot:Connect"))) == doc("iot:Connect")


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"Statement": [', "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"Version": "2012-10-17"}', "no 'Statement'"),
        (42, "must be a dict or a JSON string"),
    ],
)
def test_parse_document_refuses(bad, message):
    with pytest.raises(IoTFleetError, match=message):
        parse_policy_document(bad)


# --- comparison ------------------------------------------------------------------------------


def test_same_document_other_order_is_equal():
    a = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/test"},
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        ],
    }
    b = {
        "Statement": [
            {"Resource": "*", "Action": ["iot:Connect"], "Effect": "Allow"},
            {"Resource": ["arn:aws:iot:*:*:topic/test"], "Action": ["iot:Receive", "iot:Publish"], "Effect": "Allow"},
        ],
        "Version": "2012-10-17",
    }
    assert not policy_differs(a, b)


def test_changed_action_differs():
    assert policy_differs(doc("iot:Connect"), doc("iot:Connect", "iot:Publish"))
    assert policy_differs(doc("iot:Connect"), doc("iot:Connect", resource="arn:aws:iot:*:*:client/x"))


# --- pruning decision ------------------------------------------------------------------------


def versions(ids, default):
    return [{"versionId": str(i), "isDefaultVersion": str(i) == str(default)} for i in ids]


def test_no_prune_under_the_cap():
    assert version_to_prune(versions([1, 2, 3, 4], default=4)) is None


def test_prune_oldest_non_default_at_the_cap():
    assert version_to_prune(versions([1, 2, 3, 4, 5], default=5)) == "1"


def test_prune_never_the_default_even_when_oldest():
    assert version_to_prune(versions([1, 2, 3, 4, 5], default=1)) == "2"


def test_prune_compares_ids_as_numbers():
    assert version_to_prune(versions([9, 10, 11, 12, 13], default=13)) == "9"
    assert version_to_prune(versions([12, 10, 11, 9, 13], default=9)) == "10"


def test_prune_nothing_when_all_default():
    assert version_to_prune([{"versionId": "1", "isDefaultVersion": True}], cap=1) is None


# --- ensure_policy against moto --------------------------------------------------------------


def default_document(boto3_iot, name):
    return json.loads(boto3_iot.get_policy(policyName=name)["policyDocument"])


def test_create_check_mode_writes_nothing(iot_client, boto3_iot):
    out = ensure_policy(iot_client, "p1", doc("iot:Connect"), check_mode=True)
    assert out.changed
    assert out.after["policy_document"] == doc("iot:Connect")
    assert boto3_iot.list_policies()["policies"] == []


def test_create_then_idempotent(iot_client, boto3_iot):
    out = ensure_policy(iot_client, "p1", json.dumps(doc("iot:Connect")))
    assert out.changed
    assert out.values["policy_arn"].endswith(":policy/p1")
    assert out.values["default_version_id"] == "1"
    assert out.values["policy_document"] == doc("iot:Connect")
    assert default_document(boto3_iot, "p1") == doc("iot:Connect")

    again = ensure_policy(iot_client, "p1", doc("iot:Connect"))
    assert not again.changed
    assert again.before == again.after
    assert again.values["default_version_id"] == "1"
    # reordered but equal: still no change
    reordered = {"Statement": doc("iot:Connect")["Statement"], "Version": "2012-10-17"}
    assert not ensure_policy(iot_client, "p1", reordered).changed
    assert len(boto3_iot.list_policy_versions(policyName="p1")["policyVersions"]) == 1


def test_change_creates_default_version(iot_client, boto3_iot):
    ensure_policy(iot_client, "p1", doc("iot:Connect"))
    checked = ensure_policy(iot_client, "p1", doc("iot:Publish"), check_mode=True)
    assert checked.changed
    assert default_document(boto3_iot, "p1") == doc("iot:Connect")

    out = ensure_policy(iot_client, "p1", doc("iot:Publish"))
    assert out.changed
    assert out.before["policy_document"] == doc("iot:Connect")
    assert out.after["policy_document"] == doc("iot:Publish")
    assert out.values["default_version_id"] == "2"
    assert default_document(boto3_iot, "p1") == doc("iot:Publish")
    assert boto3_iot.get_policy(policyName="p1")["defaultVersionId"] == "2"


def test_cap_prunes_oldest_non_default(iot_client, boto3_iot):
    ensure_policy(iot_client, "p1", doc("iot:A0"))
    for i in range(1, MAX_POLICY_VERSIONS):
        ensure_policy(iot_client, "p1", doc(f"iot:A{i}"))
    listed = boto3_iot.list_policy_versions(policyName="p1")["policyVersions"]
    assert sorted(v["versionId"] for v in listed) == ["1", "2", "3", "4", "5"]

    out = ensure_policy(iot_client, "p1", doc("iot:A5"))
    assert out.changed
    assert out.values["pruned_versions"] == ["1"]
    listed = boto3_iot.list_policy_versions(policyName="p1")["policyVersions"]
    assert sorted(int(v["versionId"]) for v in listed) == [2, 3, 4, 5, 6]
    assert [v["versionId"] for v in listed if v["isDefaultVersion"]] == ["6"]
    assert default_document(boto3_iot, "p1") == doc("iot:A5")

    # once more: the next oldest goes
    ensure_policy(iot_client, "p1", doc("iot:A6"))
    listed = boto3_iot.list_policy_versions(policyName="p1")["policyVersions"]
    assert sorted(int(v["versionId"]) for v in listed) == [3, 4, 5, 6, 7]


def test_cap_keeps_an_old_default(iot_client, boto3_iot):
    """The default may be the oldest version (set by someone else): it is never pruned."""
    ensure_policy(iot_client, "p1", doc("iot:A0"))
    for i in range(1, MAX_POLICY_VERSIONS):
        boto3_iot.create_policy_version(
            policyName="p1", policyDocument=json.dumps(doc(f"iot:A{i}")), setAsDefault=False
        )
    out = ensure_policy(iot_client, "p1", doc("iot:New"))
    assert out.values["pruned_versions"] == ["2"]
    listed = boto3_iot.list_policy_versions(policyName="p1")["policyVersions"]
    assert sorted(int(v["versionId"]) for v in listed) == [1, 3, 4, 5, 6]
    assert default_document(boto3_iot, "p1") == doc("iot:New")


def test_absent_missing_is_unchanged(iot_client):
    out = ensure_policy(iot_client, "nope", state="absent")
    assert not out.changed


def test_absent_deletes_all_versions(iot_client, boto3_iot):
    ensure_policy(iot_client, "p1", doc("iot:A0"))
    ensure_policy(iot_client, "p1", doc("iot:A1"))
    assert ensure_policy(iot_client, "p1", state="absent", check_mode=True).changed
    assert boto3_iot.get_policy(policyName="p1")
    out = ensure_policy(iot_client, "p1", state="absent")
    assert out.changed
    assert out.before["policy_document"] == doc("iot:A1")
    assert out.after == {}
    assert boto3_iot.list_policies()["policies"] == []
    assert not ensure_policy(iot_client, "p1", state="absent").changed


def test_absent_while_attached_refuses_then_detaches(iot_client, boto3_iot):
    ensure_policy(iot_client, "p1", doc("iot:Connect"))
    cert_arn = boto3_iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    group_arn = boto3_iot.create_thing_group(thingGroupName="g1")["thingGroupArn"]
    boto3_iot.attach_policy(policyName="p1", target=cert_arn)
    boto3_iot.attach_policy(policyName="p1", target=group_arn)

    with pytest.raises(IoTFleetError, match="attached to 2 target") as e:
        ensure_policy(iot_client, "p1", state="absent")
    assert "detach=true" in e.value.message
    assert sorted(e.value.kwargs["targets"]) == sorted([cert_arn, group_arn])
    assert boto3_iot.get_policy(policyName="p1")

    checked = ensure_policy(iot_client, "p1", state="absent", detach=True, check_mode=True)
    assert checked.changed and sorted(checked.values["detached_targets"]) == sorted([cert_arn, group_arn])
    assert len(boto3_iot.list_targets_for_policy(policyName="p1")["targets"]) == 2

    out = ensure_policy(iot_client, "p1", state="absent", detach=True)
    assert out.changed
    assert boto3_iot.list_policies()["policies"] == []
    assert boto3_iot.list_attached_policies(target=cert_arn)["policies"] == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="bad name", policy_document={"Statement": []}), "Invalid policy name"),
        (dict(name="p1", policy_document='{"Statement": '), "not valid JSON"),
        (dict(name="p1", policy_document=None), "policy_document is required"),
        (dict(name="p1", policy_document={"Statement": []}, state="gone"), "Invalid state"),
    ],
)
def test_bad_input_writes_nothing(iot_client, boto3_iot, kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(IoTFleetError, match=message):
        ensure_policy(iot_client, name, **kwargs)
    assert boto3_iot.list_policies()["policies"] == []


# --- tags ------------------------------------------------------------------------------------
# moto 5.2.5 does not implement IoT tag_resource / untag_resource / list_tags_for_resource, so
# these tests replace the IoTClient with a MagicMock (reads answered from dicts, writes recorded).


def test_tag_changes_pure():
    assert tag_changes({"a": "1"}, None) == ({}, [])
    assert tag_changes({"a": "1", "aws:x": "y"}, {"a": "1"}) == ({}, [])
    assert tag_changes({"a": "1", "b": "2"}, {"a": "9"}) == ({"a": "9"}, ["b"])
    assert tag_changes({"a": "1", "b": "2"}, {"a": "9"}, purge_tags=False) == ({"a": "9"}, [])


@pytest.mark.parametrize("tags", [["a"], {"aws:x": "1"}, {"": "1"}, {"k": "v" * 257}, {"k": None}])
def test_invalid_tags(tags):
    with pytest.raises(IoTFleetError):
        validate_tags(tags)


def fake_client(document, tags):
    from unittest.mock import MagicMock

    client = MagicMock()
    client.get.return_value = {
        "policyName": "p1",
        "policyArn": "arn:aws:iot:us-east-1:123456789012:policy/p1",
        "policyDocument": json.dumps(document),
        "defaultVersionId": "1",
    }
    lists = {
        "list_tags_for_resource": [{"Key": k, "Value": v} for k, v in tags.items()],
        "list_policy_versions": [{"versionId": "1", "isDefaultVersion": True}],
    }
    client.paginate.side_effect = lambda operation, key, **kwargs: lists[operation]
    client.call.return_value = {"policyVersionId": "2"}
    return client


def writes(client):
    return [(c.args[0], c.kwargs) for c in client.call.call_args_list]


def test_tags_unset_are_not_read():
    client = fake_client(doc("iot:Connect"), {"a": "1"})
    out = ensure_policy(client, "p1", doc("iot:Connect"))
    assert not out.changed
    assert "tags" not in out.values
    assert [c.args[0] for c in client.paginate.call_args_list] == []


def test_same_tags_unchanged():
    client = fake_client(doc("iot:Connect"), {"a": "1", "aws:owner": "x"})
    out = ensure_policy(client, "p1", doc("iot:Connect"), tags={"a": "1"})
    assert not out.changed
    assert writes(client) == []


def test_tags_change_only_check_mode_then_real():
    client = fake_client(doc("iot:Connect"), {"a": "1", "b": "2"})
    checked = ensure_policy(client, "p1", doc("iot:Connect"), tags={"a": "9"}, check_mode=True)
    assert checked.changed and writes(client) == []
    assert checked.before["tags"] == {"a": "1", "b": "2"}
    assert checked.after["tags"] == {"a": "9"}

    out = ensure_policy(client, "p1", doc("iot:Connect"), tags={"a": "9"})
    arn = "arn:aws:iot:us-east-1:123456789012:policy/p1"
    assert out.changed and out.values["tags"] == {"a": "9"}
    assert writes(client) == [
        ("untag_resource", dict(resourceArn=arn, tagKeys=["b"])),
        ("tag_resource", dict(resourceArn=arn, tags=[{"Key": "a", "Value": "9"}])),
    ]


def test_tags_without_purge_keep_others():
    client = fake_client(doc("iot:Connect"), {"b": "2"})
    out = ensure_policy(client, "p1", doc("iot:Connect"), tags={"a": "1"}, purge_tags=False)
    assert out.values["tags"] == {"a": "1", "b": "2"}
    assert [w[0] for w in writes(client)] == ["tag_resource"]


def test_tags_and_document_change_together():
    client = fake_client(doc("iot:Connect"), {})
    out = ensure_policy(client, "p1", doc("iot:Publish"), tags={"a": "1"})
    assert out.changed
    assert [w[0] for w in writes(client)] == ["tag_resource", "create_policy_version"]
    assert out.after == dict(policy_name="p1", policy_document=doc("iot:Publish"), tags={"a": "1"})


def test_create_with_tags(iot_client, boto3_iot):
    """moto accepts tags on create_policy (it cannot list them back): the policy is created."""
    out = ensure_policy(iot_client, "p1", doc("iot:Connect"), tags={"a": "1"})
    assert out.changed and out.values["tags"] == {"a": "1"}
    assert default_document(boto3_iot, "p1") == doc("iot:Connect")
