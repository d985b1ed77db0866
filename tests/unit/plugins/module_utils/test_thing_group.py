# -*- coding: utf-8 -*-
"""Thing groups: pure helpers, validation, static and dynamic groups against the stand-in's
control plane (the ``moto`` fixture: moto plus what AWS does and moto lacks, among them dynamic
thing groups, lab/iotcore/control.py), and with botocore's Stubber only what the stand-in cannot
show (a dynamic group's BUILDING/REBUILDING status: the stand-in evaluates queries at once).
"""

import datetime

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _thing_group as _tg
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from support.iotcore import enable_fleet_indexing
from support.recorders import CountingClient, NoCalls
from support.unit import four_runs

ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/"


def described(boto3_iot, name):
    return boto3_iot.describe_thing_group(thingGroupName=name)


def stored_attributes(boto3_iot, name):
    """The attributes as stored (moto keeps a removed one as an empty value: dropped here, as AWS)."""
    props = described(boto3_iot, name).get("thingGroupProperties") or {}
    attributes = (props.get("attributePayload") or {}).get("attributes") or {}
    return {k: v for k, v in attributes.items() if v != ""}


# --- pure helpers -----------------------------------------------------------------------------


def test_normalize_group_attributes():
    assert _tg.normalize_group_attributes({"a": 1, "b": True, "c": None, "d": "x"}) == {
        "a": "1",
        "b": "true",
        "c": "",
        "d": "x",
    }
    assert _tg.normalize_group_attributes(None) is None


@pytest.mark.parametrize(
    "attributes, fragment",
    [
        ({"bad name": "x"}, "Invalid thing group attribute name"),
        ({"ok": "has space"}, "Invalid value for thing group attribute"),
        ({"ok": "x" * 801}, "Invalid value"),
        ({"ok": {"nested": 1}}, "scalars"),
        ({f"k{i}": "v" for i in range(51)}, "at most 50"),
        ("a=1", "must be a dict"),
    ],
)
def test_normalize_group_attributes_refuses(attributes, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _tg.normalize_group_attributes(attributes)


def test_facts_ignore_generated_fields_and_empty_attributes():
    d = {
        "thingGroupName": "g",
        "thingGroupId": "id",
        "thingGroupArn": ARN + "g",
        "version": 4,
        "thingGroupProperties": {
            "thingGroupDescription": "",
            "attributePayload": {"attributes": {"a": "1", "gone": ""}},
        },
        "thingGroupMetadata": {"parentGroupName": "p", "creationDate": datetime.datetime(2026, 1, 1)},
    }
    assert _tg.thing_group_facts(d) == {
        "thing_group_name": "g",
        "description": None,
        "attributes": {"a": "1"},
        "parent_group": "p",
    }
    d.update(queryString="attributes.a:1", indexName="AWS_Things", queryVersion="2017-09-30", status="ACTIVE")
    facts = _tg.thing_group_facts(d)
    assert facts["query_string"] == "attributes.a:1" and "status" not in facts


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="bad name"), "Invalid thing group name"),
        (dict(name="g.1"), "Invalid thing group name"),
        (dict(name="x" * 129), "Invalid thing group name"),
        (dict(name="g", parent="bad parent"), "Invalid parent group name"),
        (dict(name="g", description="two\nlines"), "description"),
        (dict(name="g", description="x" * 2029), "description"),
        (dict(name="g", attributes={"a b": "1"}), "attribute name"),
        (dict(name="g", query_string=""), "query_string"),
        (dict(name="g", query_string="a:1", index_name="bad index"), "Invalid index name"),
        (dict(name="g", query_string="a:1", parent="p"), "cannot have a parent"),
    ],
)
def test_bad_input_fails_before_any_call(kwargs, fragment):
    with pytest.raises(IoTFleetError, match=fragment):
        _tg.run_thing_group(NoCalls(), **kwargs)


def test_bad_name_on_absent_fails_before_any_call():
    with pytest.raises(IoTFleetError, match="Invalid thing group name"):
        _tg.run_thing_group(NoCalls(), name="a b", state="absent")


