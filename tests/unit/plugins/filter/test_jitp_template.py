# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JITP template builder (filter iotfleet.aws.jitp_template).

Its shape is checked against AWS's JITP template format, and the template is run by the IoT Core
stand-in's control plane (``moto`` fixture: RegisterThing evaluates templates with the same code
as JITP on a device's first connect) on a CA registered with it as registrationConfig.
"""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.filter.jitp_template import FilterModule
from ansible_collections.iotfleet.aws.plugins.filter.jitp_template import jitp_template
from ansible_collections.iotfleet.aws.plugins.module_utils import _ca_certificate as cac
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509

POLICY = "iotfleet-device"
ROLE = "arn:aws:iam::123456789012:role/iotfleet-jitp"
CN = "AWS::IoT::Certificate::CommonName"
ID = "AWS::IoT::Certificate::Id"


def test_registered_as_filter():
    assert FilterModule().filters()["jitp_template"] is jitp_template


def test_default_template_is_awss_jitp_shape():
    body = jitp_template(POLICY)
    assert body == {
        "Parameters": {CN: {"Type": "String"}, ID: {"Type": "String"}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": CN}}},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": ID}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": POLICY}},
        },
    }
    # deterministic: the same input gives the same canonical JSON (the CA registration compares it)
    assert json.dumps(jitp_template(POLICY), sort_keys=True) == json.dumps(body, sort_keys=True)


def test_thing_type_and_attributes():
    body = jitp_template(
        POLICY,
        thing_type="pi-zero",
        attributes={"fleet": "kitchen", "generation": 2, "beta": True},
        subject_attributes={"certificate": "Id", "org": "AWS::IoT::Certificate::Organization"},
    )
    thing = body["Resources"]["thing"]
    assert thing["Properties"]["ThingTypeName"] == "pi-zero"
    assert thing["Properties"]["AttributePayload"] == {
        "fleet": "kitchen",
        "generation": "2",
        "beta": "true",
        "certificate": {"Ref": ID},
        "org": {"Ref": "AWS::IoT::Certificate::Organization"},
    }
    # an existing thing (registration api before, or a new certificate) keeps the operator's attributes
    assert thing["OverrideSettings"] == {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE"}
    # every parameter the template uses is declared
    assert set(body["Parameters"]) == {CN, ID, "AWS::IoT::Certificate::Organization"}


def test_no_thing_type_leaves_the_type_alone():
    for empty in (None, ""):
        thing = jitp_template(POLICY, thing_type=empty)["Resources"]["thing"]
        assert "ThingTypeName" not in thing["Properties"] and "OverrideSettings" not in thing


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(policy_name=""), "invalid policy name"),
        (dict(policy_name="has space"), "invalid policy name"),
        (dict(policy_name=None), "invalid policy name"),
        (dict(policy_name=POLICY, thing_type="bad type"), "invalid thing type"),
        (dict(policy_name=POLICY, attributes=["a"]), "attributes must be a dict"),
        (dict(policy_name=POLICY, attributes={"bad name": "x"}), "invalid thing attribute name"),
        (dict(policy_name=POLICY, attributes={"room": "living room"}), "invalid value"),
        (dict(policy_name=POLICY, attributes={"room": ""}), "invalid value"),
        (dict(policy_name=POLICY, attributes={"room": {"nested": 1}}), "invalid value"),
        (dict(policy_name=POLICY, subject_attributes={"sn": "Email"}), "use one of"),
        (dict(policy_name=POLICY, attributes={"a": "1"}, subject_attributes={"a": "Id"}), "in both"),
        (dict(policy_name=POLICY, attributes={f"a{i}": "x" for i in range(51)}), "at most 50"),
    ],
)
def test_invalid_input_is_refused_by_name(kwargs, words):
    policy = kwargs.pop("policy_name")
    with pytest.raises(AnsibleFilterError, match=words):
        jitp_template(policy, **kwargs)


def test_template_size_limit():
    attributes = {f"attribute-{i:02d}": "v" * 300 for i in range(40)}
    with pytest.raises(AnsibleFilterError, match="10240"):
        jitp_template(POLICY, attributes=attributes)


def test_the_stand_in_runs_the_template_from_the_ca(iot_client, boto3_iot):
    """The CA carries the template (registrationConfig); RegisterThing with the parameters JITP
    passes (CN, certificate id) names the thing after the CN, activates the certificate, attaches
    the policy and the certificate to the thing, and gives the thing its type and attributes."""
    ca_cert, ca_key = _x509.create_ca("Fleet CA")
    boto3_iot.create_thing_type(thingTypeName="pi-zero")
    boto3_iot.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    body = jitp_template(POLICY, thing_type="pi-zero", attributes={"fleet": "f1"}, subject_attributes={"cert": "Id"})
    outcome = cac.ensure_ca_certificate(
        iot_client, ca_cert, ca_key, allow_auto_registration=True,
        registration_config={"template_body": body, "role_arn": ROLE},
    )
    assert outcome.changed and outcome.values["auto_registration_status"] == "ENABLE"
    described = boto3_iot.describe_ca_certificate(certificateId=_x509.certificate_id(ca_cert))
    stored = json.loads(described["registrationConfig"]["templateBody"])
    assert stored == body and described["registrationConfig"]["roleArn"] == ROLE
    # a rerun with the same template changes nothing
    again = cac.ensure_ca_certificate(
        iot_client, ca_cert, ca_key, allow_auto_registration=True,
        registration_config={"template_body": jitp_template(POLICY, thing_type="pi-zero", attributes={"fleet": "f1"},
                                                            subject_attributes={"cert": "Id"}),
                             "role_arn": ROLE},
    )
    assert not again.changed

    key = _x509.generate_private_key("ec")
    cert = _x509.issue_certificate(ca_cert, ca_key, "pi-jitp-1", key.public_key())
    cid = _x509.certificate_id(cert)
    # as JITP does first: the certificate registered, not yet active
    boto3_iot.register_certificate(certificatePem=_x509.certificate_pem(cert),
                                   caCertificatePem=_x509.certificate_pem(ca_cert), setAsActive=False)
    boto3_iot.register_thing(templateBody=described["registrationConfig"]["templateBody"],
                             parameters={CN: "pi-jitp-1", ID: cid})
    assert boto3_iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "ACTIVE"
    thing = boto3_iot.describe_thing(thingName="pi-jitp-1")
    assert thing["thingTypeName"] == "pi-zero"
    assert thing["attributes"] == {"fleet": "f1", "cert": cid}
    arn = boto3_iot.describe_certificate(certificateId=cid)["certificateDescription"]["certificateArn"]
    assert boto3_iot.list_thing_principals(thingName="pi-jitp-1")["principals"] == [arn]
    assert [p["policyName"] for p in boto3_iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
