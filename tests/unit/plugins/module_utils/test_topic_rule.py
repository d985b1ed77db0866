# -*- coding: utf-8 -*-
"""Topic rules: pure normalisation/comparison with plain dicts, validation, ensure/remove against moto."""

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _topic_rule
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.recorders import NoCalls

ROLE = "arn:aws:iam::123456789012:role/iot-republish"
ACTIONS = [{"republish": {"topic": "fleet/out", "roleArn": ROLE}}]
SQL = "SELECT * FROM 'data/#'"


def rule(boto3_iot, name):
    return boto3_iot.get_topic_rule(ruleName=name)["rule"]


# --- pure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["my-data", "my data", "my.data", "x" * 129, "", None])
def test_bad_rule_names(name):
    with pytest.raises(IoTFleetError, match="Invalid topic rule name"):
        _topic_rule.run_topic_rule(NoCalls(), name=name, sql=SQL)
    with pytest.raises(IoTFleetError, match="Invalid topic rule name"):
        _topic_rule.run_topic_rule(NoCalls(), name=name, state="absent")


def test_good_rule_name_edges():
    assert _topic_rule.validate_rule_name("mydata") == "mydata"
    assert _topic_rule.validate_rule_name("A_1" + "x" * 125)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(sql=""), "non-empty sql"),
        (dict(sql=SQL, sql_version="2020-01-01"), "sql_version"),
        (dict(sql=SQL, actions=[{"republish": {}, "s3": {}}]), "exactly one key"),
        (dict(sql=SQL, actions=["republish"]), "exactly one key"),
        (dict(sql=SQL, actions=[{"republish": "x"}]), "must be a dict"),
        (dict(sql=SQL, actions=ACTIONS * 11), "at most 10"),
        (dict(sql=SQL, error_action={"a": {}, "b": {}}), "exactly one key"),
    ],
)
def test_bad_payload_fails_before_any_call(kwargs, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _topic_rule.ensure_topic_rule(NoCalls(), "mydata", **kwargs)


def test_present_needs_sql():
    with pytest.raises(IoTFleetError, match="needs sql"):
        _topic_rule.run_topic_rule(NoCalls(), name="mydata")


def test_desired_rule_defaults():
    assert _topic_rule.desired_rule(SQL) == {
        "sql": SQL,
        "description": "",
        "awsIotSqlVersion": "2016-03-23",
        "ruleDisabled": False,
        "actions": [],
        "errorAction": None,
    }


def test_current_rule_ignores_generated_fields():
    answer = {
        "ruleArn": "arn:aws:iot:us-east-1:123456789012:rule/mydata",
        "rule": {
            "ruleName": "mydata",
            "sql": SQL,
            "createdAt": "2026-01-01",
            "actions": ACTIONS,
            "ruleDisabled": False,
            "awsIotSqlVersion": "2016-03-23",
            "errorAction": {},
        },
    }
    current = _topic_rule.current_rule(answer)
    assert current == _topic_rule.desired_rule(SQL, actions=ACTIONS)
    assert _topic_rule.rule_differences(_topic_rule.desired_rule(SQL, actions=ACTIONS), current) == set()


def test_declared_match_ignores_aws_defaults_but_not_values():
    current = [{"republish": {"topic": "fleet/out", "roleArn": ROLE, "qos": 0}}]
    assert _topic_rule.declared_match(ACTIONS, current)
    assert not _topic_rule.declared_match([{"republish": {"topic": "other", "roleArn": ROLE}}], current)
    assert not _topic_rule.declared_match(ACTIONS + ACTIONS, current)
    assert not _topic_rule.declared_match([{"s3": {"roleArn": ROLE}}], current)


def test_rule_differences():
    base = _topic_rule.desired_rule(SQL, actions=ACTIONS)
    assert _topic_rule.rule_differences(_topic_rule.desired_rule(SQL, actions=ACTIONS, enabled=False), base) == {
        "ruleDisabled"
    }
    assert _topic_rule.rule_differences(_topic_rule.desired_rule("SELECT 1 FROM 'x'", actions=ACTIONS), base) == {"sql"}
    with_error = _topic_rule.desired_rule(SQL, actions=ACTIONS, error_action=ACTIONS[0])
    assert _topic_rule.rule_differences(with_error, base) == {"errorAction"}
    assert _topic_rule.rule_differences(base, with_error) == {"errorAction"}


# --- against moto -----------------------------------------------------------------------------


def test_create_check_real_idempotent(iot_client, boto3_iot):
    out = _topic_rule.ensure_topic_rule(iot_client, "mydata", SQL, actions=ACTIONS, check_mode=True)
    assert out.changed and out.values["rule_arn"] is None
    assert boto3_iot.list_topic_rules()["rules"] == []

    out = _topic_rule.ensure_topic_rule(iot_client, "mydata", SQL, actions=ACTIONS, description="ingest")
    assert out.changed and out.values["rule_arn"].endswith(":rule/mydata")
    stored = rule(boto3_iot, "mydata")
    assert stored["sql"] == SQL and stored["actions"] == ACTIONS and stored["description"] == "ingest"
    assert stored["ruleDisabled"] is False

    for check_mode in (True, False):
        out = _topic_rule.ensure_topic_rule(
            iot_client, "mydata", SQL, actions=ACTIONS, description="ingest", check_mode=check_mode
        )
        assert not out.changed
        assert out.before == out.after


def test_replace_only_on_difference(iot_client, boto3_iot):
    _topic_rule.ensure_topic_rule(iot_client, "r1", SQL, actions=ACTIONS)
    new_sql = "SELECT temperature FROM 'data/#'"
    out = _topic_rule.ensure_topic_rule(iot_client, "r1", new_sql, actions=ACTIONS, check_mode=True)
    assert out.changed and rule(boto3_iot, "r1")["sql"] == SQL
    out = _topic_rule.ensure_topic_rule(iot_client, "r1", new_sql, actions=ACTIONS)
    assert out.changed and out.before["sql"] == SQL and out.after["sql"] == new_sql
    assert rule(boto3_iot, "r1")["sql"] == new_sql
    assert not _topic_rule.ensure_topic_rule(iot_client, "r1", new_sql, actions=ACTIONS).changed

    out = _topic_rule.ensure_topic_rule(iot_client, "r1", new_sql, actions=ACTIONS, error_action=ACTIONS[0])
    assert out.changed and rule(boto3_iot, "r1")["errorAction"] == ACTIONS[0]
    out = _topic_rule.ensure_topic_rule(iot_client, "r1", new_sql, actions=ACTIONS)
    assert out.changed and not rule(boto3_iot, "r1").get("errorAction")


def test_enable_disable(iot_client, boto3_iot):
    _topic_rule.ensure_topic_rule(iot_client, "r2", SQL, actions=ACTIONS)
    out = _topic_rule.ensure_topic_rule(iot_client, "r2", SQL, actions=ACTIONS, enabled=False)
    assert out.changed and rule(boto3_iot, "r2")["ruleDisabled"] is True
    assert not _topic_rule.ensure_topic_rule(iot_client, "r2", SQL, actions=ACTIONS, enabled=False).changed
    out = _topic_rule.ensure_topic_rule(iot_client, "r2", SQL, actions=ACTIONS, enabled=True)
    assert out.changed and rule(boto3_iot, "r2")["ruleDisabled"] is False


def test_create_disabled(iot_client, boto3_iot):
    _topic_rule.ensure_topic_rule(iot_client, "r3", SQL, enabled=False)
    assert rule(boto3_iot, "r3")["ruleDisabled"] is True
    assert not _topic_rule.ensure_topic_rule(iot_client, "r3", SQL, enabled=False).changed


def test_remove(iot_client, boto3_iot):
    _topic_rule.ensure_topic_rule(iot_client, "r4", SQL, actions=ACTIONS)
    out = _topic_rule.remove_topic_rule(iot_client, "r4", check_mode=True)
    assert out.changed and out.before["sql"] == SQL
    assert rule(boto3_iot, "r4")
    assert _topic_rule.remove_topic_rule(iot_client, "r4").changed
    assert boto3_iot.list_topic_rules()["rules"] == []
    assert not _topic_rule.remove_topic_rule(iot_client, "r4", check_mode=True).changed
    assert not _topic_rule.remove_topic_rule(iot_client, "r4").changed
