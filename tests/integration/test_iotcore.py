# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's AWS IoT Core stand-in (lab/iotcore) refuses what AWS IoT Core refuses (issue 8, part 4).

Every refusal test here fails against a plain mutual-TLS broker that accepts any certificate
chained to the fleet CA (and the control-plane tests against plain moto). Where it can, a test
shows the path working and then changes one thing in the registry, so the refusal has that one
cause; and it checks that the stand-in's recorded reason (core.refusals()) names it. Only
``test_registered_device_connects_and_round_trips`` is a positive control. One stand-in per module
(per xdist worker), emptied between tests by ``core.reset()``; sockets on loopback only.
"""

import json
import ssl

import pytest
from botocore.exceptions import ClientError

from support.iotcore import (
    ACCOUNT,
    JITP_ROLE_ARN,
    MQTTv5,
    MQTTv311,
    allow,
    fleet_policy,
    missing_tools,
    policy_document,
    x509_helpers,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_tools()), reason=f"the IoT Core stand-in needs {', '.join(missing_tools())}"
                       " (lab/host-setup.sh)"),
]

PROTOCOLS = pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["mqtt311", "mqtt5"])
FLEET = "iotfleet-device"
NOT_AUTHORIZED = {MQTTv311: 5, MQTTv5: 0x87}

# A JITP template as the AWS IoT developer guide documents it: the thing is named after the
# certificate's CN, the certificate activated, an existing policy attached by name.
JITP_TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing",
                  "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
        "certificate": {"Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": FLEET}},
    },
}


@pytest.fixture
def fleet(core):
    """The registry as the collection leaves it: the fleet policy and an ACTIVE fleet CA."""
    core.put_policy(FLEET, fleet_policy())
    return core.register_ca()


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def assert_round_trip(probe, topic="test"):
    assert probe.connected, (probe.connack, probe.tls_error)
    assert probe.subscribe(topic) == [1]
    payload = f"hello from {probe.client_id}".encode()
    assert probe.publish(topic, payload)
    assert probe.wait_message(topic, payload), probe.messages


def assert_refused_connect(probe, protocol=MQTTv311):
    assert probe.connack == NOT_AUTHORIZED[protocol], (probe.connack, probe.tls_error)
    assert not probe.connected


def reasons_mention(core, client_id, *words):
    reasons = core.refusal_reasons(client_id)
    assert any(all(w in r for w in words) for r in reasons), reasons


# ================================================================== data plane: the positive control
@PROTOCOLS
def test_registered_device_connects_and_round_trips(fleet, core, protocol):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    with core.probe(dev, protocol=protocol) as p:
        assert_round_trip(p)
    assert core.refusals() == []


# ================================================================== CONNECT refused
def test_connect_refused_unregistered_certificate_of_registered_ca(fleet, core):
    dev = core.make_device(fleet, "pi-1", status=None)       # issued by the registered CA, never registered
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "not registered", "auto-registration is off")
    assert core.iot.list_certificates()["certificates"] == []   # not auto-registered either
    # the same certificate, registered and provisioned, connects
    out = core.iot.register_certificate(certificatePem=dev.pem, caCertificatePem=fleet.pem, status="ACTIVE")
    core.iot.attach_policy(policyName=FLEET, target=out["certificateArn"])
    core.iot.create_thing(thingName="pi-1")
    core.iot.attach_thing_principal(thingName="pi-1", principal=out["certificateArn"])
    with core.probe(dev) as p:
        assert p.connected


def test_connect_refused_certificate_inactive(fleet, core):
    dev = core.make_device(fleet, "pi-1", status="INACTIVE", policies=[FLEET])
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "is INACTIVE")
    core.iot.update_certificate(certificateId=dev.id, newStatus="ACTIVE")
    with core.probe(dev) as p:
        assert p.connected


@PROTOCOLS
def test_connect_refused_certificate_revoked(fleet, core, protocol):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    with core.probe(dev, protocol=protocol) as p:
        assert p.connected
    core.iot.update_certificate(certificateId=dev.id, newStatus="REVOKED")
    with core.probe(dev, protocol=protocol) as p:
        assert_refused_connect(p, protocol)
    reasons_mention(core, "pi-1", "REVOKED")


def test_connect_refused_when_its_ca_is_inactive(fleet, core):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    with core.probe(dev) as p:
        assert p.connected
    core.iot.update_ca_certificate(certificateId=fleet.id, newStatus="INACTIVE")
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "CA", fleet.id[:12], "INACTIVE")


@PROTOCOLS
def test_connect_refused_client_id_not_the_attached_thing(fleet, core, protocol):
    """The fleet policy allows iot:Connect only as client/${iot:Connection.Thing.ThingName}: the
    client id must be the name of a thing attached to the certificate, not any thing's name."""
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    core.make_device(fleet, "pi-2", policies=[FLEET])          # a thing that exists, attached to another cert
    for client_id in ("pi-2", "not-a-thing"):
        with core.probe(dev, client_id=client_id, protocol=protocol) as p:
            assert_refused_connect(p, protocol)
        reasons_mention(core, client_id, f"iot:Connect on client/{client_id}", "default deny")
    with core.probe(dev, protocol=protocol) as p:
        assert p.connected