# --- static groups against moto -----------------------------------------------------------------


def test_create_four_runs(iot_client, boto3_iot):
    """check mode predicts changed and writes nothing; real changed; again unchanged; check unchanged."""
    client = CountingClient(iot_client)
    args = dict(description="Pis of the lab", attributes={"site": "lab-1", "rev": 2})
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, client, "site", **args)

    assert check.changed and check.values["thing_group_arn"] is None and check.before == {}
    assert check.after == {
        "thing_group_name": "site",
        "description": "Pis of the lab",
        "attributes": {"site": "lab-1", "rev": "2"},
        "parent_group": None,
    }
    assert real.changed and real.values["thing_group_arn"] == ARN + "site" and real.values["thing_group_id"]
    assert real.after == check.after
    assert not again.changed and not check_again.changed
    assert again.before == again.after == check.after
    assert again.values["thing_group_id"] == real.values["thing_group_id"]
    assert again.values["dynamic"] is False and "query_string" not in again.values
    # one write in four runs: the real create
    assert client.writes() == ["create_thing_group"]
    stored = described(boto3_iot, "site")
    assert stored["thingGroupProperties"]["thingGroupDescription"] == "Pis of the lab"
    assert stored_attributes(boto3_iot, "site") == {"site": "lab-1", "rev": "2"}


def test_check_mode_writes_nothing(iot_client, boto3_iot):
    _tg.ensure_thing_group(iot_client, "g0", attributes={"a": "1"}, check_mode=True)
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def test_merge_purge_and_description(iot_client, boto3_iot):
    boto3_iot.create_thing_group(
        thingGroupName="g1",
        thingGroupProperties={
            "thingGroupDescription": "old",
            "attributePayload": {"attributes": {"a": "1", "keep": "me"}},
        },
    )
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, client, "g1", attributes={"a": "2"})
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.before["attributes"] == {"a": "1", "keep": "me"} and real.after["attributes"] == {
        "a": "2",
        "keep": "me",
    }
    assert client.writes() == ["update_thing_group"]
    assert stored_attributes(boto3_iot, "g1") == {"a": "2", "keep": "me"}
    # the description the user left alone is kept
    assert described(boto3_iot, "g1")["thingGroupProperties"]["thingGroupDescription"] == "old"

    check, real, again, check_again = four_runs(
        _tg.ensure_thing_group, iot_client, "g1", attributes={"a": "2"}, purge_attributes=True
    )
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert check.after["attributes"] == {"a": "2"}
    assert stored_attributes(boto3_iot, "g1") == {"a": "2"}

    # an empty value removes one attribute; purge with nothing declared removes all
    assert _tg.ensure_thing_group(iot_client, "g1", attributes={"b": "3"}).changed
    assert _tg.ensure_thing_group(iot_client, "g1", attributes={"b": ""}).changed
    assert stored_attributes(boto3_iot, "g1") == {"a": "2"}
    assert not _tg.ensure_thing_group(iot_client, "g1", attributes={"b": ""}).changed
    out = _tg.ensure_thing_group(iot_client, "g1", purge_attributes=True)
    assert out.changed and out.after["attributes"] == {}
    assert stored_attributes(boto3_iot, "g1") == {}
    assert not _tg.ensure_thing_group(iot_client, "g1", purge_attributes=True).changed

    # description: change, then remove ("")
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, iot_client, "g1", description="new")
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.before["description"] == "old" and real.after["description"] == "new"
    assert described(boto3_iot, "g1")["thingGroupProperties"]["thingGroupDescription"] == "new"
    out = _tg.ensure_thing_group(iot_client, "g1", description="")
    assert out.changed and out.after["description"] is None
    assert not _tg.ensure_thing_group(iot_client, "g1", description="").changed


