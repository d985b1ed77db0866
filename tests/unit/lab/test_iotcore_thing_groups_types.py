# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in's control plane (lab/iotcore/control.py) refuses, and serves, what AWS does for
thing groups and thing types, over HTTP with plain boto3 (the ``moto`` fixture).

Every refusal here is one plain moto 5.2.5 does not make (it deletes a thing type at once, answers
HTTP 500 for dynamic groups and for a missing parent, accepts any group name and any membership).
"""

import datetime
import json

import pytest
from botocore.exceptions import ClientError

from support.iotcore import enable_fleet_indexing, fleet_policy, wait_thing_type_deletable

QUERY = "attributes.site:lab-1"


def refused(call, code, fragment="", **kwargs):
    """Call and expect AWS's error ``code`` whose message contains ``fragment``."""
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    error = e.value.response["Error"]
    assert error["Code"] == code, error
    assert fragment in error["Message"], error
    return error["Message"]


def group_names(iot):
    return sorted(g["groupName"] for g in iot.list_thing_groups()["thingGroups"])


# --- thing types -----------------------------------------------------------------------------


def test_delete_thing_type_refused_unless_deprecated(boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t1")
    refused(boto3_iot.delete_thing_type, "InvalidRequestException", "Cannot delete thing type : t1", thingTypeName="t1")
    assert boto3_iot.describe_thing_type(thingTypeName="t1")["thingTypeMetadata"]["deprecated"] is False


def test_delete_thing_type_waits_after_the_deprecation(moto, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t2")
    before = datetime.datetime.now(datetime.timezone.utc)
    boto3_iot.deprecate_thing_type(thingTypeName="t2")
    metadata = boto3_iot.describe_thing_type(thingTypeName="t2")["thingTypeMetadata"]
    assert metadata["deprecated"] is True
    assert metadata["deprecationDate"] >= before - datetime.timedelta(seconds=1)
    # AWS's message (the duration is the stand-in's delay: "5 minutes" on AWS and by default)
    message = refused(boto3_iot.delete_thing_type, "InvalidRequestException", "Cannot delete thing type : t2. Please wait for",
                      thingTypeName="t2")
    assert message.endswith("after deprecation and then retry")
    # a second deprecation keeps the date; undoing it removes the date
    boto3_iot.deprecate_thing_type(thingTypeName="t2")
    assert boto3_iot.describe_thing_type(thingTypeName="t2")["thingTypeMetadata"]["deprecationDate"] == metadata[
        "deprecationDate"]
    boto3_iot.deprecate_thing_type(thingTypeName="t2", undoDeprecate=True)
    assert "deprecationDate" not in boto3_iot.describe_thing_type(thingTypeName="t2")["thingTypeMetadata"]
    boto3_iot.deprecate_thing_type(thingTypeName="t2")
    wait_thing_type_deletable(boto3_iot, "t2", moto.thing_type_delete_delay)
    boto3_iot.delete_thing_type(thingTypeName="t2")
    assert boto3_iot.list_thing_types()["thingTypes"] == []


def test_delete_thing_type_refused_while_things_have_it(moto, boto3_iot):
    boto3_iot.create_thing_type(thingTypeName="t3")
    boto3_iot.create_thing(thingName="pi-1", thingTypeName="t3")
    boto3_iot.deprecate_thing_type(thingTypeName="t3")
    refused(boto3_iot.delete_thing_type, "InvalidRequestException", "things associated with it (pi-1)", thingTypeName="t3")
    boto3_iot.update_thing(thingName="pi-1", removeThingType=True)
    wait_thing_type_deletable(boto3_iot, "t3", moto.thing_type_delete_delay)
    boto3_iot.delete_thing_type(thingTypeName="t3")


# --- dynamic thing groups ------------------------------------------------------------------------


def test_dynamic_group_needs_fleet_indexing(boto3_iot):
    assert boto3_iot.get_indexing_configuration()["thingIndexingConfiguration"]["thingIndexingMode"] == "OFF"
    refused(boto3_iot.create_dynamic_thing_group, "InvalidRequestException", "indexing is not enabled",
            thingGroupName="dyn", queryString=QUERY)
    assert group_names(boto3_iot) == []
    enable_fleet_indexing(boto3_iot)
    assert boto3_iot.create_dynamic_thing_group(thingGroupName="dyn", queryString=QUERY)["indexName"] == "AWS_Things"


def test_dynamic_group_is_served(boto3_iot):
    enable_fleet_indexing(boto3_iot)
    created = boto3_iot.create_dynamic_thing_group(
        thingGroupName="dyn", queryString=QUERY, thingGroupProperties={"thingGroupDescription": "lab"}
    )
    assert (created["queryString"], created["indexName"], created["queryVersion"]) == (QUERY, "AWS_Things", "2017-09-30")
    # the same create again answers the same group (as CreateThingGroup does)
    again = boto3_iot.create_dynamic_thing_group(
        thingGroupName="dyn", queryString=QUERY, thingGroupProperties={"thingGroupDescription": "lab"}
    )
    assert again["thingGroupId"] == created["thingGroupId"]
    described = boto3_iot.describe_thing_group(thingGroupName="dyn")
    assert described["status"] == "ACTIVE" and described["queryString"] == QUERY and described["version"] == 1
    assert "parentGroupName" not in described["thingGroupMetadata"]
    boto3_iot.create_thing_group(thingGroupName="static")
    assert "queryString" not in boto3_iot.describe_thing_group(thingGroupName="static")
    assert group_names(boto3_iot) == ["dyn", "static"]
    # members: the things the query matches, when asked
    boto3_iot.create_thing(thingName="pi-1", attributePayload={"attributes": {"site": "lab-1"}})
    boto3_iot.create_thing(thingName="pi-2", attributePayload={"attributes": {"site": "lab-2"}})
    assert boto3_iot.list_things_in_thing_group(thingGroupName="dyn")["things"] == ["pi-1"]
    # update: query and properties, with the version
    refused(boto3_iot.update_dynamic_thing_group, "VersionConflictException", thingGroupName="dyn",
            thingGroupProperties={}, queryString="attributes.site:lab-2", expectedVersion=7)
    out = boto3_iot.update_dynamic_thing_group(thingGroupName="dyn", thingGroupProperties={"thingGroupDescription": "2"},
                                               queryString="attributes.site:lab-2", expectedVersion=1)
    assert out["version"] == 2
    described = boto3_iot.describe_thing_group(thingGroupName="dyn")
    assert described["queryString"] == "attributes.site:lab-2"
    assert described["thingGroupProperties"]["thingGroupDescription"] == "2"
    assert boto3_iot.list_things_in_thing_group(thingGroupName="dyn")["things"] == ["pi-2"]
    boto3_iot.delete_dynamic_thing_group(thingGroupName="dyn")
    boto3_iot.delete_dynamic_thing_group(thingGroupName="dyn")  # gone already: no error
    assert group_names(boto3_iot) == ["static"]


def test_dynamic_group_refusals(boto3_iot):
    enable_fleet_indexing(boto3_iot)
    boto3_iot.create_dynamic_thing_group(thingGroupName="dyn", queryString=QUERY)
    boto3_iot.create_thing_group(thingGroupName="static")
    boto3_iot.create_thing(thingName="pi-1")
    boto3_iot.create_policy(policyName="fleet", policyDocument=json.dumps(fleet_policy()))
    dyn_arn = boto3_iot.describe_thing_group(thingGroupName="dyn")["thingGroupArn"]

    # no hierarchy, no explicit members, no policies
    refused(boto3_iot.create_thing_group, "InvalidRequestException", "can't be part of a hierarchy",
            thingGroupName="child", parentGroupName="dyn")
    refused(boto3_iot.add_thing_to_thing_group, "InvalidRequestException", "dynamic thing group dyn",
            thingGroupName="dyn", thingName="pi-1")
    refused(boto3_iot.update_thing_groups_for_thing, "InvalidRequestException", "dynamic thing group dyn",
            thingName="pi-1", thingGroupsToAdd=["dyn"])
    refused(boto3_iot.attach_policy, "InvalidRequestException", "can't have policies", policyName="fleet", target=dyn_arn)
    # each kind with its own calls
    refused(boto3_iot.update_thing_group, "InvalidRequestException", "UpdateDynamicThingGroup",
            thingGroupName="dyn", thingGroupProperties={"thingGroupDescription": "x"})
    refused(boto3_iot.delete_thing_group, "InvalidRequestException", "DeleteDynamicThingGroup", thingGroupName="dyn")
    refused(boto3_iot.update_dynamic_thing_group, "InvalidRequestException", "static thing group",
            thingGroupName="static", thingGroupProperties={}, queryString=QUERY)
    refused(boto3_iot.delete_dynamic_thing_group, "InvalidRequestException", "static thing group", thingGroupName="static")
    # a name taken by either kind
    refused(boto3_iot.create_dynamic_thing_group, "ResourceAlreadyExistsException", thingGroupName="static", queryString=QUERY)
    refused(boto3_iot.create_dynamic_thing_group, "ResourceAlreadyExistsException", thingGroupName="dyn",
            queryString="attributes.site:other")
    refused(boto3_iot.create_thing_group, "ResourceAlreadyExistsException", thingGroupName="dyn")
    # the one index, the one query version, a query that parses
    refused(boto3_iot.create_dynamic_thing_group, "ResourceNotFoundException", "AWS_Things",
            thingGroupName="d2", queryString=QUERY, indexName="other")
    refused(boto3_iot.create_dynamic_thing_group, "InvalidRequestException", "2017-09-30",
            thingGroupName="d2", queryString=QUERY, queryVersion="2030-01-01")
    refused(boto3_iot.create_dynamic_thing_group, "InvalidQueryException", thingGroupName="d2",
            queryString="(attributes.site:lab-1")
    refused(boto3_iot.update_dynamic_thing_group, "InvalidQueryException", thingGroupName="dyn",
            thingGroupProperties={}, queryString="attributes.site:a AND")
    # nothing was written
    assert group_names(boto3_iot) == ["dyn", "static"]
    assert boto3_iot.describe_thing_group(thingGroupName="dyn")["queryString"] == QUERY
    assert boto3_iot.describe_thing_group(thingGroupName="dyn")["version"] == 1
    assert boto3_iot.list_attached_policies(target=dyn_arn)["policies"] == []
    assert boto3_iot.list_thing_groups_for_thing(thingName="pi-1")["thingGroups"] == []


# --- static thing groups ---------------------------------------------------------------------------


def test_static_group_refusals(boto3_iot):
    for name in ("a b", "g.1", "x" * 129):
        refused(boto3_iot.create_thing_group, "InvalidRequestException", "must match", thingGroupName=name)
    refused(boto3_iot.create_thing_group, "ResourceNotFoundException", "nope", thingGroupName="child",
            parentGroupName="nope")
    boto3_iot.create_thing_group(thingGroupName="site-a")
    boto3_iot.create_thing_group(thingGroupName="site-b")
    boto3_iot.create_thing_group(thingGroupName="cams", parentGroupName="site-a")
    boto3_iot.create_thing_group(thingGroupName="cams", parentGroupName="site-a")  # the same again: fine
    refused(boto3_iot.create_thing_group, "ResourceAlreadyExistsException", "different parent", thingGroupName="cams",
            parentGroupName="site-b")
    refused(boto3_iot.create_thing_group, "ResourceAlreadyExistsException", "different parent", thingGroupName="cams")
    assert group_names(boto3_iot) == ["cams", "site-a", "site-b"]
    assert boto3_iot.describe_thing_group(thingGroupName="cams")["thingGroupMetadata"]["parentGroupName"] == "site-a"


def test_a_thing_is_in_one_group_of_a_hierarchy(boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="site-a")
    boto3_iot.create_thing_group(thingGroupName="shelf-1", parentGroupName="site-a")
    boto3_iot.create_thing_group(thingGroupName="shelf-2", parentGroupName="site-a")
    boto3_iot.create_thing_group(thingGroupName="pis")
    boto3_iot.create_thing(thingName="pi-1")
    boto3_iot.add_thing_to_thing_group(thingGroupName="shelf-1", thingName="pi-1")
    boto3_iot.add_thing_to_thing_group(thingGroupName="shelf-1", thingName="pi-1")  # again: no error
    boto3_iot.add_thing_to_thing_group(thingGroupName="pis", thingName="pi-1")      # another hierarchy
    for group in ("shelf-2", "site-a"):
        refused(boto3_iot.add_thing_to_thing_group, "InvalidRequestException", "only one group of a hierarchy",
                thingGroupName=group, thingName="pi-1")
    refused(boto3_iot.update_thing_groups_for_thing, "InvalidRequestException", "only one group of a hierarchy",
            thingName="pi-1", thingGroupsToAdd=["shelf-2"], thingGroupsToRemove=["pis"])
    assert sorted(g["groupName"] for g in boto3_iot.list_thing_groups_for_thing(thingName="pi-1")["thingGroups"]) == [
        "pis", "shelf-1"]
    # moving within the hierarchy in one call: out of one, into the other
    boto3_iot.update_thing_groups_for_thing(thingName="pi-1", thingGroupsToAdd=["shelf-2"], thingGroupsToRemove=["shelf-1"])
    assert sorted(g["groupName"] for g in boto3_iot.list_thing_groups_for_thing(thingName="pi-1")["thingGroups"]) == [
        "pis", "shelf-2"]


def test_a_thing_is_in_at_most_10_groups(boto3_iot):
    boto3_iot.create_thing(thingName="pi-1")
    for i in range(11):
        boto3_iot.create_thing_group(thingGroupName=f"g{i:02d}")
    for i in range(10):
        boto3_iot.add_thing_to_thing_group(thingGroupName=f"g{i:02d}", thingName="pi-1")
    refused(boto3_iot.add_thing_to_thing_group, "InvalidRequestException", "10 thing groups",
            thingGroupName="g10", thingName="pi-1")
    assert boto3_iot.list_things_in_thing_group(thingGroupName="g10")["things"] == []


# --- optimistic concurrency on thing groups (the fleet lock's ground) ----------------------------


def _owner(value, merge=True):
    return {"attributePayload": {"attributes": {"owner": value}, "merge": merge}}


def test_update_thing_group_refuses_a_stale_expected_version(boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="lk", thingGroupProperties=_owner("a", merge=False))
    version = boto3_iot.describe_thing_group(thingGroupName="lk")["version"]
    assert boto3_iot.update_thing_group(thingGroupName="lk", thingGroupProperties=_owner("b"),
                                        expectedVersion=version)["version"] == version + 1
    # the version read before the other writer's update is stale; 0 too (plain moto lets a falsy one through)
    for stale in (version, 0, version + 5):
        refused(boto3_iot.update_thing_group, "VersionConflictException", "lk", thingGroupName="lk",
                thingGroupProperties=_owner("c"), expectedVersion=stale)
    described = boto3_iot.describe_thing_group(thingGroupName="lk")
    assert described["version"] == version + 1
    assert described["thingGroupProperties"]["attributePayload"]["attributes"] == {"owner": "b"}
    # without expectedVersion the update is unconditional
    boto3_iot.update_thing_group(thingGroupName="lk", thingGroupProperties=_owner("d"))
    assert boto3_iot.describe_thing_group(thingGroupName="lk")["version"] == version + 2


def test_delete_thing_group_refuses_a_stale_expected_version(boto3_iot):
    boto3_iot.create_thing_group(thingGroupName="lk")
    boto3_iot.update_thing_group(thingGroupName="lk", thingGroupProperties=_owner("a"))
    refused(boto3_iot.delete_thing_group, "VersionConflictException", "lk", thingGroupName="lk", expectedVersion=1)
    assert group_names(boto3_iot) == ["lk"]
    boto3_iot.delete_thing_group(thingGroupName="lk", expectedVersion=2)
    assert group_names(boto3_iot) == []


def test_create_thing_group_on_an_existing_name_with_other_properties_is_refused(boto3_iot):
    first = boto3_iot.create_thing_group(thingGroupName="lk", thingGroupProperties=_owner("a", merge=False))
    # the same properties again: AWS answers the existing group
    again = boto3_iot.create_thing_group(thingGroupName="lk", thingGroupProperties=_owner("a", merge=False))
    assert again["thingGroupArn"] == first["thingGroupArn"]
    refused(boto3_iot.create_thing_group, "ResourceAlreadyExistsException", "different properties",
            thingGroupName="lk", thingGroupProperties=_owner("b", merge=False))
    refused(boto3_iot.create_thing_group, "ResourceAlreadyExistsException", "different properties", thingGroupName="lk")
    assert boto3_iot.describe_thing_group(thingGroupName="lk")["thingGroupProperties"]["attributePayload"][
        "attributes"] == {"owner": "a"}


@pytest.mark.parametrize("attributes", [{"owner": "a b"}, {"owner": "a+b"}, {"owner": "x" * 801}, {"bad name": "a"}])
def test_thing_group_attributes_must_match_the_api_patterns(boto3_iot, attributes):
    payload = {"attributePayload": {"attributes": attributes}}
    refused(boto3_iot.create_thing_group, "InvalidRequestException", "must match", thingGroupName="lk",
            thingGroupProperties=payload)
    boto3_iot.create_thing_group(thingGroupName="lk")
    refused(boto3_iot.update_thing_group, "InvalidRequestException", "must match", thingGroupName="lk",
            thingGroupProperties=payload)