@pytest.mark.parametrize("max_tls", [ssl.TLSVersion.TLSv1_2, None], ids=["tls12", "tls13"])
def test_tls_refused_certificate_of_unregistered_ca(core, max_tls):
    """The fleet's own CA, not (yet) registered: the TLS handshake fails (unknown CA), the broker
    never sees an MQTT CONNECT. A broker told to trust the fleet CA would accept the device."""
    core.put_policy(FLEET, fleet_policy())
    ca = core.new_ca()
    dev = core.issue(ca, "pi-1")
    with core.probe(dev, max_tls=max_tls) as p:
        assert p.connack is None and p.closed and p.tls_error, (p.connack, p.tls_error)
        if max_tls is not None:     # TLS 1.3: the alert can be lost to a reset (see Probe)
            assert "unknown ca" in p.tls_error.lower(), p.tls_error
    assert core.refusals() == []                                 # refused below MQTT
    core.register_ca(ca)
    dev2 = core.make_device(ca, "pi-2", policies=[FLEET])
    with core.probe(dev2, max_tls=max_tls) as p:
        assert p.connected


def test_connect_refused_policy_detached(fleet, core):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    with core.probe(dev) as p:
        assert p.connected
    core.iot.detach_policy(policyName=FLEET, target=dev.arn)
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "iot:Connect on client/pi-1", "default deny")


def test_connect_refused_thing_detached(fleet, core):
    """${iot:Connection.Thing.ThingName} resolves only for a thing attached to the certificate."""
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    core.iot.detach_thing_principal(thingName="pi-1", principal=dev.arn)
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "iot:Connect on client/pi-1")


def test_only_the_default_policy_version_applies(fleet, core):
    """The collection updates the fleet policy with CreatePolicyVersion: the broker must decide by
    the default version, whichever it is now."""
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    core.iot.create_policy_version(policyName=FLEET, policyDocument=json.dumps(fleet_policy(subscribe=False)),
                                   setAsDefault=True)
    with core.probe(dev) as p:
        assert p.connected and p.subscribe("test") == [0x80]
    reasons_mention(core, "pi-1", "iot:Subscribe on topicfilter/test", "default deny")
    with pytest.raises(ClientError) as e:                        # moto would leave no default version
        core.iot.set_default_policy_version(policyName=FLEET, policyVersionId="9")
    assert error_code(e) == "ResourceNotFoundException"
    core.iot.set_default_policy_version(policyName=FLEET, policyVersionId="1")
    with core.probe(dev) as p:
        assert p.connected and p.subscribe("test") == [1]


def test_explicit_deny_in_a_second_policy_wins(fleet, core):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    core.put_policy("no-test-subscription", policy_document(
        allow("iot:Subscribe", "topicfilter/test", effect="Deny")))
    core.iot.attach_policy(policyName="no-test-subscription", target=dev.arn)
    with core.probe(dev) as p:
        assert p.connected                                       # the rest of the fleet policy still applies
        assert p.subscribe("test") == [0x80]
        assert p.publish("test", b"still allowed") and p.connected
    reasons_mention(core, "pi-1", "iot:Subscribe on topicfilter/test", "explicit Deny in policy no-test-subscription")
    core.put_policy("deny-connect", policy_document(allow("iot:Connect", "client/*", effect="Deny")))
    core.iot.attach_policy(policyName="deny-connect", target=dev.arn)
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "iot:Connect", "explicit Deny in policy deny-connect")


