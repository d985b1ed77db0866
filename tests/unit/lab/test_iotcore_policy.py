# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the lab's AWS IoT Core policy evaluator (lab/iotcore/policy.py)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lab"))

from iotcore import policy  # noqa: E402

ARN = "arn:aws:iot:us-east-1:123456789012"
SEED = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect",
     "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
     "Resource": ["arn:aws:iot:*:*:topic/$aws/rules/mydata/*", "arn:aws:iot:*:*:topic/test"]},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test"},
]}
THING = {"iot:ClientId": "pi1", "iot:Connection.Thing.ThingName": "pi1", "iot:Connection.Thing.IsAttached": "true"}
DEFAULT_DENY = policy.Decision(False, "no Allow matched (default deny)")


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, condition=None):
    stmt = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition is not None:
        stmt["Condition"] = condition
    return stmt


def allowed(document, action, resource, context=None):
    return policy.evaluate([("p", document)], action, resource, context or {}).allowed


# --- the seed policy -------------------------------------------------------------------------

def test_seed_connect_own_thing_allowed():
    decision = policy.evaluate([("seed", SEED)], "iot:Connect", f"{ARN}:client/pi1", THING)
    assert decision == policy.Decision(True, "allowed by policy seed")


@pytest.mark.parametrize("client, context", [
    ("pi2", THING),                                    # another client id than the thing
    ("pi1", {"iot:ClientId": "pi1"}),                  # client id is not an attached thing
    ("pi1", {"iot:Connection.Thing.ThingName": ""}),   # empty thing name
])
def test_seed_connect_refused(client, context):
    assert policy.evaluate([("seed", SEED)], "iot:Connect", f"{ARN}:client/{client}", context) == DEFAULT_DENY


@pytest.mark.parametrize("action, resource, expected", [
    ("iot:Publish", "topic/test", True),
    ("iot:Receive", "topic/test", True),
    ("iot:Publish", "topic/$aws/rules/mydata/pi1/x", True),   # $aws is no policy variable
    ("iot:Publish", "topic/$aws/rules/other/x", False),
    ("iot:Subscribe", "topicfilter/test", True),
    ("iot:Publish", "topic/other", False),
    ("iot:Receive", "topic/other", False),
    ("iot:Subscribe", "topic/test", False),                   # wrong resource type
    ("iot:Publish", "topicfilter/test", False),
    ("iot:Subscribe", "topicfilter/other", False),
    ("iot:RetainPublish", "topic/test", False),               # action not granted
    ("iot:Publish", "topic/test/sub", False),
    ("iot:Publish", "topic/Test", False),                     # resources are case-sensitive
])
def test_seed_topics(action, resource, expected):
    assert allowed(SEED, action, f"{ARN}:{resource}", THING) is expected


def test_document_as_json_string():
    assert allowed(json.dumps(SEED), "iot:Publish", f"{ARN}:topic/test")


# --- combining policies ------------------------------------------------------------------------

def test_explicit_deny_beats_allow_across_policies():
    deny = doc({"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/test"})
    for policies in ([("seed", SEED), ("deny", deny)], [("deny", deny), ("seed", SEED)]):
        decision = policy.evaluate(policies, "iot:Publish", f"{ARN}:topic/test", THING)
        assert decision == policy.Decision(False, "explicit Deny in policy deny")
    assert policy.evaluate([("seed", SEED), ("deny", deny)], "iot:Receive", f"{ARN}:topic/test", THING).allowed


def test_deny_within_one_policy():
    document = doc(allow("iot:*", "*"), {"Effect": "Deny", "Action": "iot:Connect", "Resource": "*"})
    assert not allowed(document, "iot:Connect", f"{ARN}:client/pi1")
    assert allowed(document, "iot:Publish", f"{ARN}:topic/x")


def test_empty_policy_list_is_default_deny():
    assert policy.evaluate([], "iot:Connect", f"{ARN}:client/pi1", THING) == DEFAULT_DENY


