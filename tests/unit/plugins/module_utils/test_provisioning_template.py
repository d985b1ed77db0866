# -*- coding: utf-8 -*-
"""Provisioning templates (JITP and fleet provisioning).

moto 5.2.5 does NOT implement provisioning templates: every call answers HTTP 500. These tests
therefore use botocore's Stubber on a real boto3 IoT client, wrapped in the collection's IoTClient
(so the real retry/error layer runs). The stub checks each call's exact parameters and order; a call
that is not expected fails the test, which is how "nothing was written" is proved.
"""

import datetime
import json

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _provisioning_template as _pt
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import dump_json

ROLE = "arn:aws:iam::123456789012:role/iot-provisioning"
ARN = "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleet"
BODY = {
    "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}}
    },
}
BODY2 = dict(BODY, Resources=dict(BODY["Resources"], extra={"Type": "AWS::IoT::Policy", "Properties": {}}))
HOOK = {"targetArn": "arn:aws:lambda:us-east-1:123456789012:function:check", "payloadVersion": "2020-04-01"}


def described(body=None, enabled=True, description="", hook=None, template_type="FLEET_PROVISIONING", role=ROLE):
    body = BODY if body is None else body
    answer = dict(
        templateArn=ARN,
        templateName="fleet",
        description=description,
        creationDate=datetime.datetime(2026, 1, 1),
        lastModifiedDate=datetime.datetime(2026, 1, 2),
        defaultVersionId=3,
        templateBody=json.dumps(body, indent=2),  # AWS's text need not be canonical
        enabled=enabled,
        provisioningRoleArn=role,
        type=template_type,
    )
    if hook:
        answer["preProvisioningHook"] = hook
    return answer


def expect_describe(stubber, answer):
    if answer is None:
        stubber.add_client_error(
            "describe_provisioning_template",
            "ResourceNotFoundException",
            http_status_code=404,
            expected_params={"templateName": "fleet"},
        )
    else:
        stubber.add_response("describe_provisioning_template", answer, {"templateName": "fleet"})


def versions(n, default):
    return [
        dict(versionId=i, creationDate=datetime.datetime(2026, 1, i), isDefaultVersion=(i == default))
        for i in range(1, n + 1)
    ]


# --- pure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fleet template", "fleet.tpl", "x" * 37, "", None])
def test_bad_names(name):
    with pytest.raises(IoTFleetError, match="Invalid provisioning template name"):
        _pt.run_provisioning_template(None, name=name, template_body=BODY, provisioning_role_arn=ROLE)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(template_body="{not json", provisioning_role_arn=ROLE), "not valid JSON"),
        (dict(template_body=[1], provisioning_role_arn=ROLE), "JSON object"),
        (dict(template_body={"Parameters": {}}, provisioning_role_arn=ROLE), "Resources"),
        (dict(template_body={"Resources": {"x": "y" * 10300}}, provisioning_role_arn=ROLE), "10240"),
        (dict(template_body=BODY, provisioning_role_arn="not-an-arn"), "provisioning_role_arn"),
        (dict(template_body=BODY, provisioning_role_arn=ROLE, template_type="OTHER"), "template type"),
        (dict(template_body=BODY, provisioning_role_arn=ROLE, description="d" * 501), "description"),
        (dict(template_body=BODY, provisioning_role_arn=ROLE, pre_provisioning_hook={"x": 1}), "target_arn"),
        (
            dict(
                template_body=BODY,
                provisioning_role_arn=ROLE,
                template_type="JITP",
                pre_provisioning_hook={"target_arn": HOOK["targetArn"]},
            ),
            "only supported for FLEET_PROVISIONING",
        ),
    ],
)
def test_bad_input_fails_before_any_call(stubbed, kwargs, fragment):
    client, _stubber = stubbed  # no response queued: any call would fail the test
    with pytest.raises(IoTFleetError, match=fragment):
        _pt.ensure_provisioning_template(client, "fleet", **kwargs)


def test_run_needs_body_and_role():
    with pytest.raises(IoTFleetError, match="template_body"):
        _pt.run_provisioning_template(None, name="fleet", provisioning_role_arn=ROLE)


def test_body_from_json_text_and_dict_compare_equal():
    assert _pt.normalize_body(json.dumps(BODY)) == _pt.normalize_body(BODY)


def test_version_to_prune():
    assert _pt.version_to_prune(versions(4, 4)) is None
    assert _pt.version_to_prune(versions(5, 5)) == 1
    assert _pt.version_to_prune(versions(5, 1)) == 2
    assert _pt.version_to_prune([dict(versionId=1, isDefaultVersion=True)], cap=1) is None


def test_template_updates():
    desired = _pt.desired_template(BODY, ROLE, enabled=False, description="d", pre_provisioning_hook={})
    current = _pt.current_template(described(hook=HOOK))
    assert _pt.template_updates(desired, current) == {
        "enabled": False,
        "description": "d",
        "removePreProvisioningHook": True,
    }
    undeclared = _pt.desired_template(BODY, ROLE)
    assert _pt.template_updates(undeclared, current) == {}