def test_thing_group_policies_apply_to_members_and_their_children(fleet, core):
    """A policy attached to a static thing group applies to the things in it and in its child
    groups - only while the thing is a member, and only for the thing bound to the connection."""
    dev = core.make_device(fleet, "pi-1")                    # no policy on the certificate itself
    with core.probe(dev) as p:
        assert_refused_connect(p)
    reasons_mention(core, "pi-1", "iot:Connect on client/pi-1", "default deny")
    parent = core.iot.create_thing_group(thingGroupName="site-a")["thingGroupArn"]
    core.iot.create_thing_group(thingGroupName="site-a-shelf-1", parentGroupName="site-a")
    core.iot.attach_policy(policyName=FLEET, target=parent)
    with core.probe(dev) as p:
        assert_refused_connect(p)                            # not a member yet
    core.iot.add_thing_to_thing_group(thingGroupName="site-a-shelf-1", thingName="pi-1")
    with core.probe(dev) as p:
        assert_round_trip(p)                                 # inherited from the parent group
    with core.probe(dev, client_id="pi-2") as p:
        assert_refused_connect(p)                            # another client id binds no thing
    core.iot.remove_thing_from_thing_group(thingGroupName="site-a-shelf-1", thingName="pi-1")
    with core.probe(dev) as p:
        assert_refused_connect(p)


# ================================================================== PUBLISH / SUBSCRIBE / Receive
@PROTOCOLS
def test_publish_outside_policy_disconnects_client(fleet, core, protocol):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    core.put_policy("watch-all", policy_document(allow("iot:Connect", "client/pi-2"),
                                                 allow("iot:Subscribe", "topicfilter/*"),
                                                 allow("iot:Receive", "topic/*"),
                                                 allow("iot:Publish", "topic/test")))
    watcher = core.make_device(fleet, "pi-2", policies=["watch-all"])
    with core.probe(watcher) as w, core.probe(dev, protocol=protocol) as p:
        assert w.subscribe("#") == [1]
        assert p.publish("test", b"allowed") and p.connected
        assert w.wait_message("test", b"allowed")
        p.publish("other/topic", b"not allowed")
        assert p.wait_closed(), "the stand-in did not disconnect the client"
        # nothing of the refused publish was routed (the watcher sees later traffic first)
        assert w.publish("test", b"marker") and w.wait_message("test", b"marker")
        assert w.received("other/topic") == []
    reasons_mention(core, "pi-1", "iot:Publish on topic/other/topic", "default deny")


@PROTOCOLS
def test_subscribe_outside_policy_gets_suback_failure(fleet, core, protocol):
    dev = core.make_device(fleet, "pi-1", policies=[FLEET])
    with core.probe(dev, protocol=protocol) as p:
        assert p.connected
        codes = p.subscribe("other/topic")
        if protocol == MQTTv311:
            assert codes == [0x80]
        else:
            assert codes is not None and len(codes) == 1 and codes[0] >= 0x80, codes
        assert p.subscribe("test") == [1]                        # the allowed filter is granted
    reasons_mention(core, "pi-1", "iot:Subscribe on topicfilter/other/topic", "default deny")


def test_receive_denied_message_not_delivered(fleet, core):
    """Publish and Subscribe on test, but no iot:Receive: the broker does not deliver the message
    to this subscriber, while a subscriber with iot:Receive gets it."""
    core.put_policy("no-receive", policy_document(
        allow("iot:Connect", "client/${iot:Connection.Thing.ThingName}"),
        allow(["iot:Publish", "iot:Subscribe"], "topic/test", "topicfilter/test", "topicfilter/marker"),
        allow(["iot:Publish", "iot:Receive"], "topic/marker")))
    deaf = core.make_device(fleet, "pi-deaf", policies=["no-receive"])
    hears = core.make_device(fleet, "pi-hears", policies=[FLEET])
    with core.probe(deaf) as d, core.probe(hears) as h:
        assert d.subscribe("test") == [1] and d.subscribe("marker") == [1]
        assert h.subscribe("test") == [1]
        assert d.publish("test", b"payload")
        assert h.wait_message("test", b"payload")
        # the marker is routed to the deaf client after the payload: once it arrived, the payload was withheld
        assert d.publish("marker", b"marker") and d.wait_message("marker", b"marker")
        assert d.received("test") == []
        assert d.connected
    reasons_mention(core, "pi-deaf", "iot:Receive on topic/test", "default deny")


# ================================================================== JITP and RegisterThing
def jitp_ca(core):
    return core.register_ca(auto_registration=True, registration_config={
        "templateBody": json.dumps(JITP_TEMPLATE), "roleArn": JITP_ROLE_ARN})