def test_update_carries_the_version(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="g2")
    current = described(boto3_iot, "g2")
    boto3_iot.update_thing_group(thingGroupName="g2", thingGroupProperties={"thingGroupDescription": "x"})

    class StaleDescribe:
        """Answers the describe made before a concurrent change (as a race would)."""

        def get(self, operation, **kwargs):
            return current if operation == "describe_thing_group" else iot_client.get(operation, **kwargs)

        def __getattr__(self, name):
            return getattr(iot_client, name)

    with pytest.raises(IoTFleetError, match="changed by someone else"):
        _tg.ensure_thing_group(StaleDescribe(), "g2", attributes={"a": "1"})
    assert stored_attributes(boto3_iot, "g2") == {}


def test_attributes_over_50_after_merge(iot_client, boto3_iot):
    boto3_iot.create_thing_group(
        thingGroupName="g3",
        thingGroupProperties={"attributePayload": {"attributes": {f"k{i}": "v" for i in range(45)}}},
    )
    client = CountingClient(iot_client)
    with pytest.raises(IoTFleetError, match="at most 50"):
        _tg.ensure_thing_group(client, "g3", attributes={f"n{i}": "v" for i in range(10)})
    assert client.writes() == []


def test_parent_four_runs_and_fixed(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="site")
    boto3_iot.create_thing_group(thingGroupName="other")
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, client, "cams", parent="site")
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.values["parent_group"] == "site" and again.values["parent_group"] == "site"
    assert client.writes() == ["create_thing_group"]
    assert described(boto3_iot, "cams")["thingGroupMetadata"]["parentGroupName"] == "site"

    # a parent is fixed at creation: another parent, or none, is refused before any write
    client.calls.clear()
    for parent, shown in (("other", "parent 'other'"), ("", "no parent")):
        with pytest.raises(IoTFleetError, match="parent only when the group is created") as e:
            _tg.ensure_thing_group(client, "cams", parent=parent, attributes={"a": "1"})
        assert f"has parent 'site', declared {shown}" in e.value.message
        assert e.value.kwargs["current_parent"] == "site"
    assert client.writes() == []
    assert stored_attributes(boto3_iot, "cams") == {}

    # not declared: left alone
    assert not _tg.ensure_thing_group(iot_client, "cams").changed
    # a root group declared as root
    assert not _tg.ensure_thing_group(iot_client, "other", parent="").changed


def test_missing_parent_refused_before_any_write(iot_client, boto3_iot):
    client = CountingClient(iot_client)
    for check_mode in (True, False):
        with pytest.raises(IoTFleetError, match="Parent thing group 'nope' does not exist"):
            _tg.ensure_thing_group(client, "child", parent="nope", check_mode=check_mode)
    assert client.writes() == []
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def test_static_group_cannot_become_dynamic(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="g4")
    client = CountingClient(iot_client)
    with pytest.raises(IoTFleetError, match="static group: AWS IoT cannot turn it into a dynamic group"):
        _tg.ensure_thing_group(client, "g4", query_string="attributes.a:1")
    with pytest.raises(IoTFleetError, match="apply to dynamic groups only"):
        _tg.ensure_thing_group(client, "g4", index_name="AWS_Things")
    with pytest.raises(IoTFleetError, match="apply to dynamic thing groups only"):
        _tg.ensure_thing_group(client, "new", query_version="2017-09-30")
    assert client.writes() == []


def test_remove_four_runs(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="g5", thingGroupProperties={"thingGroupDescription": "d"})
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tg.run_thing_group, client, name="g5", state="absent")
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert check.before["description"] == "d" and check.after == {}
    assert client.writes() == ["delete_thing_group"]
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def test_remove_refuses_with_child_groups(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="parent")
    boto3_iot.create_thing_group(thingGroupName="kid-b", parentGroupName="parent")
    boto3_iot.create_thing_group(thingGroupName="kid-a", parentGroupName="parent")
    client = CountingClient(iot_client)
    for check_mode in (True, False):
        with pytest.raises(IoTFleetError, match="still has child groups: kid-a, kid-b") as e:
            _tg.remove_thing_group(client, "parent", check_mode=check_mode)
        assert e.value.kwargs["child_groups"] == ["kid-a", "kid-b"]
    assert client.writes() == []
    # children first, then the parent
    for name in ("kid-a", "kid-b", "parent"):
        assert _tg.remove_thing_group(iot_client, name).changed
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def test_remove_keeps_the_things(iot_client, boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="g6")
    boto3_iot.create_thing(thingName="pi-1")
    boto3_iot.add_thing_to_thing_group(thingGroupName="g6", thingName="pi-1")
    assert _tg.remove_thing_group(iot_client, "g6").changed
    assert boto3_iot.describe_thing(thingName="pi-1")["thingName"] == "pi-1"


