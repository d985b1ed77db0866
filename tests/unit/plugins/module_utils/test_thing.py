# -*- coding: utf-8 -*-
"""Things: pure helpers with plain dicts, validation, and ensure/remove against a real moto server."""

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _thing
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.recorders import CountingClient, NoCalls


def described(boto3_iot, name):
    return boto3_iot.describe_thing(thingName=name)


# --- pure helpers ---------------------------------------------------------------------------


def test_normalize_attributes_stringifies():
    assert _thing.normalize_attributes({"a": 1, "b": True, "c": "x", "d": None, "e": 1.5}) == {
        "a": "1",
        "b": "true",
        "c": "x",
        "d": "",
        "e": "1.5",
    }
    assert _thing.normalize_attributes(None) is None


@pytest.mark.parametrize(
    "attributes, fragment",
    [
        ({"bad name": "x"}, "attribute name"),
        ({"a" * 129: "x"}, "attribute name"),
        ({"": "x"}, "attribute name"),
        ({"ok": "has space"}, "Invalid value"),
        ({"ok": "x" * 801}, "Invalid value"),
        ({"ok": {"nested": 1}}, "scalars"),
        ({f"k{i}": "v" for i in range(51)}, "at most 50"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_normalize_attributes_refuses(attributes, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _thing.normalize_attributes(attributes)


def test_attribute_limits_accept_edges():
    attrs = {"a" * 128: "v" * 800, "x_.,@/:#-": "y_.,@/:#=[]-"}
    attrs.update({f"k{i}": "v" for i in range(48)})
    assert len(_thing.normalize_attributes(attrs)) == 50


def test_attribute_changes_merge_and_purge():
    current = {"a": "1", "b": "2", "c": "3"}
    assert _thing.attribute_changes({"a": "1"}, current) == {}
    assert _thing.attribute_changes({"a": "9", "d": "4"}, current) == {"a": "9", "d": "4"}
    assert _thing.attribute_changes({"b": ""}, current) == {"b": ""}
    assert _thing.attribute_changes({"zz": ""}, current) == {}
    assert _thing.attribute_changes({"a": "1"}, current, purge=True) == {"b": "", "c": ""}
    assert _thing.attribute_changes({}, current, purge=True) == {"a": "", "b": "", "c": ""}
    assert _thing.apply_attribute_changes(current, {"a": "", "d": "4"}) == {"b": "2", "c": "3", "d": "4"}


@pytest.mark.parametrize("name", ["pi zero", "pi.zero", "x" * 129, "", None, "pi/zero"])
def test_bad_thing_names_fail_before_any_call(name):
    with pytest.raises(IoTFleetError, match="Invalid thing name"):
        _thing.ensure_thing(NoCalls(), name, attributes={"a": "1"})
    with pytest.raises(IoTFleetError, match="Invalid thing name"):
        _thing.run_thing(NoCalls(), name=name, state="absent")


def test_bad_input_fails_before_any_call():
    with pytest.raises(IoTFleetError, match="thing type"):
        _thing.ensure_thing(NoCalls(), "pi", thing_type="bad type")
    with pytest.raises(IoTFleetError, match="thing group"):
        _thing.run_thing(NoCalls(), name="pi", thing_groups=["bad group"])
    with pytest.raises(IoTFleetError, match="attribute name"):
        _thing.run_thing(NoCalls(), name="pi", attributes={"bad name": "1"})


def test_thing_facts_ignore_generated_fields():
    d = {"thingName": "a", "thingId": "id", "thingArn": "arn", "version": 7, "attributes": {"x": "1"}}
    assert _thing.thing_facts(d) == {"thing_name": "a", "attributes": {"x": "1"}, "thing_type": None}


# --- against moto -----------------------------------------------------------------------------


def test_create_check_mode_then_real_then_idempotent(iot_client, boto3_iot):
    client = CountingClient(iot_client)
    out = _thing.ensure_thing(client, "pi-01", attributes={"site": "lab", "rev": 2}, check_mode=True)
    assert out.changed and out.values["thing_arn"] is None
    assert client.writes() == []
    assert boto3_iot.list_things()["things"] == []

    out = _thing.ensure_thing(client, "pi-01", attributes={"site": "lab", "rev": 2})
    assert out.changed
    assert out.values["thing_arn"].endswith(":thing/pi-01")
    assert out.values["thing_id"]
    assert described(boto3_iot, "pi-01")["attributes"] == {"site": "lab", "rev": "2"}
    assert out.before == {} and out.after["attributes"] == {"site": "lab", "rev": "2"}

    client.calls.clear()
    for check_mode in (True, False):
        out = _thing.ensure_thing(client, "pi-01", attributes={"site": "lab", "rev": 2}, check_mode=check_mode)
        assert not out.changed
    assert client.calls == ["describe_thing", "describe_thing"]


def test_one_describe_and_one_write(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-02", attributePayload={"attributes": {"a": "1"}})
    client = CountingClient(iot_client)
    out = _thing.ensure_thing(client, "pi-02", attributes={"a": "2", "b": "3"})
    assert out.changed
    assert client.calls == ["describe_thing", "update_thing"]
    assert described(boto3_iot, "pi-02")["attributes"] == {"a": "2", "b": "3"}


def test_current_passed_in_saves_the_describe(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-03", attributePayload={"attributes": {"a": "1"}})
    current = described(boto3_iot, "pi-03")
    client = CountingClient(iot_client)
    out = _thing.ensure_thing(client, "pi-03", attributes={"a": "1"}, current=current)
    assert not out.changed and client.calls == []


def test_merge_keeps_undeclared_purge_removes(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-04", attributePayload={"attributes": {"a": "1", "keep": "me"}})
    out = _thing.ensure_thing(iot_client, "pi-04", attributes={"a": "2"})
    assert out.changed
    assert described(boto3_iot, "pi-04")["attributes"] == {"a": "2", "keep": "me"}

    out = _thing.ensure_thing(iot_client, "pi-04", attributes={"a": "2"}, purge_attributes=True, check_mode=True)
    assert out.changed and out.after["attributes"] == {"a": "2"}
    assert described(boto3_iot, "pi-04")["attributes"] == {"a": "2", "keep": "me"}

    out = _thing.ensure_thing(iot_client, "pi-04", attributes={"a": "2"}, purge_attributes=True)
    assert out.changed and out.before["attributes"] == {"a": "2", "keep": "me"}
    assert described(boto3_iot, "pi-04")["attributes"] == {"a": "2"}
    assert not _thing.ensure_thing(iot_client, "pi-04", attributes={"a": "2"}, purge_attributes=True).changed

    # an empty value removes one attribute
    out = _thing.ensure_thing(iot_client, "pi-04", attributes={"a": ""})
    assert out.changed and described(boto3_iot, "pi-04").get("attributes", {}) == {}


def test_attributes_none_leaves_alone(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-05", attributePayload={"attributes": {"a": "1"}})
    assert not _thing.ensure_thing(iot_client, "pi-05").changed
    assert described(boto3_iot, "pi-05")["attributes"] == {"a": "1"}


def test_existing_thing_is_never_recreated(iot_client, boto3_iot):
    thing_id = boto3_iot.create_thing(thingName="pi-06")["thingId"]
    client = CountingClient(iot_client)
    _thing.ensure_thing(client, "pi-06", attributes={"x": "1"})
    assert "create_thing" not in client.calls
    assert described(boto3_iot, "pi-06")["thingId"] == thing_id


def test_merge_would_exceed_50(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-07", attributePayload={"attributes": {f"k{i}": "v" for i in range(45)}})
    with pytest.raises(IoTFleetError, match="at most 50"):
        _thing.ensure_thing(iot_client, "pi-07", attributes={f"n{i}": "v" for i in range(10)})
    assert len(described(boto3_iot, "pi-07")["attributes"]) == 45


def test_thing_type_must_exist(iot_client, boto3_iot):
    with pytest.raises(IoTFleetError, match="Thing type 'nope' does not exist"):
        _thing.ensure_thing(iot_client, "pi-08", thing_type="nope")
    assert boto3_iot.list_things()["things"] == []

    boto3_iot.create_thing_type(thingTypeName="pi-zero")
    out = _thing.ensure_thing(iot_client, "pi-08", thing_type="pi-zero")
    assert out.changed and described(boto3_iot, "pi-08")["thingTypeName"] == "pi-zero"
    assert not _thing.ensure_thing(iot_client, "pi-08", thing_type="pi-zero").changed

    # existing thing: unknown type refused, nothing written
    with pytest.raises(IoTFleetError, match="does not exist"):
        _thing.ensure_thing(iot_client, "pi-08", thing_type="nope", attributes={"a": "1"})
    assert "attributes" not in described(boto3_iot, "pi-08") or not described(boto3_iot, "pi-08")["attributes"]

    out = _thing.ensure_thing(iot_client, "pi-08", thing_type="")
    assert out.changed and out.after["thing_type"] is None
    assert "thingTypeName" not in described(boto3_iot, "pi-08")


def test_deprecated_thing_type_refused(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="old")
    boto3_iot.deprecate_thing_type(thingTypeName="old")
    with pytest.raises(IoTFleetError, match="deprecated"):
        _thing.ensure_thing(iot_client, "pi-09", thing_type="old")


def test_thing_groups(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="g1")
    boto3_iot.create_thing_group(thingGroupName="g2")
    out = _thing.run_thing(iot_client, name="pi-10", thing_groups=["g1"], check_mode=True)
    assert out.changed and out.values["thing_groups"] == ["g1"]
    assert boto3_iot.list_things()["things"] == []

    out = _thing.run_thing(iot_client, name="pi-10", thing_groups=["g1"])
    assert out.changed and out.values["thing_groups"] == ["g1"]
    assert not _thing.run_thing(iot_client, name="pi-10", thing_groups=["g1"]).changed

    out = _thing.run_thing(iot_client, name="pi-10", thing_groups=["g2"])
    assert out.changed and out.values["thing_groups"] == ["g1", "g2"]
    out = _thing.run_thing(iot_client, name="pi-10", thing_groups=["g2"], purge_thing_groups=True)
    assert out.changed and out.values["thing_groups"] == ["g2"]
    groups = boto3_iot.list_thing_groups_for_thing(thingName="pi-10")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["g2"]

    with pytest.raises(IoTFleetError, match="Thing group 'g3' does not exist"):
        _thing.run_thing(iot_client, name="pi-10", thing_groups=["g3"])


def test_remove_refuses_with_principals(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-11")
    cert = boto3_iot.create_keys_and_certificate(setAsActive=True)
    boto3_iot.attach_thing_principal(thingName="pi-11", principal=cert["certificateArn"])

    with pytest.raises(IoTFleetError, match="principal") as e:
        _thing.remove_thing(iot_client, "pi-11")
    assert e.value.kwargs["principals"] == [cert["certificateArn"]]
    assert described(boto3_iot, "pi-11")

    out = _thing.remove_thing(iot_client, "pi-11", detach_principals=True, check_mode=True)
    assert out.changed and out.values["detached_principals"] == [cert["certificateArn"]]
    assert boto3_iot.list_thing_principals(thingName="pi-11")["principals"] == [cert["certificateArn"]]

    out = _thing.remove_thing(iot_client, "pi-11", detach_principals=True)
    assert out.changed and out.after == {}
    assert boto3_iot.list_things()["things"] == []
    # the certificate itself is untouched
    assert boto3_iot.describe_certificate(certificateId=cert["certificateId"])

    assert not _thing.remove_thing(iot_client, "pi-11").changed


def test_remove_check_mode_and_idempotent(iot_client, boto3_iot):
    boto3_iot.create_thing(thingName="pi-12", attributePayload={"attributes": {"a": "1"}})
    out = _thing.run_thing(iot_client, name="pi-12", state="absent", check_mode=True)
    assert out.changed and out.before["attributes"] == {"a": "1"}
    assert described(boto3_iot, "pi-12")
    assert _thing.run_thing(iot_client, name="pi-12", state="absent").changed
    assert not _thing.run_thing(iot_client, name="pi-12", state="absent", check_mode=True).changed
    assert not _thing.run_thing(iot_client, name="pi-12", state="absent").changed


def test_describe_things(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="pi-zero")
    for i in range(5):
        boto3_iot.create_thing(
            thingName=f"t{i}",
            attributePayload={"attributes": {"site": "a" if i % 2 else "b"}},
            **({"thingTypeName": "pi-zero"} if i < 2 else {}),
        )
    cert = boto3_iot.create_keys_and_certificate(setAsActive=True)
    boto3_iot.attach_thing_principal(thingName="t1", principal=cert["certificateArn"])

    all_things = _thing.describe_things(iot_client)["things"]
    assert sorted(t["thing_name"] for t in all_things) == ["t0", "t1", "t2", "t3", "t4"]
    site_a = _thing.describe_things(iot_client, attribute_name="site", attribute_value="a")["things"]
    assert sorted(t["thing_name"] for t in site_a) == ["t1", "t3"]
    typed = _thing.describe_things(iot_client, thing_type="pi-zero")["things"]
    assert sorted(t["thing_name"] for t in typed) == ["t0", "t1"]

    one = _thing.describe_things(iot_client, thing_name="t1", include_principals=True)["things"]
    assert len(one) == 1 and one[0]["thing_id"] and one[0]["thing_type"] == "pi-zero"
    assert one[0]["principals"] == [cert["certificateArn"]]
    assert _thing.describe_things(iot_client, thing_name="missing")["things"] == []
    with pytest.raises(IoTFleetError, match="Invalid thing name"):
        _thing.describe_things(iot_client, thing_name="a b")


def test_describe_things_paginates(iot_client, boto3_iot):
    for i in range(260):
        boto3_iot.create_thing(thingName=f"many-{i:03d}")
    assert len(_thing.describe_things(iot_client)["things"]) == 260


def test_verify_thing_type_false_skips_the_describe(iot_client, boto3_iot):
    """A batch checks the thing type once and then passes verify_thing_type=False."""
    boto3_iot.create_thing_type(thingTypeName="pi-zero")
    _thing.check_thing_type(iot_client, "pi-zero")
    client = CountingClient(iot_client)
    out = _thing.ensure_thing(client, "pi-13", thing_type="pi-zero", verify_thing_type=False)
    assert out.changed and client.calls == ["describe_thing", "create_thing"]
    assert described(boto3_iot, "pi-13")["thingTypeName"] == "pi-zero"