def test_jitp_first_connect_refused_then_provisioned(core):
    core.put_policy(FLEET, fleet_policy())
    ca = jitp_ca(core)
    dev = core.issue(ca, "pi-jitp")
    assert core.iot.list_certificates()["certificates"] == []
    with core.probe(dev) as p:                                   # the first connect: refused, provisions
        assert not p.connected
    reasons_mention(core, "pi-jitp", "just-in-time provisioned")
    desc = core.iot.describe_certificate(certificateId=dev.id)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["caCertificateId"] == ca.id
    assert core.iot.describe_thing(thingName="pi-jitp")["thingName"] == "pi-jitp"
    assert core.iot.list_thing_principals(thingName="pi-jitp")["principals"] == [desc["certificateArn"]]
    policies = core.iot.list_attached_policies(target=desc["certificateArn"])["policies"]
    assert [x["policyName"] for x in policies] == [FLEET]
    with core.probe(dev) as p:                                   # the device reconnects: in
        assert_round_trip(p)


def test_jitp_template_failure_refuses_and_leaves_no_active_certificate(core):
    """A template naming a policy that does not exist fails: the device stays refused, and the
    registry holds no ACTIVE certificate and no thing half-provisioned from it."""
    ca = jitp_ca(core)                                           # FLEET not created
    dev = core.issue(ca, "pi-jitp")
    for _attempt in range(2):
        with core.probe(dev) as p:
            assert not p.connected
    reasons_mention(core, "pi-jitp", "JITP template failed")
    statuses = [c["status"] for c in core.iot.list_certificates()["certificates"]]
    assert "ACTIVE" not in statuses, statuses
    assert core.iot.list_things()["things"] == []


def test_no_jitp_when_ca_auto_registration_disabled(core):
    core.put_policy(FLEET, fleet_policy())
    ca = jitp_ca(core)
    core.iot.update_ca_certificate(certificateId=ca.id, newAutoRegistrationStatus="DISABLE")
    dev = core.issue(ca, "pi-jitp")
    with core.probe(dev) as p:
        assert not p.connected
    reasons_mention(core, "pi-jitp", "auto-registration is off")
    assert core.iot.list_certificates()["certificates"] == [] and core.iot.list_things()["things"] == []


def test_register_thing_with_the_jitp_template(fleet, core):
    dev = core.make_device(fleet, "pi-rt", status="INACTIVE", thing=False)
    out = core.iot.register_thing(templateBody=json.dumps(JITP_TEMPLATE), parameters={
        "AWS::IoT::Certificate::CommonName": "pi-rt", "AWS::IoT::Certificate::Id": dev.id})
    arns = out["resourceArns"]
    assert arns["certificate"] == dev.arn and arns["thing"].endswith(":thing/pi-rt")
    assert arns["policy"].endswith(f":policy/{FLEET}")
    assert core.iot.describe_certificate(certificateId=dev.id)["certificateDescription"]["status"] == "ACTIVE"
    assert core.iot.list_thing_principals(thingName="pi-rt")["principals"] == [dev.arn]
    with core.probe(dev) as p:
        assert_round_trip(p)


def test_register_thing_documented_template(fleet, core):
    """RegisterThing as the developer guide shows it: parameters with defaults, attributes, an
    inline policy document, the certificate by PEM (registered with its CA)."""
    template = {
        "Parameters": {"ThingName": {"Type": "String"}, "SerialNumber": {"Type": "String"},
                       "Location": {"Type": "String", "Default": "WA"}, "CertificatePem": {"Type": "String"}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "ThingName"},
                "AttributePayload": {"version": "v1", "serialNumber": {"Ref": "SerialNumber"},
                                     "location": {"Ref": "Location"}}}},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificatePem": {"Ref": "CertificatePem"}, "Status": "ACTIVE"}},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {
                "PolicyDocument": json.dumps(fleet_policy())}},
        },
    }
    dev = core.issue(fleet, "pi-doc")
    params = {"ThingName": "pi-doc", "SerialNumber": "0001", "CertificatePem": dev.pem}
    with pytest.raises(ClientError) as e:                        # SerialNumber has no default
        core.iot.register_thing(templateBody=json.dumps(template),
                                parameters={k: v for k, v in params.items() if k != "SerialNumber"})
    assert error_code(e) == "InvalidRequestException"
    assert core.iot.list_things()["things"] == [] and core.iot.list_certificates()["certificates"] == []
    arns = core.iot.register_thing(templateBody=json.dumps(template), parameters=params)["resourceArns"]
    thing = core.iot.describe_thing(thingName="pi-doc")
    assert thing["attributes"] == {"version": "v1", "serialNumber": "0001", "location": "WA"}
    desc = core.iot.describe_certificate(certificateId=dev.id)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["caCertificateId"] == fleet.id
    attached = core.iot.list_attached_policies(target=arns["certificate"])["policies"]
    assert [x["policyArn"] for x in attached] == [arns["policy"]]
    with core.probe(dev) as p:
        assert_round_trip(p)


