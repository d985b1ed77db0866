# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT topic rules: validation, normalisation and ensure/remove.

Actions are given in boto3's shape, as-is (``[{"republish": {"topic": ..., "roleArn": ...}}]``):
AWS action keys are camelCase and no conversion is made.

A rule is compared on what the user declares, normalised: sql, description, awsIotSqlVersion,
ruleDisabled, actions and errorAction. Inside an action, keys that the user did not declare are
not compared (AWS fills in defaults such as ``qos``); createdAt and ruleArn are never compared.
"""

import copy
import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome

RULE_NAME_RE = re.compile(r"^[a-zA-Z0-9_]{1,128}$")
DEFAULT_SQL_VERSION = "2016-03-23"
SQL_VERSIONS = ("2015-10-08", "2016-03-23", "beta")
MAX_ACTIONS = 10


def validate_rule_name(name):
    if not isinstance(name, str) or not RULE_NAME_RE.match(name):
        raise IoTFleetError(
            f"Invalid topic rule name {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9_] "
            "(no dashes, dots or spaces)."
        )
    return name


def _strip_none(value):
    """Drop None values from dicts, recursively (an unset key is not a declared value)."""
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def validate_action(action, what="action"):
    if not isinstance(action, dict) or len(action) != 1:
        raise IoTFleetError(
            f"Each topic rule {what} must be a dict with exactly one key, the action type in boto3's "
            f"camelCase (for example republish, s3, lambda, dynamoDBv2), got {action!r}."
        )
    kind, params = next(iter(action.items()))
    if not isinstance(params, dict):
        raise IoTFleetError(f"The parameters of the topic rule {what} {kind!r} must be a dict.")
    return _strip_none(action)


def desired_rule(sql, description=None, sql_version=None, actions=None, error_action=None, enabled=True):
    """The normalised rule payload the user declares (boto3 ``topicRulePayload`` keys)."""
    if not isinstance(sql, str) or not sql.strip():
        raise IoTFleetError("A topic rule needs a non-empty sql statement.")
    sql_version = sql_version or DEFAULT_SQL_VERSION
    if sql_version not in SQL_VERSIONS:
        raise IoTFleetError(f"Invalid sql_version {sql_version!r}: use one of {', '.join(SQL_VERSIONS)}.")
    actions = actions or []
    if not isinstance(actions, list):
        raise IoTFleetError("Topic rule actions must be a list of dicts.")
    if len(actions) > MAX_ACTIONS:
        raise IoTFleetError(f"A topic rule can have at most {MAX_ACTIONS} actions, {len(actions)} were given.")
    rule = dict(
        sql=sql,
        description=description or "",
        awsIotSqlVersion=sql_version,
        ruleDisabled=not enabled,
        actions=[validate_action(a) for a in actions],
        errorAction=validate_action(error_action, "error action") if error_action else None,
    )
    return rule


def current_rule(get_topic_rule_answer):
    """The normalised payload of a ``get_topic_rule`` answer (no createdAt, ruleArn, ruleName)."""
    rule = get_topic_rule_answer["rule"]
    return dict(
        sql=rule.get("sql"),
        description=rule.get("description") or "",
        awsIotSqlVersion=rule.get("awsIotSqlVersion") or DEFAULT_SQL_VERSION,
        ruleDisabled=bool(rule.get("ruleDisabled")),
        actions=[_strip_none(a) for a in rule.get("actions") or []],
        errorAction=_strip_none(rule.get("errorAction")) or None,
    )


def declared_match(desired, current):
    """True when everything ``desired`` declares is in ``current`` (dicts: subset; lists: same length)."""
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return False
        return all(k in current and declared_match(v, current[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(current, list) or len(desired) != len(current):
            return False
        return all(declared_match(d, c) for d, c in zip(desired, current))
    return desired == current


def rule_differences(desired, current):
    """The keys of the rule payload that differ (a set; ruleDisabled included)."""
    diffs = set()
    for key in ("sql", "description", "awsIotSqlVersion", "ruleDisabled"):
        if desired[key] != current[key]:
            diffs.add(key)
    if not declared_match(desired["actions"], current["actions"]):
        diffs.add("actions")
    if desired["errorAction"] is None:
        if current["errorAction"]:
            diffs.add("errorAction")
    elif not declared_match(desired["errorAction"], current["errorAction"]):
        diffs.add("errorAction")
    return diffs


def payload(rule):
    """A boto3 ``topicRulePayload`` from a normalised rule."""
    result = copy.deepcopy(rule)
    if not result.get("errorAction"):
        result.pop("errorAction", None)
    return result


def _values(name, arn, rule):
    return dict(rule_name=name, rule_arn=arn, rule=rule)


def ensure_topic_rule(
    client,
    name,
    sql,
    description=None,
    sql_version=None,
    actions=None,
    error_action=None,
    enabled=True,
    check_mode=False,
):
    """Make the topic rule exist as declared: create, replace (only on a difference) or enable/disable."""
    validate_rule_name(name)
    desired = desired_rule(sql, description, sql_version, actions, error_action, enabled)
    answer = client.get("get_topic_rule", ruleName=name)
    if answer is None:
        if not check_mode:
            client.call("create_topic_rule", ruleName=name, topicRulePayload=payload(desired))
            answer = client.get("get_topic_rule", ruleName=name)
        arn = answer.get("ruleArn") if answer else None
        return Outcome(True, before={}, after=desired, **_values(name, arn, desired))

    current = current_rule(answer)
    arn = answer.get("ruleArn")
    diffs = rule_differences(desired, current)
    if not diffs:
        return Outcome(False, before=current, after=current, **_values(name, arn, current))
    if not check_mode:
        if diffs == {"ruleDisabled"}:
            operation = "disable_topic_rule" if desired["ruleDisabled"] else "enable_topic_rule"
            client.call(operation, ruleName=name)
        else:
            client.call("replace_topic_rule", ruleName=name, topicRulePayload=payload(desired))
    return Outcome(True, before=current, after=desired, **_values(name, arn, desired))


def remove_topic_rule(client, name, check_mode=False):
    validate_rule_name(name)
    answer = client.get("get_topic_rule", ruleName=name)
    if answer is None:
        return Outcome(False, before={}, after={}, rule_name=name, rule_arn=None, rule={})
    current = current_rule(answer)
    if not check_mode:
        client.delete("delete_topic_rule", ruleName=name)
    return Outcome(True, before=current, after={}, rule_name=name, rule_arn=answer.get("ruleArn"), rule={})


def run_topic_rule(client, *, name, state="present", check_mode=False, sql=None, **options):
    """What ``iot_topic_rule`` does: :func:`ensure_topic_rule` (``options``: its keywords) or
    :func:`remove_topic_rule` (which ignores them)."""
    validate_rule_name(name)
    if state == "absent":
        return remove_topic_rule(client, name, check_mode=check_mode)
    if sql is None:
        raise IoTFleetError("state=present needs sql.")
    return ensure_topic_rule(client, name, sql, check_mode=check_mode, **options)
