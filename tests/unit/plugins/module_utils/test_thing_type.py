# -*- coding: utf-8 -*-
"""Thing types: validation, create/deprecate/delete against the stand-in's control plane (the
``moto`` fixture: moto plus AWS's checks, among them DeleteThingType's wait after a deprecation,
lowered there to ``moto.thing_type_delete_delay`` seconds), and with botocore's Stubber only what
the stand-in cannot show (an answer without a deprecation date, the id CreateThingType returns).
"""

import datetime

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _thing_type as _tt
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.iotcore import wait_thing_type_deletable
from support.recorders import CountingClient, NoCalls
from support.unit import four_runs

ARN = "arn:aws:iot:us-east-1:123456789012:thingtype/"


def described(boto3_iot, name):
    return boto3_iot.describe_thing_type(thingTypeName=name)


# --- pure helpers -----------------------------------------------------------------------------


def test_searchable_attributes_normalised():
    assert _tt.normalize_searchable_attributes(["a", "b", "a"]) == ["a", "b"]
    assert _tt.normalize_searchable_attributes(None) is None
    assert _tt.normalize_searchable_attributes([]) == []


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="pi zero"), "Invalid thing type name"),
        (dict(name="pi.zero"), "Invalid thing type name"),
        (dict(name="x" * 129), "Invalid thing type name"),
        (dict(name="t", searchable_attributes=["a", "b", "c", "d"]), "at most 3"),
        (dict(name="t", searchable_attributes=["a b"]), "Invalid searchable attribute"),
        (dict(name="t", searchable_attributes="a"), "must be a list"),
        (dict(name="t", description="tab\there"), "description"),
        (dict(name="t", deprecated="yes"), "deprecated must be a boolean"),
    ],
)
def test_bad_input_fails_before_any_call(kwargs, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _tt.run_thing_type(NoCalls(), **kwargs)


def test_bad_name_on_absent_fails_before_any_call():
    with pytest.raises(IoTFleetError, match="Invalid thing type name"):
        _tt.run_thing_type(NoCalls(), name="a b", state="absent")


def test_facts_ignore_generated_fields():
    d = {
        "thingTypeName": "t",
        "thingTypeId": "id",
        "thingTypeArn": ARN + "t",
        "thingTypeProperties": {"thingTypeDescription": "", "searchableAttributes": ["b", "a"]},
        "thingTypeMetadata": {
            "deprecated": True,
            "creationDate": datetime.datetime(2026, 1, 1),
            "deprecationDate": datetime.datetime(2026, 1, 2),
        },
    }
    assert _tt.thing_type_facts(d) == {
        "thing_type_name": "t",
        "description": None,
        "searchable_attributes": ["b", "a"],
        "deprecated": True,
    }


# --- against moto -----------------------------------------------------------------------------


def test_create_four_runs(iot_client, boto3_iot):
    client = CountingClient(iot_client)
    args = dict(description="Raspberry Pi Zero W", searchable_attributes=["site", "model"])
    check, real, again, check_again = four_runs(_tt.ensure_thing_type, client, "pi-zero", **args)
    assert check.changed and check.values["thing_type_arn"] is None and check.before == {}
    assert check.after == {
        "thing_type_name": "pi-zero",
        "description": "Raspberry Pi Zero W",
        "searchable_attributes": ["site", "model"],
        "deprecated": False,
    }
    assert real.changed and real.values["thing_type_arn"] == ARN + "pi-zero"
    # CreateThingType answers the id on AWS; moto 5.2.5 leaves it out (then it is null on creation)
    assert real.values["thing_type_id"] in (None, described(boto3_iot, "pi-zero")["thingTypeId"])
    assert not again.changed and not check_again.changed
    assert again.before == again.after == check.after
    assert again.values["thing_type_id"] == described(boto3_iot, "pi-zero")["thingTypeId"]
    assert client.writes() == ["create_thing_type"]
    props = described(boto3_iot, "pi-zero")["thingTypeProperties"]
    assert props == {"thingTypeDescription": "Raspberry Pi Zero W", "searchableAttributes": ["site", "model"]}


def test_check_mode_writes_nothing(iot_client, boto3_iot):
    _tt.ensure_thing_type(iot_client, "t0", description="d", deprecated=True, check_mode=True)
    assert boto3_iot.list_thing_types()["thingTypes"] == []


def test_minimal_type_and_order_of_searchable_attributes(iot_client, boto3_iot):
    assert _tt.ensure_thing_type(iot_client, "t1").changed
    assert described(boto3_iot, "t1")["thingTypeProperties"] in ({}, None)
    assert not _tt.ensure_thing_type(iot_client, "t1", description="", searchable_attributes=[]).changed
    boto3_iot.create_thing_type(thingTypeName="t2", thingTypeProperties={"searchableAttributes": ["a", "b"]})
    assert not _tt.ensure_thing_type(iot_client, "t2", searchable_attributes=["b", "a", "b"]).changed


def test_properties_are_fixed_refused_before_any_write(iot_client, boto3_iot):
    boto3_iot.create_thing_type(
        thingTypeName="t3", thingTypeProperties={"thingTypeDescription": "old", "searchableAttributes": ["a"]}
    )
    client = CountingClient(iot_client)
    for check_mode in (True, False):
        with pytest.raises(IoTFleetError, match="cannot be changed") as e:
            _tt.ensure_thing_type(
                client,
                "t3",
                description="new",
                searchable_attributes=["a", "b"],
                deprecated=True,
                check_mode=check_mode,
            )
        assert "description: AWS has 'old', declared 'new'" in e.value.message
        assert "searchable_attributes: AWS has ['a'], declared ['a', 'b']" in e.value.message
        assert [d["option"] for d in e.value.kwargs["differences"]] == ["description", "searchable_attributes"]
    with pytest.raises(IoTFleetError, match="description: AWS has 'old', declared None"):
        _tt.ensure_thing_type(client, "t3", description="")
    assert client.writes() == []
    assert described(boto3_iot, "t3")["thingTypeMetadata"]["deprecated"] is False
    # what is not declared is not compared
    assert not _tt.ensure_thing_type(iot_client, "t3").changed


def test_deprecate_and_undeprecate_four_runs(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t4")
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tt.ensure_thing_type, client, "t4", deprecated=True)
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.before["deprecated"] is False and real.after["deprecated"] is True
    assert again.values["deprecated"] is True
    assert client.writes() == ["deprecate_thing_type"]
    assert described(boto3_iot, "t4")["thingTypeMetadata"]["deprecated"] is True

    client.calls.clear()
    check, real, again, check_again = four_runs(_tt.ensure_thing_type, client, "t4", deprecated=False)
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert client.writes() == ["deprecate_thing_type"]
    assert described(boto3_iot, "t4")["thingTypeMetadata"]["deprecated"] is False
    # not declared: left alone
    assert not _tt.ensure_thing_type(iot_client, "t4").changed


def test_create_deprecated(iot_client, boto3_iot):
    out = _tt.ensure_thing_type(iot_client, "t5", deprecated=True)
    assert out.changed and out.after["deprecated"] is True
    assert described(boto3_iot, "t5")["thingTypeMetadata"]["deprecated"] is True


def test_remove_four_runs(moto, iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t6", thingTypeProperties={"thingTypeDescription": "d"})
    boto3_iot.deprecate_thing_type(thingTypeName="t6")
    wait_thing_type_deletable(boto3_iot, "t6", moto.thing_type_delete_delay)
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tt.run_thing_type, client, name="t6", state="absent")
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert check.before == {
        "thing_type_name": "t6",
        "description": "d",
        "searchable_attributes": [],
        "deprecated": True,
    }
    assert check.after == {}
    assert client.writes() == ["delete_thing_type"]
    assert boto3_iot.list_thing_types()["thingTypes"] == []


def test_remove_refuses_unless_deprecated(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t7")
    client = CountingClient(iot_client)
    for check_mode in (True, False):
        with pytest.raises(IoTFleetError, match="is not deprecated.*deprecated for 5 minutes"):
            _tt.remove_thing_type(client, "t7", check_mode=check_mode)
    assert client.writes() == []
    assert described(boto3_iot, "t7")


def test_remove_refuses_with_things(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t8")
    for name in ("pi-2", "pi-1"):
        boto3_iot.create_thing(thingName=name, thingTypeName="t8")
    boto3_iot.create_thing(thingName="other")
    boto3_iot.deprecate_thing_type(thingTypeName="t8")
    client = CountingClient(iot_client)
    for check_mode in (True, False):
        with pytest.raises(IoTFleetError, match="still has things associated with it") as e:
            _tt.remove_thing_type(client, "t8", check_mode=check_mode)
        assert sorted(e.value.kwargs["things"]) == ["pi-1", "pi-2"]
    assert client.writes() == []
    assert described(boto3_iot, "t8")


def test_things_listing_shows_that_there_are_more(iot_client, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t10")
    for i in range(11):
        boto3_iot.create_thing(thingName=f"pi-{i:02d}", thingTypeName="t10")
    boto3_iot.deprecate_thing_type(thingTypeName="t10")
    with pytest.raises(IoTFleetError, match=r"\(and more\)") as e:
        _tt.remove_thing_type(iot_client, "t10")
    assert len(e.value.kwargs["things"]) == 10


def test_delete_right_after_deprecation_fails_clearly(moto, iot_client, boto3_iot):
    """AWS (and the stand-in) delete a type only some time after its deprecation (5 minutes; the
    stand-in of the tests waits less): the refusal names AWS's reason and when to run again."""
    assert _tt.ensure_thing_type(iot_client, "t9", deprecated=True).changed
    deprecated_at = described(boto3_iot, "t9")["thingTypeMetadata"]["deprecationDate"]
    client = CountingClient(iot_client)
    with pytest.raises(IoTFleetError) as e:
        _tt.remove_thing_type(client, "t9")
    message = e.value.message
    assert "AWS IoT refused to delete thing type 't9'" in message
    assert "Cannot delete thing type : t9. Please wait for" in message  # AWS's own words
    assert "after deprecation and then retry" in message
    assert f"not before {(deprecated_at + datetime.timedelta(minutes=5)).isoformat()}" in message
    assert client.writes() == ["delete_thing_type"]  # the refused attempt
    assert described(boto3_iot, "t9")["thingTypeMetadata"]["deprecated"] is True
    # once the wait is over, the same task deletes it
    wait_thing_type_deletable(boto3_iot, "t9", moto.thing_type_delete_delay)
    assert _tt.remove_thing_type(iot_client, "t9").changed
    assert boto3_iot.list_thing_types()["thingTypes"] == []


# --- what the stand-in cannot show (Stubber) ----------------------------------------------------


def deprecated_type(deprecation_date=None):
    metadata = {"deprecated": True, "creationDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}
    if deprecation_date:
        metadata["deprecationDate"] = deprecation_date
    return dict(
        thingTypeName="old",
        thingTypeId="id-1",
        thingTypeArn=ARN + "old",
        thingTypeProperties={},
        thingTypeMetadata=metadata,
    )


def test_delete_refusal_without_a_deprecation_date(stubbed):
    """The stand-in always reports the deprecation date; without one the message still says when."""
    client, stubber = stubbed
    stubber.add_response("describe_thing_type", deprecated_type(), {"thingTypeName": "old"})
    stubber.add_response("list_things", {"things": []}, {"thingTypeName": "old", "maxResults": 10})
    stubber.add_client_error(
        "delete_thing_type",
        "InvalidRequestException",
        "Not yet",
        http_status_code=400,
        expected_params={"thingTypeName": "old"},
    )
    with pytest.raises(IoTFleetError, match="run state=absent again 5 minutes after its deprecation"):
        _tt.remove_thing_type(client, "old")


def test_create_deprecated_on_aws_sends_exactly_the_declared_settings(stubbed):
    """CreateThingType answers the id on AWS (moto leaves it out); a type created deprecated costs a
    second write."""
    client, stubber = stubbed
    stubber.add_client_error(
        "describe_thing_type",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={"thingTypeName": "new"},
    )
    stubber.add_response(
        "create_thing_type",
        {"thingTypeName": "new", "thingTypeArn": ARN + "new", "thingTypeId": "id-2"},
        {"thingTypeName": "new", "thingTypeProperties": {"searchableAttributes": ["site"]}},
    )
    stubber.add_response("deprecate_thing_type", {}, {"thingTypeName": "new", "undoDeprecate": False})
    out = _tt.ensure_thing_type(client, "new", searchable_attributes=["site"], deprecated=True)
    assert out.changed and out.values["thing_type_id"] == "id-2" and out.values["thing_type_arn"] == ARN + "new"
    assert out.after == {
        "thing_type_name": "new",
        "description": None,
        "searchable_attributes": ["site"],
        "deprecated": True,
    }