def test_provisioning_template_versions(core):
    iot = core.iot

    def body(n):
        return json.dumps({"Resources": {"thing": {"Type": "AWS::IoT::Thing",
                                                   "Properties": {"ThingName": f"thing-v{n}"}}}})

    role = f"arn:aws:iam::{ACCOUNT}:role/iotfleet-provisioning"
    out = iot.create_provisioning_template(templateName="fleet", templateBody=body(1), provisioningRoleArn=role,
                                           enabled=True)
    assert out["defaultVersionId"] == 1 and out["templateArn"].endswith(":provisioningtemplate/fleet")
    with pytest.raises(ClientError) as e:
        iot.create_provisioning_template(templateName="fleet", templateBody=body(1), provisioningRoleArn=role)
    assert error_code(e) == "ResourceAlreadyExistsException"
    for n in (2, 3, 4, 5):
        v = iot.create_provisioning_template_version(templateName="fleet", templateBody=body(n))
        assert v["versionId"] == n and v["isDefaultVersion"] is False
    with pytest.raises(ClientError) as e:                        # at most 5 versions
        iot.create_provisioning_template_version(templateName="fleet", templateBody=body(6))
    assert error_code(e) == "VersionsLimitExceededException"
    iot.update_provisioning_template(templateName="fleet", defaultVersionId=3)
    desc = iot.describe_provisioning_template(templateName="fleet")
    assert desc["defaultVersionId"] == 3 and json.loads(desc["templateBody"]) == json.loads(body(3))
    versions = iot.list_provisioning_template_versions(templateName="fleet")["versions"]
    assert [(v["versionId"], v["isDefaultVersion"]) for v in versions] == [
        (1, False), (2, False), (3, True), (4, False), (5, False)]
    with pytest.raises(ClientError) as e:
        iot.delete_provisioning_template_version(templateName="fleet", versionId=3)
    assert error_code(e) == "DeleteConflictException"
    iot.delete_provisioning_template_version(templateName="fleet", versionId=2)
    v = iot.create_provisioning_template_version(templateName="fleet", templateBody=body(6), setAsDefault=True)
    assert v["versionId"] == 6 and v["isDefaultVersion"] is True   # ids are not reused
    assert iot.describe_provisioning_template_version(templateName="fleet", versionId=6)["isDefaultVersion"]
    with pytest.raises(ClientError) as e:
        iot.describe_provisioning_template_version(templateName="fleet", versionId=2)
    assert error_code(e) == "ResourceNotFoundException"
    assert [t["templateName"] for t in iot.list_provisioning_templates()["templates"]] == ["fleet"]
    iot.delete_provisioning_template(templateName="fleet")
    with pytest.raises(ClientError) as e:
        iot.describe_provisioning_template(templateName="fleet")
    assert error_code(e) == "ResourceNotFoundException"


# ================================================================== control-plane checks
def test_register_ca_refuses_wrong_registration_code(core):
    ca = core.new_ca()
    wrong = x509_helpers().verification_certificate(ca.cert, ca.key, "0" * 64)
    with pytest.raises(ClientError) as e:
        core.iot.register_ca_certificate(caCertificate=ca.pem, verificationCertificate=x509_helpers().certificate_pem(wrong))
    assert error_code(e) == "RegistrationCodeValidationException"
    assert core.iot.list_ca_certificates()["certificates"] == []
    assert core.register_ca(ca).id                              # with the right code it registers


def test_register_ca_refuses_verification_not_signed_by_ca_key(core):
    ca = core.new_ca()
    impostor = core.new_ca(cn=ca.cn)                             # same name, another key
    assert impostor.cert.subject == ca.cert.subject
    code = core.iot.get_registration_code()["registrationCode"]
    forged = x509_helpers().verification_certificate(impostor.cert, impostor.key, code)
    with pytest.raises(ClientError) as e:
        core.iot.register_ca_certificate(caCertificate=ca.pem, verificationCertificate=x509_helpers().certificate_pem(forged))
    assert error_code(e) == "CertificateValidationException"
    assert core.iot.list_ca_certificates()["certificates"] == []