def test_current_template_ignores_dates_and_version_ids():
    facts = _pt.current_template(described())
    assert set(facts) == {
        "template_body",
        "provisioning_role_arn",
        "type",
        "enabled",
        "description",
        "pre_provisioning_hook",
    }
    assert facts["template_body"] == BODY


# --- against the stub -------------------------------------------------------------------------


def test_create(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, None)
    stubber.add_response(
        "create_provisioning_template",
        dict(templateArn=ARN, templateName="fleet", defaultVersionId=1),
        dict(
            templateName="fleet",
            templateBody=dump_json(BODY),
            provisioningRoleArn=ROLE,
            enabled=True,
            type="JITP",
            description="jitp",
        ),
    )
    out = _pt.ensure_provisioning_template(client, "fleet", BODY, ROLE, template_type="JITP", description="jitp")
    assert out.changed and out.values["template_arn"] == ARN
    assert out.before == {} and out.after["template_body"] == BODY


def test_create_check_mode_writes_nothing(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, None)
    out = _pt.ensure_provisioning_template(client, "fleet", json.dumps(BODY), ROLE, check_mode=True)
    assert out.changed and out.values["template_arn"] is None


def test_idempotent(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described(description="x", hook=HOOK))
    out = _pt.ensure_provisioning_template(
        client,
        "fleet",
        BODY,
        ROLE,
        description="x",
        pre_provisioning_hook={"target_arn": HOOK["targetArn"], "payload_version": "2020-04-01"},
    )
    assert not out.changed
    assert out.before == out.after
    assert "defaultVersionId" not in json.dumps(out.after)


def test_body_change_creates_default_version(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described())
    stubber.add_response(
        "list_provisioning_template_versions", dict(versions=versions(2, 2)), {"templateName": "fleet"}
    )
    stubber.add_response(
        "create_provisioning_template_version",
        dict(templateArn=ARN, templateName="fleet", versionId=3, isDefaultVersion=True),
        dict(templateName="fleet", templateBody=dump_json(BODY2), setAsDefault=True),
    )
    out = _pt.ensure_provisioning_template(client, "fleet", BODY2, ROLE)
    assert out.changed
    assert out.before["template_body"] == BODY and out.after["template_body"] == BODY2


def test_body_change_at_cap_prunes_oldest_non_default(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described())
    stubber.add_response(
        "list_provisioning_template_versions", dict(versions=versions(5, 1)), {"templateName": "fleet"}
    )
    stubber.add_response("delete_provisioning_template_version", {}, {"templateName": "fleet", "versionId": 2})
    stubber.add_response(
        "create_provisioning_template_version",
        dict(templateArn=ARN, templateName="fleet", versionId=6, isDefaultVersion=True),
        dict(templateName="fleet", templateBody=dump_json(BODY2), setAsDefault=True),
    )
    stubber.add_response("update_provisioning_template", {}, {"templateName": "fleet", "enabled": False})
    out = _pt.ensure_provisioning_template(client, "fleet", BODY2, ROLE, enabled=False)
    assert out.changed and out.after["enabled"] is False


def test_body_change_check_mode_writes_nothing(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described())
    out = _pt.ensure_provisioning_template(client, "fleet", BODY2, ROLE, check_mode=True)
    assert out.changed


def test_update_role_description_hook(stubbed):
    client, stubber = stubbed
    other_role = "arn:aws:iam::123456789012:role/other"
    expect_describe(stubber, described(role=other_role))
    stubber.add_response(
        "update_provisioning_template",
        {},
        dict(templateName="fleet", description="new", provisioningRoleArn=ROLE, preProvisioningHook=HOOK),
    )
    out = _pt.ensure_provisioning_template(
        client,
        "fleet",
        BODY,
        ROLE,
        description="new",
        pre_provisioning_hook={"targetArn": HOOK["targetArn"], "payloadVersion": "2020-04-01"},
    )
    assert out.changed and out.before["provisioning_role_arn"] == other_role


def test_type_change_refused(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described(template_type="JITP"))
    with pytest.raises(IoTFleetError, match="cannot change a template's type"):
        _pt.ensure_provisioning_template(client, "fleet", BODY, ROLE, template_type="FLEET_PROVISIONING")


def test_remove(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, described())
    out = _pt.remove_provisioning_template(client, "fleet", check_mode=True)
    assert out.changed and out.after == {}

    expect_describe(stubber, described())
    stubber.add_response("delete_provisioning_template", {}, {"templateName": "fleet"})
    assert _pt.run_provisioning_template(client, name="fleet", state="absent").changed

    expect_describe(stubber, None)
    assert not _pt.remove_provisioning_template(client, "fleet").changed


def test_aws_error_is_translated(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, None)
    stubber.add_client_error("create_provisioning_template", "InvalidRequestException", "bad body", 400)
    with pytest.raises(IoTAWSError):
        _pt.ensure_provisioning_template(client, "fleet", BODY, ROLE)