# --- dynamic groups (the stand-in) -----------------------------------------------------------------

QUERY = "attributes.site:lab-1"


@pytest.fixture
def indexing(boto3_iot):
    """Fleet indexing on: AWS (and the stand-in) refuse a dynamic group without it."""
    enable_fleet_indexing(boto3_iot)
    return boto3_iot


def test_dynamic_create_four_runs(iot_client, indexing):
    client = CountingClient(iot_client)
    args = dict(query_string=QUERY, description="lab Pis", attributes={"site": "lab-1"})
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, client, "dyn", **args)
    assert check.changed and check.values["thing_group_arn"] is None
    assert check.values["dynamic"] is True and check.values["query_string"] == QUERY
    assert check.values["index_name"] is None  # AWS would choose it
    assert real.changed and real.values["thing_group_arn"] == ARN + "dyn"
    assert real.values["index_name"] == "AWS_Things" and real.values["query_version"] == "2017-09-30"
    assert real.values["parent_group"] is None and real.values["attributes"] == {"site": "lab-1"}
    assert not again.changed and not check_again.changed
    assert again.before == again.after == real.after
    assert again.values["status"] == "ACTIVE" and again.values["thing_group_id"] == real.values["thing_group_id"]
    assert client.writes() == ["create_dynamic_thing_group"]
    stored = described(indexing, "dyn")
    assert (stored["queryString"], stored["indexName"], stored["queryVersion"]) == (QUERY, "AWS_Things", "2017-09-30")
    assert stored["thingGroupProperties"]["thingGroupDescription"] == "lab Pis"
    assert stored_attributes(indexing, "dyn") == {"site": "lab-1"}
    assert [g["groupName"] for g in indexing.list_thing_groups()["thingGroups"]] == ["dyn"]


def test_dynamic_query_change_four_runs(iot_client, indexing):
    indexing.create_dynamic_thing_group(thingGroupName="dyn", queryString=QUERY)
    indexing.create_thing(thingName="pi-1", attributePayload={"attributes": {"site": "lab-1"}})
    indexing.create_thing(thingName="pi-2", attributePayload={"attributes": {"site": "lab-2"}})
    assert indexing.list_things_in_thing_group(thingGroupName="dyn")["things"] == ["pi-1"]
    new_query = "attributes.site:lab-2"
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tg.ensure_thing_group, client, "dyn", query_string=new_query)
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.before["query_string"] == QUERY and real.after["query_string"] == new_query
    assert "status" not in real.values  # AWS rebuilds the membership after a query change
    assert client.writes() == ["update_dynamic_thing_group"]
    assert described(indexing, "dyn")["queryString"] == new_query
    # the stand-in evaluates the query (moto's matcher) when the members are listed
    assert indexing.list_things_in_thing_group(thingGroupName="dyn")["things"] == ["pi-2"]


def test_dynamic_attributes_update_uses_the_dynamic_call(iot_client, indexing):
    indexing.create_dynamic_thing_group(
        thingGroupName="dyn",
        queryString=QUERY,
        thingGroupProperties={"thingGroupDescription": "d", "attributePayload": {"attributes": {"a": "1"}}},
    )
    client = CountingClient(iot_client)
    out = _tg.ensure_thing_group(client, "dyn", attributes={"a": "2", "b": "3"})
    assert out.changed and out.after["attributes"] == {"a": "2", "b": "3"}
    assert out.after["query_string"] == QUERY  # left alone: not declared
    assert client.writes() == ["update_dynamic_thing_group"]
    assert stored_attributes(indexing, "dyn") == {"a": "2", "b": "3"}
    assert described(indexing, "dyn")["version"] == 2
    assert not _tg.ensure_thing_group(iot_client, "dyn", attributes={"a": "2", "b": "3"}).changed