def test_registration_code_is_stable(core):
    codes = {core.iot.get_registration_code()["registrationCode"] for _call in range(3)}
    assert len(codes) == 1 and len(codes.pop()) == 64


def test_default_status_is_inactive(core):
    ca = core.register_ca(active=False)
    assert core.iot.describe_ca_certificate(certificateId=ca.id)["certificateDescription"]["status"] == "INACTIVE"
    core.iot.update_ca_certificate(certificateId=ca.id, newStatus="ACTIVE")
    dev = core.issue(ca, "pi-1")
    cid = core.iot.register_certificate(certificatePem=dev.pem, caCertificatePem=ca.pem)["certificateId"]
    assert cid == dev.id                                         # AWS's id: SHA-256 of the DER
    assert core.iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "INACTIVE"


def test_revoked_certificate_cannot_be_reactivated(fleet, core):
    dev = core.make_device(fleet, "pi-1", status="ACTIVE", thing=False)
    core.iot.update_certificate(certificateId=dev.id, newStatus="REVOKED")
    for status in ("ACTIVE", "INACTIVE"):
        with pytest.raises(ClientError) as e:
            core.iot.update_certificate(certificateId=dev.id, newStatus=status)
        assert error_code(e) == "CertificateStateException"
    assert core.iot.describe_certificate(certificateId=dev.id)["certificateDescription"]["status"] == "REVOKED"


def test_register_certificate_refuses_certificate_of_another_ca(fleet, core):
    other = core.register_ca()
    dev = core.issue(other, "pi-1")
    with pytest.raises(ClientError) as e:
        core.iot.register_certificate(certificatePem=dev.pem, caCertificatePem=fleet.pem, status="ACTIVE")
    assert error_code(e) == "CertificateValidationException"
    unregistered = core.issue(core.new_ca(), "pi-2")
    with pytest.raises(ClientError) as e:                        # issued by no registered CA
        core.iot.register_certificate(certificatePem=unregistered.pem, status="ACTIVE")
    assert error_code(e) == "CertificateValidationException"
    assert core.iot.list_certificates()["certificates"] == []


def test_create_thing_conflicts_unless_identical(core):
    iot = core.iot
    first = iot.create_thing(thingName="pi-1", attributePayload={"attributes": {"site": "a"}})
    again = iot.create_thing(thingName="pi-1", attributePayload={"attributes": {"site": "a"}})
    assert (again["thingArn"], again["thingId"]) == (first["thingArn"], first["thingId"])
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="pi-1", attributePayload={"attributes": {"site": "b"}})
    assert error_code(e) == "ResourceAlreadyExistsException"
    assert iot.describe_thing(thingName="pi-1")["attributes"] == {"site": "a"}   # not replaced
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="pi.1")                       # [a-zA-Z0-9:_-]+ only
    assert error_code(e) == "InvalidRequestException"


def test_describe_endpoint_is_stable(core):
    ats = {core.iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] for _call in range(3)}
    assert ats == {core.endpoint}
    assert core.iot.describe_endpoint(endpointType="iot:Data")["endpointAddress"] != core.endpoint


def test_describe_certificate_names_its_ca(fleet, core):
    dev = core.make_device(fleet, "pi-1", thing=False)
    desc = core.iot.describe_certificate(certificateId=dev.id)["certificateDescription"]
    assert desc["caCertificateId"] == fleet.id and desc["certificateArn"] == dev.arn


def test_ca_arn_is_cacert_and_ca_certificates_are_listed(core):
    a, b = core.register_ca(), core.register_ca(active=False)
    assert a.arn == f"arn:aws:iot:us-east-1:{ACCOUNT}:cacert/{a.id}"
    desc = core.iot.describe_ca_certificate(certificateId=a.id)["certificateDescription"]
    assert desc["certificateArn"] == a.arn and desc["status"] == "ACTIVE"
    listed = {c["certificateId"]: (c["certificateArn"], c["status"]) for c in
              core.iot.list_ca_certificates()["certificates"]}
    assert listed == {a.id: (a.arn, "ACTIVE"), b.id: (b.arn, "INACTIVE")}
