# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT things: validation, desired-vs-current helpers and the ensure/remove functions.

:func:`ensure_thing` is what both ``iot_thing`` and the batched fleet module call: one
``describe_thing`` (none when the caller passes ``current``) and at most one write
(``create_thing`` or ``update_thing``) unless a thing type must be checked.

moto differs from AWS: ``create_thing`` on an existing name replaces the thing (AWS answers a
conflict unless identical). This code therefore never calls ``create_thing`` for a thing that
``describe_thing`` found; changes go through ``update_thing``.
"""

import re
import time

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import validate_thing_name

MAX_ATTRIBUTES = 50
ATTRIBUTE_NAME_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#-]{1,128}$")
ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}$")
THING_TYPE_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
THING_GROUP_RE = THING_TYPE_RE


# ---------------------------------------------------------------------------------------------
# validation and normalisation (pure)


def attribute_value(value):
    """An attribute value as AWS stores it: a string (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise IoTFleetError(f"Thing attribute values must be scalars, got a {type(value).__name__}.")
    return str(value)


def normalize_attributes(attributes, what="thing", limit=None):
    """Validate a desired ``attributes`` dict; return it with string values (None stays None).

    A value of ``""`` (or None) means "this attribute must not exist", as in AWS's merge.
    ``what`` names the owner in messages (``thing``, ``thing group``); ``limit`` is its attribute
    cap (default: a thing's, MAX_ATTRIBUTES).
    """
    limit = MAX_ATTRIBUTES if limit is None else limit
    if attributes is None:
        return None
    if not isinstance(attributes, dict):
        raise IoTFleetError(f"{what.capitalize()} attributes must be a dict, got {type(attributes).__name__}.")
    result = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME_RE.match(name):
            raise IoTFleetError(
                f"Invalid {what} attribute name {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9_.,@/:#-]."
            )
        if isinstance(value, (dict, list)):
            raise IoTFleetError(f"{what.capitalize()} attribute values must be scalars; {name!r} is a "
                                f"{type(value).__name__}.")
        text = attribute_value(value)
        if not ATTRIBUTE_VALUE_RE.match(text):
            raise IoTFleetError(
                f"Invalid value for {what} attribute {name!r}: AWS IoT allows up to 800 characters from "
                r"[a-zA-Z0-9_.,@/:#=[]-] (no spaces)."
            )
        result[name] = text
    count = len([v for v in result.values() if v != ""])
    if count > limit:
        raise IoTFleetError(f"A {what} can have at most {limit} attributes, {count} were given.")
    return result


def validate_thing_type(thing_type):
    """None (leave alone), "" (no thing type) or a valid thing type name."""
    if thing_type is None or thing_type == "":
        return thing_type
    if not isinstance(thing_type, str) or not THING_TYPE_RE.match(thing_type):
        raise IoTFleetError(
            f"Invalid thing type name {thing_type!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-]."
        )
    return thing_type


def validate_thing_groups(thing_groups):
    if thing_groups is None:
        return None
    groups = []
    for group in thing_groups:
        if not isinstance(group, str) or not THING_GROUP_RE.match(group):
            raise IoTFleetError(
                f"Invalid thing group name {group!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-]."
            )
        if group not in groups:
            groups.append(group)
    return groups


def attribute_changes(desired, current, purge=False):
    """The ``attributes`` of an ``update_thing`` merge payload, or {} when nothing changes.

    ``desired``: normalised (``""`` = must not exist); ``current``: as described. With ``purge``
    every current attribute that is not declared is removed too (value ``""``).
    """
    current = current or {}
    changes = {}
    for name, value in (desired or {}).items():
        if value == "":
            if name in current:
                changes[name] = ""
        elif current.get(name) != value:
            changes[name] = value
    if purge:
        for name in current:
            if name not in (desired or {}):
                changes[name] = ""
    return changes


def attribute_update(desired, current, purge, limit, what):
    """``(changes, final)``: the :func:`attribute_changes` of an update and the attributes after it.
    Raises IoTFleetError when more than ``limit`` would remain (``what`` names the owner)."""
    changes = attribute_changes(desired, current, purge)
    final = apply_attribute_changes(current, changes)
    if len(final) > limit:
        raise IoTFleetError(f"{what} would have {len(final)} attributes; AWS IoT allows at most {limit} "
                            "(set purge_attributes to remove undeclared ones).")
    return changes, final


def apply_attribute_changes(current, changes):
    """The attributes after a merge of ``changes`` into ``current``."""
    result = dict(current or {})
    for name, value in changes.items():
        if value == "":
            result.pop(name, None)
        else:
            result[name] = value
    return result


def thing_facts(description):
    """The comparable facts of a ``describe_thing`` answer (no ids, arn or version)."""
    if description is None:
        return {}
    return dict(
        thing_name=description["thingName"],
        attributes=dict(description.get("attributes") or {}),
        thing_type=description.get("thingTypeName"),
    )


# ---------------------------------------------------------------------------------------------
# AWS calls


def describe_thing(client, thing_name):
    """``describe_thing`` or None when the thing does not exist."""
    return client.get("describe_thing", thingName=thing_name)


def check_thing_type(client, thing_type):
    """Raise IoTFleetError unless ``thing_type`` exists and is not deprecated."""
    described = client.get("describe_thing_type", thingTypeName=thing_type)
    if described is None:
        raise IoTFleetError(
            f"Thing type {thing_type!r} does not exist: create it first (for example with "
            "amazon.aws/community.aws or the AWS CLI 'aws iot create-thing-type')."
        )
    if (described.get("thingTypeMetadata") or {}).get("deprecated"):
        raise IoTFleetError(f"Thing type {thing_type!r} is deprecated: AWS IoT refuses new things of that type.")


def ensure_thing(
    client,
    thing_name,
    attributes=None,
    purge_attributes=False,
    thing_type=None,
    check_mode=False,
    current=None,
    verify_thing_type=True,
):
    """Make the thing exist with the declared attributes and thing type.

    ``attributes``: dict or None (leave alone); ``purge_attributes``: remove undeclared ones;
    ``thing_type``: name, ``""`` (remove the type) or None (leave alone); ``current``: a
    ``describe_thing`` answer the caller already has (then no describe is made);
    ``verify_thing_type``: False when the caller has already checked the thing type once (a batch),
    so that no ``describe_thing_type`` is made per thing.
    Returns an :class:`Outcome` with thing_name, thing_arn, thing_id, attributes, thing_type.
    """
    validate_thing_name(thing_name)
    desired_attributes = normalize_attributes(attributes)
    thing_type = validate_thing_type(thing_type)
    if purge_attributes and desired_attributes is None:
        desired_attributes = {}

    if current is None:
        current = describe_thing(client, thing_name)

    if current is None:
        final_attributes = {k: v for k, v in (desired_attributes or {}).items() if v != ""}
        after = dict(thing_name=thing_name, attributes=final_attributes, thing_type=thing_type or None)
        if thing_type and verify_thing_type:
            check_thing_type(client, thing_type)
        arn = thing_id = None
        if not check_mode:
            kwargs = dict(thingName=thing_name)
            if final_attributes:
                kwargs["attributePayload"] = dict(attributes=final_attributes)
            if thing_type:
                kwargs["thingTypeName"] = thing_type
            created = client.call("create_thing", **kwargs)
            arn, thing_id = created.get("thingArn"), created.get("thingId")
        return Outcome(
            True, before={}, after=after, thing_name=thing_name, thing_arn=arn, thing_id=thing_id, **_values(after)
        )

    before = thing_facts(current)
    changes, final_attributes = attribute_update(desired_attributes, before["attributes"], purge_attributes,
                                                 MAX_ATTRIBUTES, f"Thing {thing_name!r}")
    kwargs = {}
    final_type = before["thing_type"]
    if thing_type is not None and (thing_type or None) != before["thing_type"]:
        if thing_type:
            if verify_thing_type:
                check_thing_type(client, thing_type)
            kwargs["thingTypeName"] = thing_type
        else:
            kwargs["removeThingType"] = True
        final_type = thing_type or None
    if changes:
        kwargs["attributePayload"] = dict(attributes=changes, merge=True)

    after = dict(thing_name=thing_name, attributes=final_attributes, thing_type=final_type)
    values = dict(thing_name=thing_name, thing_arn=current.get("thingArn"), thing_id=current.get("thingId"))
    if not kwargs:
        return Outcome(False, before=before, after=after, **values, **_values(after))
    if not check_mode:
        if current.get("version") is not None:
            kwargs["expectedVersion"] = current["version"]
        try:
            client.call("update_thing", thingName=thing_name, **kwargs)
        except IoTAWSError as e:
            if error_code(e) == "VersionConflictException":
                raise IoTFleetError(
                    f"Thing {thing_name!r} was changed by someone else while it was updated; run again.",
                ) from e
            raise
    return Outcome(True, before=before, after=after, **values, **_values(after))


def _values(facts):
    return dict(attributes=facts["attributes"], thing_type=facts["thing_type"])


def list_thing_principals(client, thing_name):
    return client.paginate("list_thing_principals", "principals", thingName=thing_name)


def list_thing_groups(client, thing_name):
    """Names of the thing groups the thing is in (sorted)."""
    groups = client.paginate("list_thing_groups_for_thing", "thingGroups", thingName=thing_name)
    return sorted(g["groupName"] for g in groups)


def ensure_thing_groups(client, thing_name, thing_groups, purge=False, check_mode=False, exists=True,
                        current=None, groups_checked=False):
    """Put the thing into ``thing_groups`` (and out of others with ``purge``).

    Returns ``(changed, before, after)`` as sorted lists of group names. ``exists`` False means
    the thing is new (or only about to be created in check mode): it is in no group yet.
    ``current``: the thing's groups as far as the caller knows them already (then none is listed);
    ``groups_checked``: the caller made sure once that the groups exist (a batch), so none is
    described per thing.
    """
    thing_groups = validate_thing_groups(thing_groups)
    if current is None:
        current = list_thing_groups(client, thing_name) if exists else []
    if thing_groups is None:
        return False, current, current
    to_add = [g for g in thing_groups if g not in current]
    to_remove = [g for g in current if g not in thing_groups] if purge else []
    for group in [] if groups_checked else to_add:
        if client.get("describe_thing_group", thingGroupName=group) is None:
            raise IoTFleetError(f"Thing group {group!r} does not exist: create it first.")
    if not check_mode:
        for group in to_add:
            client.call("add_thing_to_thing_group", thingGroupName=group, thingName=thing_name)
        for group in to_remove:
            client.call("remove_thing_from_thing_group", thingGroupName=group, thingName=thing_name)
    after = sorted((set(current) | set(to_add)) - set(to_remove))
    return bool(to_add or to_remove), current, after


def remove_thing(client, thing_name, detach_principals=False, check_mode=False, delete_retries=5, sleep=time.sleep):
    """Delete the thing. Refuses while principals are attached unless ``detach_principals``.

    AWS detaches principals asynchronously: a delete right after a detach may be refused for a
    moment, so the delete is retried a few times on ``InvalidRequestException``.
    """
    validate_thing_name(thing_name)
    current = describe_thing(client, thing_name)
    if current is None:
        return Outcome(False, before={}, after={}, thing_name=thing_name, detached_principals=[])
    before = thing_facts(current)
    principals = list_thing_principals(client, thing_name)
    if principals and not detach_principals:
        raise IoTFleetError(
            f"Thing {thing_name!r} still has {len(principals)} principal(s) attached; detach them first "
            "(iotfleet.aws.iot_thing_principal) or set detach_principals=true.",
            principals=principals,
        )
    if not check_mode:
        for principal in principals:
            client.delete("detach_thing_principal", thingName=thing_name, principal=principal)
        for attempt in range(delete_retries + 1):
            try:
                client.delete("delete_thing", thingName=thing_name)
                break
            except IoTAWSError as e:
                if error_code(e) != "InvalidRequestException" or not principals or attempt == delete_retries:
                    raise
                sleep(min(2.0, 0.25 * (attempt + 1)))
    return Outcome(True, before=before, after={}, thing_name=thing_name, detached_principals=principals)


# ---------------------------------------------------------------------------------------------
# module entry points


def run_thing(
    client,
    *,
    name,
    state="present",
    check_mode=False,
    attributes=None,
    purge_attributes=False,
    thing_type=None,
    thing_groups=None,
    purge_thing_groups=False,
    detach_principals=False,
):
    """What ``iot_thing`` does: :func:`ensure_thing` (+ groups) or :func:`remove_thing`."""
    thing_name = validate_thing_name(name)
    if state == "absent":
        return remove_thing(client, thing_name, detach_principals=detach_principals, check_mode=check_mode)
    normalize_attributes(attributes)
    validate_thing_type(thing_type)
    validate_thing_groups(thing_groups)
    outcome = ensure_thing(
        client,
        thing_name,
        attributes=attributes,
        purge_attributes=purge_attributes,
        thing_type=thing_type,
        check_mode=check_mode,
    )
    exists = not (check_mode and outcome.before == {})
    changed, before_groups, after_groups = ensure_thing_groups(
        client, thing_name, thing_groups, purge=purge_thing_groups, check_mode=check_mode, exists=exists
    )
    outcome.changed = outcome.changed or changed
    if outcome.before:
        outcome.before["thing_groups"] = before_groups
    outcome.after["thing_groups"] = after_groups
    outcome.values["thing_groups"] = after_groups
    return outcome


def describe_things(
    client,
    thing_name=None,
    attribute_name=None,
    attribute_value=None,
    thing_type=None,
    include_principals=False,
):
    """What ``iot_thing_info`` does: one thing by name, or a filtered, paginated list_things."""
    if attribute_value is not None and attribute_name is None:
        raise IoTFleetError("attribute_value needs attribute_name.")
    things = []
    if thing_name is not None:
        validate_thing_name(thing_name)
        described = describe_thing(client, thing_name)
        if described is not None:
            things.append(
                dict(
                    thing_name=described["thingName"],
                    thing_arn=described.get("thingArn"),
                    thing_id=described.get("thingId"),
                    thing_type=described.get("thingTypeName"),
                    attributes=dict(described.get("attributes") or {}),
                    version=described.get("version"),
                )
            )
    else:
        kwargs = {}
        if attribute_name is not None:
            if not ATTRIBUTE_NAME_RE.match(attribute_name):
                raise IoTFleetError(f"Invalid attribute name {attribute_name!r}.")
            kwargs["attributeName"] = attribute_name
            if attribute_value is not None:
                kwargs["attributeValue"] = attribute_value_text(attribute_value)
        if thing_type is not None:
            validate_thing_type(thing_type)
            kwargs["thingTypeName"] = thing_type
        for item in client.paginate("list_things", "things", **kwargs):
            things.append(
                dict(
                    thing_name=item["thingName"],
                    thing_arn=item.get("thingArn"),
                    thing_type=item.get("thingTypeName"),
                    attributes=dict(item.get("attributes") or {}),
                    version=item.get("version"),
                )
            )
    if include_principals:
        for thing in things:
            # a thing deleted meanwhile reads as [] (paginate treats "missing" as empty)
            thing["principals"] = list_thing_principals(client, thing["thing_name"])
    return dict(changed=False, things=things)


def attribute_value_text(value):
    text = attribute_value(value)
    if not ATTRIBUTE_VALUE_RE.match(text):
        raise IoTFleetError(f"Invalid attribute value {text!r}.")
    return text
