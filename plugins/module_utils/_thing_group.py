# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT thing groups, static and dynamic: validation, facts and the ensure/remove functions.

What AWS allows, and therefore what this code does:

* A static group's parent is given once, to ``CreateThingGroup``; ``UpdateThingGroup`` has no
  parent ("You can't change a group's parent later"). A declared parent that differs from AWS's is
  refused before any write; the way out is to delete the group and create it again.
* A dynamic group (``CreateDynamicThingGroup``, a fleet-indexing query) cannot be part of a
  hierarchy, and a static group and a dynamic group cannot be turned into each other. Its query
  string, index name and query version can be changed (``UpdateDynamicThingGroup``). Dynamic groups
  are created, updated and deleted with their own calls; the kind of an existing group is read from
  ``DescribeThingGroup`` (a dynamic group has a ``queryString``).
* Description and attributes of both kinds are changed in place, with the version read just
  before (``expectedVersion``), so a concurrent change fails instead of being lost. Attributes
  merge like a thing's (``merge: true``, an empty value removes one), at most 50.

The lab's stand-in serves dynamic groups and AWS's refusals (lab/iotcore/control.py; moto alone
answers HTTP 500 for them); moto keeps a removed attribute as an empty value (AWS removes it: an
empty value is read as absent here).
"""

import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import attribute_update
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import normalize_attributes
from ansible_collections.iotfleet.aws.plugins.module_utils._thing_type import validate_description

THING_GROUP_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
INDEX_NAME_RE = THING_GROUP_NAME_RE
MAX_GROUP_ATTRIBUTES = 50
DYNAMIC_KEYS = ("query_string", "index_name", "query_version")


# ---------------------------------------------------------------------------------------------
# validation and facts (pure)


def validate_group_name(name, what="thing group name"):
    if not isinstance(name, str) or not THING_GROUP_NAME_RE.match(name):
        raise IoTFleetError(f"Invalid {what} {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-].")
    return name


def validate_parent(parent):
    """None (leave alone), ``""`` (no parent: a root group) or a valid group name."""
    if parent is None or parent == "":
        return parent
    return validate_group_name(parent, "parent group name")


def normalize_group_attributes(attributes):
    """Validate a desired ``attributes`` dict; string values, ``""`` = must not exist, None stays None."""
    return normalize_attributes(attributes, what="thing group", limit=MAX_GROUP_ATTRIBUTES)


def validate_query(query_string, index_name, query_version):
    if query_string is not None and (not isinstance(query_string, str) or not query_string.strip()):
        raise IoTFleetError(
            "query_string must be a non-empty fleet indexing query (for example 'attributes.site:lab')."
        )
    if index_name is not None and (not isinstance(index_name, str) or not INDEX_NAME_RE.match(index_name)):
        raise IoTFleetError(
            f"Invalid index name {index_name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-] "
            "(the one index today is AWS_Things)."
        )
    if query_version is not None and (not isinstance(query_version, str) or not query_version):
        raise IoTFleetError(f"Invalid query version {query_version!r} (the one version today is 2017-09-30).")


def is_dynamic(described):
    return bool((described or {}).get("queryString"))


def thing_group_facts(described):
    """The comparable facts of a ``describe_thing_group`` answer (no ids, arn, version, status, dates).

    An attribute with an empty value is absent (AWS removes it; moto keeps it as ``""``).
    """
    if described is None:
        return {}
    props = described.get("thingGroupProperties") or {}
    attributes = (props.get("attributePayload") or {}).get("attributes") or {}
    facts = dict(
        thing_group_name=described["thingGroupName"],
        description=props.get("thingGroupDescription") or None,
        attributes={k: v for k, v in attributes.items() if v != ""},
        parent_group=(described.get("thingGroupMetadata") or {}).get("parentGroupName") or None,
    )
    if is_dynamic(described):
        facts.update(
            query_string=described.get("queryString"),
            index_name=described.get("indexName"),
            query_version=described.get("queryVersion"),
        )
    return facts


def _values(described, facts):
    values = dict(
        thing_group_name=facts["thing_group_name"],
        thing_group_arn=(described or {}).get("thingGroupArn"),
        thing_group_id=(described or {}).get("thingGroupId"),
        parent_group=facts["parent_group"],
        description=facts["description"],
        attributes=facts["attributes"],
        dynamic="query_string" in facts,
    )
    for key in DYNAMIC_KEYS:
        if key in facts:
            values[key] = facts[key]
    if (described or {}).get("status"):
        values["status"] = described["status"]
    return values


# ---------------------------------------------------------------------------------------------
# AWS calls


def describe_thing_group(client, thing_group_name):
    """``describe_thing_group`` or None when the group does not exist."""
    return client.get("describe_thing_group", thingGroupName=thing_group_name)


def check_parent(client, parent):
    """Raise IoTFleetError unless the group ``parent`` exists and is static."""
    described = describe_thing_group(client, parent)
    if described is None:
        raise IoTFleetError(f"Parent thing group {parent!r} does not exist: create it first.")
    if is_dynamic(described):
        raise IoTFleetError(
            f"Thing group {parent!r} is a dynamic group: dynamic groups cannot be part of a hierarchy, so it "
            "cannot be a parent."
        )


def _update(client, thing_group_name, operation, current, **kwargs):
    if current.get("version") is not None:
        kwargs["expectedVersion"] = current["version"]
    try:
        client.call(operation, thingGroupName=thing_group_name, **kwargs)
    except IoTAWSError as e:
        if error_code(e) == "VersionConflictException":
            raise IoTFleetError(
                f"Thing group {thing_group_name!r} was changed by someone else while it was updated; run again."
            ) from e
        raise


def _parent_text(parent):
    return f"parent {parent!r}" if parent else "no parent"


def _update_properties(before, after, changes):
    """``thingGroupProperties`` for an update: complete, so that no reading of the PATCH can drop a
    property the user left alone. The attributes are merged (``merge: true``): the final ones are
    sent as they are and a removed one with an empty value, as AWS documents.
    """
    properties = {}
    if after["description"] is not None or before["description"] is not None:
        properties["thingGroupDescription"] = after["description"] or ""
    attributes = dict(after["attributes"])
    attributes.update({k: v for k, v in changes.items() if v == ""})
    if attributes:
        properties["attributePayload"] = dict(attributes=attributes, merge=True)
    return properties


def ensure_thing_group(
    client,
    thing_group_name,
    description=None,
    attributes=None,
    purge_attributes=False,
    parent=None,
    query_string=None,
    index_name=None,
    query_version=None,
    check_mode=False,
):
    """Make the thing group exist as declared.

    A group is created dynamic when ``query_string`` is set, else static. Every option left at
    None is left alone on an existing group (``purge_attributes`` treats undeclared attributes as
    removed). Refused before any write: a parent change, a parent that is missing or dynamic, a
    parent for a dynamic group, turning a static group dynamic or back, query settings on a
    static group.
    Returns an :class:`Outcome` with thing_group_name, thing_group_arn, thing_group_id,
    parent_group, description, attributes, dynamic (and query_string, index_name, query_version,
    status for a dynamic group).
    """
    validate_group_name(thing_group_name)
    description = validate_description(description, what="thing group")
    desired_attributes = normalize_group_attributes(attributes)
    parent = validate_parent(parent)
    validate_query(query_string, index_name, query_version)
    if parent and query_string is not None:
        raise IoTFleetError(
            "A dynamic thing group (query_string) cannot have a parent: AWS IoT keeps dynamic groups out of "
            "group hierarchies."
        )
    if purge_attributes and desired_attributes is None:
        desired_attributes = {}

    current = describe_thing_group(client, thing_group_name)
    if current is None:
        return _create(
            client,
            thing_group_name,
            description,
            desired_attributes,
            parent,
            query_string,
            index_name,
            query_version,
            check_mode,
        )

    before = thing_group_facts(current)
    dynamic = is_dynamic(current)
    if query_string is not None and not dynamic:
        raise IoTFleetError(
            f"Thing group {thing_group_name!r} is a static group: AWS IoT cannot turn it into a dynamic group "
            "(query_string). Delete it and create it again, or use another name."
        )
    if not dynamic and (index_name is not None or query_version is not None):
        raise IoTFleetError(
            f"Thing group {thing_group_name!r} is a static group: index_name and query_version apply to dynamic "
            "groups only."
        )
    if parent is not None and (parent or None) != before["parent_group"]:
        if dynamic:
            reason = "it is a dynamic group, and dynamic groups cannot be part of a hierarchy"
        else:
            reason = (
                "AWS IoT sets a group's parent only when the group is created (UpdateThingGroup has no parent). "
                "Delete the group and create it again under the new parent (its things, child groups and "
                "policies must then be added again), or use another name"
            )
        raise IoTFleetError(
            f"Thing group {thing_group_name!r} has {_parent_text(before['parent_group'])}, declared "
            f"{_parent_text(parent)}: {reason}.",
            current_parent=before["parent_group"],
        )

    changes, final_attributes = attribute_update(desired_attributes, before["attributes"], purge_attributes,
                                                 MAX_GROUP_ATTRIBUTES, f"Thing group {thing_group_name!r}")
    after = dict(before, attributes=final_attributes)
    changed = bool(changes)
    if description is not None and (description or None) != before["description"]:
        after["description"] = description or None
        changed = True
    query = {}
    if dynamic:
        for key, name, value in (
            ("query_string", "queryString", query_string),
            ("index_name", "indexName", index_name),
            ("query_version", "queryVersion", query_version),
        ):
            if value is not None and value != before[key]:
                query[name] = value
                after[key] = value

    values = _values(current, after)
    if query:
        values.pop("status", None)  # AWS rebuilds the group's membership after a query change
    if not changed and not query:
        return Outcome(False, before=before, after=after, **values)
    if not check_mode:
        properties = _update_properties(before, after, changes)
        if dynamic:
            _update(
                client,
                thing_group_name,
                "update_dynamic_thing_group",
                current,
                thingGroupProperties=properties,
                **query,
            )
        else:
            _update(client, thing_group_name, "update_thing_group", current, thingGroupProperties=properties)
    return Outcome(True, before=before, after=after, **values)


def _create(client, name, description, desired_attributes, parent, query_string, index_name, query_version, check_mode):
    dynamic = query_string is not None
    if not dynamic and (index_name is not None or query_version is not None):
        raise IoTFleetError("index_name and query_version apply to dynamic thing groups only: set query_string.")
    if parent:
        check_parent(client, parent)
    final_attributes = {k: v for k, v in (desired_attributes or {}).items() if v != ""}
    after = dict(
        thing_group_name=name,
        description=description or None,
        attributes=final_attributes,
        parent_group=parent or None,
    )
    if dynamic:
        after.update(query_string=query_string, index_name=index_name, query_version=query_version)
    created = {}
    if not check_mode:
        properties = {}
        if description:
            properties["thingGroupDescription"] = description
        if final_attributes:
            properties["attributePayload"] = dict(attributes=final_attributes)
        kwargs = dict(thingGroupName=name)
        if properties:
            kwargs["thingGroupProperties"] = properties
        if dynamic:
            kwargs["queryString"] = query_string
            if index_name is not None:
                kwargs["indexName"] = index_name
            if query_version is not None:
                kwargs["queryVersion"] = query_version
            created = client.call("create_dynamic_thing_group", **kwargs)
            # AWS answers with the index and query version it applied (defaults included)
            after.update(
                index_name=created.get("indexName") or index_name,
                query_version=created.get("queryVersion") or query_version,
            )
        else:
            if parent:
                kwargs["parentGroupName"] = parent
            created = client.call("create_thing_group", **kwargs)
    return Outcome(True, before={}, after=after, **_values(created, after))


def child_groups(client, thing_group_name):
    """Names of the direct child groups (sorted)."""
    groups = client.paginate("list_thing_groups", "thingGroups", parentGroup=thing_group_name, recursive=False)
    return sorted(g["groupName"] for g in groups)


def remove_thing_group(client, thing_group_name, check_mode=False):
    """Delete the thing group (with the call of its kind). Refused while it has child groups."""
    validate_group_name(thing_group_name)
    current = describe_thing_group(client, thing_group_name)
    if current is None:
        return Outcome(False, before={}, after={}, thing_group_name=thing_group_name)
    before = thing_group_facts(current)
    dynamic = is_dynamic(current)
    if not dynamic:
        children = child_groups(client, thing_group_name)
        if children:
            raise IoTFleetError(
                f"Thing group {thing_group_name!r} still has child groups: {', '.join(children)}. AWS IoT deletes "
                "a group only without children: delete them first.",
                child_groups=children,
            )
    if not check_mode:
        client.delete(
            "delete_dynamic_thing_group" if dynamic else "delete_thing_group", thingGroupName=thing_group_name
        )
    return Outcome(True, before=before, after={}, thing_group_name=thing_group_name)


# ---------------------------------------------------------------------------------------------
# module entry point


def run_thing_group(client, *, name, state="present", check_mode=False, **options):
    """What ``iot_thing_group`` does: :func:`ensure_thing_group` or :func:`remove_thing_group`."""
    thing_group_name = name
    if state == "absent":
        return remove_thing_group(client, thing_group_name, check_mode=check_mode)
    return ensure_thing_group(client, thing_group_name, check_mode=check_mode, **options)