@pytest.mark.parametrize("bad", [
    "{not json", "[]", "null", 42, None, {}, {"Statement": "x"}, {"Statement": [1, "a", None]},
    doc({"Effect": "Allow"}),                                                # no Action, no Resource
    doc({"Effect": "Allow", "Action": "iot:*", "NotAction": "x", "Resource": "*"}),
    doc({"Effect": "Allow", "Action": {"a": 1}, "Resource": "*"}),
    doc({"Effect": "allow", "Action": "*", "Resource": "*"}),                # Effect is case-sensitive
    doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": "x"}),
    doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": ["x"]}}),
    doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"k": {"a": 1}}}}),
])
def test_malformed_document_is_ignored(bad):
    assert policy.evaluate([("bad", bad)], "iot:Publish", f"{ARN}:topic/test", {"k": "v"}) == DEFAULT_DENY
    decision = policy.evaluate([("bad", bad), ("seed", SEED)], "iot:Publish", f"{ARN}:topic/test", {"k": "v"})
    assert decision == policy.Decision(True, "allowed by policy seed")


# --- wildcards ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("iot:*", True), ("*", True), ("iot:Pub*", True), ("iot:?ublish", True), ("IOT:PUBLISH", True),
    ("iot:Publish?", False), ("iot:Sub*", False), ("iot:Pub", False), (["iot:Connect", "iot:Pub*"], True),
])
def test_action_wildcards(pattern, expected):
    assert allowed(doc(allow(pattern, "*")), "iot:Publish", f"{ARN}:topic/a") is expected


@pytest.mark.parametrize("pattern, resource, expected", [
    ("*", "topic/a/b", True),
    ("arn:aws:iot:*:topic/a/*", "topic/a/b/c", True),       # * spans ":" and "/"
    ("arn:aws:iot:us-east-1:123456789012:topic/a/?", "topic/a/b", True),
    ("arn:aws:iot:us-east-1:123456789012:topic/a/?", "topic/a/bc", False),
    ("arn:aws:iot:us-east-1:123456789012:topic/a/?", "topic/a/", False),
    ("arn:aws:iot:*:*:topic/a", "topic/a/b", False),
    ("arn:aws:iot:*:*:topic/A*", "topic/a", False),
    ("arn:aws:iot:*:*:topicfilter/a/+", "topicfilter/a/+", True),   # MQTT + is a plain character
    ("arn:aws:iot:*:*:topicfilter/a/+", "topicfilter/a/b", False),
])
def test_resource_wildcards(pattern, resource, expected):
    assert allowed(doc(allow("iot:*", pattern)), "iot:Subscribe", f"{ARN}:{resource}") is expected


def test_wildcard_in_substituted_client_id_is_literal():
    for name in ("pi*", "pi?"):
        context = {"iot:Connection.Thing.ThingName": name}
        assert allowed(SEED, "iot:Connect", f"{ARN}:client/{name}", context)
        assert not allowed(SEED, "iot:Connect", f"{ARN}:client/pi1", context)
        assert not allowed(SEED, "iot:Connect", f"{ARN}:client/pi12", context)


def test_escape_variables():
    document = doc(allow("iot:Publish", "arn:aws:iot:*:*:topic/a${*}b${?}c${$}"))
    assert allowed(document, "iot:Publish", f"{ARN}:topic/a*b?c$")
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/axbycz")
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/a*b?c")


# --- policy variables --------------------------------------------------------------------------

def test_attribute_variable():
    document = doc(allow("iot:Publish", "arn:aws:iot:*:*:topic/room/${iot:Connection.Thing.Attributes[room]}/*"))
    context = {**THING, "iot:Connection.Thing.Attributes[room]": "kitchen"}
    assert allowed(document, "iot:Publish", f"{ARN}:topic/room/kitchen/temp", context)
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/room/hall/temp", context)
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/room/kitchen/temp", THING)   # no such attribute


def test_common_name_variable():
    document = doc(allow("iot:Connect", "arn:aws:iot:*:*:client/${iot:Certificate.Subject.CommonName}"))
    assert allowed(document, "iot:Connect", f"{ARN}:client/dev-7", {"iot:Certificate.Subject.CommonName": "dev-7"})
    assert not allowed(document, "iot:Connect", f"{ARN}:client/dev-8", {"iot:Certificate.Subject.CommonName": "dev-7"})


def test_variable_default_value_and_multivalued_key():
    document = doc(allow("iot:Publish", "arn:aws:iot:*:*:topic/${iot:Connection.Thing.ThingTypeName, 'none'}"))
    assert allowed(document, "iot:Publish", f"{ARN}:topic/none", {})
    assert allowed(document, "iot:Publish", f"{ARN}:topic/sensor", {"iot:Connection.Thing.ThingTypeName": "sensor"})
    multi = {"iot:Connection.Thing.ThingTypeName": ["a", "b"]}   # not substitutable: the default applies
    assert allowed(document, "iot:Publish", f"{ARN}:topic/none", multi)