def test_dynamic_group_refusals_before_any_write(iot_client, indexing):
    indexing.create_dynamic_thing_group(thingGroupName="dyn", queryString=QUERY)
    indexing.create_thing_group(thingGroupName="site")
    client = CountingClient(iot_client)
    # a parent for an existing dynamic group
    with pytest.raises(IoTFleetError, match="dynamic groups cannot be part of a hierarchy"):
        _tg.ensure_thing_group(client, "dyn", parent="site")
    # a dynamic group cannot be a parent
    with pytest.raises(IoTFleetError, match="dynamic group: dynamic groups cannot be part of a hierarchy"):
        _tg.ensure_thing_group(client, "child", parent="dyn")
    # a dynamic group does not become static (index settings on a static group are refused too)
    with pytest.raises(IoTFleetError, match="static group: AWS IoT cannot turn it into a dynamic group"):
        _tg.ensure_thing_group(client, "site", query_string=QUERY)
    assert client.writes() == []
    assert [g["groupName"] for g in indexing.list_thing_groups()["thingGroups"]] == ["dyn", "site"]


def test_dynamic_remove_four_runs(iot_client, indexing):
    indexing.create_dynamic_thing_group(thingGroupName="dyn", queryString=QUERY)
    client = CountingClient(iot_client)
    check, real, again, check_again = four_runs(_tg.run_thing_group, client, name="dyn", state="absent")
    assert check.changed and real.changed and not again.changed and not check_again.changed
    assert real.before["query_string"] == QUERY and real.after == {}
    assert client.writes() == ["delete_dynamic_thing_group"]
    assert indexing.list_thing_groups()["thingGroups"] == []


def test_dynamic_create_refused_without_fleet_indexing(iot_client, boto3_iot):
    """Fleet indexing off (the default): AWS refuses the create; the module reports AWS's error."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError

    with pytest.raises(IoTAWSError) as e:
        _tg.ensure_thing_group(iot_client, "dyn", query_string=QUERY)
    assert "create dynamic thing group" in e.value.message
    assert _tg.error_code(e.value) == "InvalidRequestException"
    assert "indexing is not enabled" in str(e.value.exception)
    assert boto3_iot.list_thing_groups()["thingGroups"] == []


def test_dynamic_bad_query_refused_by_aws(iot_client, indexing):
    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError

    with pytest.raises(IoTAWSError) as e:
        _tg.ensure_thing_group(iot_client, "dyn", query_string="(attributes.site:lab-1")
    assert _tg.error_code(e.value) == "InvalidQueryException"
    assert indexing.list_thing_groups()["thingGroups"] == []


def test_dynamic_status_is_reported_as_aws_gives_it(stubbed):
    """Stubber: the stand-in evaluates a query at once (always ACTIVE); AWS may answer REBUILDING."""
    client, stubber = stubbed
    answer = dict(
        thingGroupName="dyn",
        thingGroupId="0f8fad5b-d9cb-469f-a165-70867728950e",
        thingGroupArn=ARN + "dyn",
        version=2,
        thingGroupProperties={},
        thingGroupMetadata={"creationDate": datetime.datetime(2026, 1, 1)},
        indexName="AWS_Things",
        queryString=QUERY,
        queryVersion="2017-09-30",
        status="REBUILDING",
    )
    stubber.add_response("describe_thing_group", answer, {"thingGroupName": "dyn"})
    out = _tg.ensure_thing_group(client, "dyn", query_string=QUERY)
    assert not out.changed and out.values["status"] == "REBUILDING"