def test_unresolved_variable_in_one_resource_entry_leaves_the_others():
    document = doc(allow("iot:Publish", ["arn:aws:iot:*:*:topic/${iot:ClientId}", "arn:aws:iot:*:*:topic/common"]))
    assert allowed(document, "iot:Publish", f"{ARN}:topic/common", {})
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/${{iot:ClientId}}", {})


def test_deny_with_unresolved_variable_does_not_fire():
    deny = doc({"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/${iot:ClientId}"})
    policies = [("seed", SEED), ("deny", deny)]
    assert policy.evaluate(policies, "iot:Publish", f"{ARN}:topic/test", {}).allowed
    assert not policy.evaluate(policies, "iot:Publish", f"{ARN}:topic/test", {"iot:ClientId": "test"}).allowed


def test_not_action_and_not_resource():
    document = doc({"Effect": "Allow", "NotAction": "iot:Connect", "NotResource": "arn:aws:iot:*:*:topic/secret/*"})
    assert allowed(document, "iot:Publish", f"{ARN}:topic/open")
    assert not allowed(document, "iot:Publish", f"{ARN}:topic/secret/x")
    assert not allowed(document, "iot:Connect", f"{ARN}:client/pi1")
    unresolved = doc({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:iot:*:*:topic/${iot:ClientId}"})
    assert not allowed(unresolved, "iot:Publish", f"{ARN}:topic/x", {})   # fails closed
    assert allowed(unresolved, "iot:Publish", f"{ARN}:topic/x", {"iot:ClientId": "y"})


# --- conditions --------------------------------------------------------------------------------

IS_ATTACHED = doc(allow("iot:Connect", "*", {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}))


@pytest.mark.parametrize("context, expected", [
    ({"iot:Connection.Thing.IsAttached": "true"}, True),
    ({"iot:Connection.Thing.IsAttached": "TRUE"}, True),
    ({"iot:Connection.Thing.IsAttached": True}, True),
    ({"iot:Connection.Thing.IsAttached": "false"}, False),
    ({}, False),
    ({"IOT:connection.thing.isattached": "true"}, True),   # condition keys are case-insensitive
])
def test_is_attached_condition(context, expected):
    assert allowed(IS_ATTACHED, "iot:Connect", f"{ARN}:client/pi1", context) is expected


@pytest.mark.parametrize("condition, context, expected", [
    ({"StringEquals": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "pi1"}, True),
    ({"StringEquals": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "PI1"}, False),
    ({"StringEquals": {"iot:ClientId": "pi*"}}, {"iot:ClientId": "pi1"}, False),
    ({"StringEquals": {"iot:ClientId": ["pi2", "pi1"]}}, {"iot:ClientId": "pi1"}, True),        # OR over values
    ({"StringEquals": {"iot:ClientId": "pi1"}}, {}, False),
    ({"StringEqualsIgnoreCase": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "PI1"}, True),
    ({"StringNotEqualsIgnoreCase": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "PI1"}, False),
    ({"StringLike": {"iot:ClientId": "pi-?-*"}}, {"iot:ClientId": "pi-a-bc"}, True),
    ({"StringLike": {"iot:ClientId": "pi-?-*"}}, {"iot:ClientId": "pi-ab-c"}, False),
    ({"StringNotLike": {"iot:ClientId": "test-*"}}, {"iot:ClientId": "pi1"}, True),
    ({"StringNotLike": {"iot:ClientId": "test-*"}}, {"iot:ClientId": "test-1"}, False),
    ({"StringNotEquals": {"iot:ClientId": "pi2"}}, {"iot:ClientId": "pi1"}, True),
    ({"StringNotEquals": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "pi1"}, False),
    ({"StringNotEquals": {"iot:ClientId": ["pi2", "pi1"]}}, {"iot:ClientId": "pi1"}, False),    # NOR
    ({"StringNotEquals": {"iot:ClientId": "pi1"}}, {}, True),              # IAM: negated + missing key
    ({"StringEqualsIfExists": {"iot:ClientId": "pi1"}}, {}, True),
    ({"StringEqualsIfExists": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "pi1"}, True),
    ({"StringEqualsIfExists": {"iot:ClientId": "pi1"}}, {"iot:ClientId": "pi2"}, False),
    ({"Null": {"iot:Connection.Thing.ThingName": "true"}}, {}, True),
    ({"Null": {"iot:Connection.Thing.ThingName": "true"}}, THING, False),
    ({"Null": {"iot:Connection.Thing.ThingName": "false"}}, THING, True),
    ({"Null": {"iot:Connection.Thing.ThingName": False}}, {}, False),
    ({"StringEquals": {"iot:ClientId": "${iot:Connection.Thing.ThingName}"}}, THING, True),
    ({"StringEquals": {"iot:ClientId": "${iot:Connection.Thing.ThingName}"}}, {**THING, "iot:ClientId": "x"}, False),
    ({"StringNotEquals": {"iot:ClientId": "${iot:Connection.Thing.ThingName}"}}, {"iot:ClientId": "x"}, False),
    ({"StringLike": {"iot:ClientId": "${iot:Connection.Thing.ThingName}"}},
     {"iot:ClientId": "pi1", "iot:Connection.Thing.ThingName": "p*"}, False),     # substituted * is literal
    ({"ArnLike": {"aws:SourceArn": "arn:aws:iot:*:*:thing/*"}}, {"aws:SourceArn": f"{ARN}:thing/pi1"}, True),
    ({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.1.0/24"]}}, {"aws:SourceIp": "192.168.1.7"}, True),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "192.168.1.7"}, False),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "not-an-ip"}, False),
    ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "192.168.1.7"}, True),
    ({"IpAddress": {"aws:SourceIp": "::1/128"}}, {"aws:SourceIp": "::1"}, True),
    ({"NumericLessThan": {"k": "10"}}, {"k": 3}, True),
    ({"NumericGreaterThanEquals": {"k": 10}}, {"k": "3"}, False),
    ({"NumericEquals": {"k": "1"}}, {"k": "x"}, False),
    ({"ForAnyValue:StringEquals": {"k": ["a", "b"]}}, {"k": ["c", "b"]}, True),
    ({"ForAnyValue:StringEquals": {"k": ["a", "b"]}}, {}, False),
    ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a", "b"]}, True),
    ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a", "c"]}, False),
    ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {}, True),
    ({"Bool": {"iot:Connection.Thing.IsAttached": "true"},                          # AND across operators
      "StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}},
     {**THING, "iot:Connection.Thing.ThingTypeName": "cam"}, False),
    ({"StringEquals": {"iot:ClientId": "pi1", "iot:Connection.Thing.ThingName": "pi1"}}, THING, True),  # AND keys
    ({"StringEquals": {"iot:ClientId": "pi1", "iot:Connection.Thing.ThingName": "pi2"}}, THING, False),
    ({"NotIpAddress": {"aws:SourceIp": "not-a-cidr"}}, {"aws:SourceIp": "10.0.0.1"}, False),   # invalid: fails closed
    ({"NumericNotEquals": {"k": "x"}}, {"k": "1"}, False),
])
def test_conditions(condition, context, expected):
    assert allowed(doc(allow("iot:Connect", "*", condition)), "iot:Connect", f"{ARN}:client/pi1", context) is expected


@pytest.mark.parametrize("operator", ["DateLessThan", "StringEqualz", "Bogus:StringEquals", "NullIfExists"])
def test_unknown_operator_makes_the_statement_not_apply(operator):
    condition = {operator: {"iot:ClientId": "pi1"}}
    assert not allowed(doc(allow("iot:Connect", "*", condition)), "iot:Connect", f"{ARN}:client/pi1", THING)
    deny = doc({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition})
    assert policy.evaluate([("seed", SEED), ("deny", deny)], "iot:Connect", f"{ARN}:client/pi1", THING).allowed


def test_deny_with_negated_condition_on_missing_key_fires():
    deny = doc({"Effect": "Deny", "Action": "iot:Connect", "Resource": "*",
                "Condition": {"StringNotEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "sensor"}}})
    everyone = doc(allow("iot:Connect", "*"))
    policies = [("all", everyone), ("deny", deny)]
    assert not policy.evaluate(policies, "iot:Connect", f"{ARN}:client/pi1", {}).allowed
    sensor = {"iot:Connection.Thing.ThingTypeName": "sensor"}
    assert policy.evaluate(policies, "iot:Connect", f"{ARN}:client/pi1", sensor).allowed
