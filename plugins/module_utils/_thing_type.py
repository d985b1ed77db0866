# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT thing types: validation, facts and the ensure/remove functions.

What AWS allows, and therefore what this code does:

* A thing type's name, description and searchable attributes are fixed at creation.
  ``UpdateThingType`` exists, but AWS's own CloudFormation handler for ``AWS::IoT::ThingType``
  updates only ``mqtt5Configuration`` with it and refuses a changed description or searchable
  attributes ("cannot be added/updated/removed"); the developer guide calls thing types immutable.
  A declared description or searchable attributes that differ from AWS's are refused here, before
  any write, with the way out (a new type, or delete and re-create).
* Deprecation is reversible (``DeprecateThingType`` with ``undoDeprecate``): ``deprecated``.
* ``DeleteThingType`` needs the type deprecated for 5 minutes and no thing associated with it.
  The first and the last condition are checked here before any write; the 5 minutes are AWS's
  (``InvalidRequestException`` "... 5 minutes after deprecation and then retry"), translated into
  a clear failure. Nothing waits or forces: run the task again after the 5 minutes.

The lab's stand-in refuses the delete as AWS does (lab/iotcore/control.py: moto alone deletes a
type at once and reports no deprecation date); its tests lower the 5 minutes.
"""

import datetime
import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome

THING_TYPE_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
SEARCHABLE_ATTRIBUTE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#-]{1,128}$")
# AWS's pattern [\p{Graph}\x20]* (Java, ASCII classes): printable ASCII and the space, no newlines.
DESCRIPTION_RE = re.compile(r"^[\x20-\x7e]{0,2028}$")
MAX_SEARCHABLE_ATTRIBUTES = 3
DELETE_DELAY = datetime.timedelta(minutes=5)
THINGS_SHOWN = 10


# ---------------------------------------------------------------------------------------------
# validation and facts (pure)


def validate_thing_type_name(name):
    if not isinstance(name, str) or not THING_TYPE_NAME_RE.match(name):
        raise IoTFleetError(f"Invalid thing type name {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-].")
    return name


def validate_description(description, what="thing type"):
    """None (leave alone) or the description; ``""`` means "no description"."""
    if description is None:
        return None
    if not isinstance(description, str) or not DESCRIPTION_RE.match(description):
        raise IoTFleetError(
            f"Invalid {what} description: AWS IoT allows up to 2028 printable ASCII characters and "
            "spaces (no newlines or tabs)."
        )
    return description


def normalize_searchable_attributes(attributes):
    """None (leave alone) or the declared names, duplicates dropped, order kept."""
    if attributes is None:
        return None
    if not isinstance(attributes, (list, tuple)):
        raise IoTFleetError(f"searchable_attributes must be a list, got {type(attributes).__name__}.")
    result = []
    for name in attributes:
        if not isinstance(name, str) or not SEARCHABLE_ATTRIBUTE_RE.match(name):
            raise IoTFleetError(
                f"Invalid searchable attribute name {name!r}: AWS IoT allows 1-128 characters from "
                "[a-zA-Z0-9_.,@/:#-]."
            )
        if name not in result:
            result.append(name)
    if len(result) > MAX_SEARCHABLE_ATTRIBUTES:
        raise IoTFleetError(
            f"A thing type has at most {MAX_SEARCHABLE_ATTRIBUTES} searchable attributes, {len(result)} were given."
        )
    return result


def thing_type_facts(described):
    """The comparable facts of a ``describe_thing_type`` answer (no ids, arn or dates)."""
    if described is None:
        return {}
    props = described.get("thingTypeProperties") or {}
    return dict(
        thing_type_name=described["thingTypeName"],
        description=props.get("thingTypeDescription") or None,
        searchable_attributes=list(props.get("searchableAttributes") or []),
        deprecated=bool((described.get("thingTypeMetadata") or {}).get("deprecated")),
    )


def immutable_differences(before, description=None, searchable_attributes=None):
    """``[(option, current, declared)]`` for the declared properties AWS cannot change."""
    differences = []
    if description is not None and (description or None) != before["description"]:
        differences.append(("description", before["description"], description or None))
    if searchable_attributes is not None and sorted(searchable_attributes) != sorted(before["searchable_attributes"]):
        differences.append(("searchable_attributes", before["searchable_attributes"], searchable_attributes))
    return differences


# ---------------------------------------------------------------------------------------------
# AWS calls


def describe_thing_type(client, thing_type_name):
    """``describe_thing_type`` or None when the thing type does not exist."""
    return client.get("describe_thing_type", thingTypeName=thing_type_name)


def _values(described, facts):
    return dict(
        thing_type_name=facts["thing_type_name"],
        thing_type_arn=(described or {}).get("thingTypeArn"),
        thing_type_id=(described or {}).get("thingTypeId"),
        description=facts["description"],
        searchable_attributes=facts["searchable_attributes"],
        deprecated=facts["deprecated"],
    )


def ensure_thing_type(
    client, thing_type_name, description=None, searchable_attributes=None, deprecated=None, check_mode=False
):
    """Make the thing type exist with the declared properties and deprecation state.

    ``description``/``searchable_attributes``: None leaves them alone; on an existing type a
    declared value that differs from AWS's is refused (AWS cannot change them) before any write.
    ``deprecated``: None leaves it alone, True/False deprecates or undoes it.
    Returns an :class:`Outcome` with thing_type_name, thing_type_arn, thing_type_id, description,
    searchable_attributes and deprecated.
    """
    validate_thing_type_name(thing_type_name)
    description = validate_description(description)
    searchable_attributes = normalize_searchable_attributes(searchable_attributes)
    if deprecated is not None and not isinstance(deprecated, bool):
        raise IoTFleetError(f"deprecated must be a boolean, got {deprecated!r}.")

    current = describe_thing_type(client, thing_type_name)
    if current is None:
        after = dict(
            thing_type_name=thing_type_name,
            description=description or None,
            searchable_attributes=list(searchable_attributes or []),
            deprecated=bool(deprecated),
        )
        created = {}
        if not check_mode:
            properties = {}
            if description:
                properties["thingTypeDescription"] = description
            if searchable_attributes:
                properties["searchableAttributes"] = searchable_attributes
            kwargs = dict(thingTypeName=thing_type_name)
            if properties:
                kwargs["thingTypeProperties"] = properties
            created = client.call("create_thing_type", **kwargs)
            if deprecated:
                client.call("deprecate_thing_type", thingTypeName=thing_type_name, undoDeprecate=False)
        return Outcome(True, before={}, after=after, **_values(created, after))

    before = thing_type_facts(current)
    differences = immutable_differences(before, description, searchable_attributes)
    if differences:
        details = "; ".join(f"{option}: AWS has {now!r}, declared {wanted!r}" for option, now, wanted in differences)
        raise IoTFleetError(
            f"Thing type {thing_type_name!r} cannot be changed: AWS IoT fixes a thing type's description and "
            f"searchable attributes when it is created ({details}). Create a thing type with another name, "
            "or delete this one (deprecated=true, wait 5 minutes, state=absent) and create it again.",
            differences=[dict(option=o, current=c, declared=d) for o, c, d in differences],
        )
    after = dict(before)
    if deprecated is None or deprecated == before["deprecated"]:
        return Outcome(False, before=before, after=after, **_values(current, after))
    after["deprecated"] = deprecated
    if not check_mode:
        client.call("deprecate_thing_type", thingTypeName=thing_type_name, undoDeprecate=not deprecated)
    return Outcome(True, before=before, after=after, **_values(current, after))


def _deletable_after(described):
    """The earliest time AWS deletes the (deprecated) type, or None when AWS did not say."""
    date = (described.get("thingTypeMetadata") or {}).get("deprecationDate")
    if isinstance(date, datetime.datetime):
        return date + DELETE_DELAY
    return None


def remove_thing_type(client, thing_type_name, check_mode=False):
    """Delete the thing type. Refused before any write unless it is deprecated and has no things."""
    validate_thing_type_name(thing_type_name)
    current = describe_thing_type(client, thing_type_name)
    if current is None:
        return Outcome(False, before={}, after={}, thing_type_name=thing_type_name)
    before = thing_type_facts(current)
    if not before["deprecated"]:
        raise IoTFleetError(
            f"Thing type {thing_type_name!r} is not deprecated: AWS IoT deletes a thing type only when it has "
            "been deprecated for 5 minutes. Deprecate it first (deprecated=true), wait 5 minutes, then run "
            "state=absent again."
        )
    page = client.call("list_things", thingTypeName=thing_type_name, maxResults=THINGS_SHOWN)
    things = [t["thingName"] for t in page.get("things") or []]
    if things:
        more = " (and more)" if page.get("nextToken") else ""
        raise IoTFleetError(
            f"Thing type {thing_type_name!r} still has things associated with it: {', '.join(things)}{more}. "
            "AWS IoT deletes a thing type only when no thing has it: remove it from those things first "
            "(iotfleet.aws.iot_thing with thing_type='') or delete them.",
            things=things,
        )
    if not check_mode:
        try:
            client.delete("delete_thing_type", thingTypeName=thing_type_name)
        except IoTAWSError as e:
            if error_code(e) != "InvalidRequestException":
                raise
            aws_message = e.exception.response.get("Error", {}).get("Message") or "InvalidRequestException"
            when = _deletable_after(current)
            retry = f"not before {when.isoformat()}" if when else "5 minutes after its deprecation"
            raise IoTFleetError(
                f"AWS IoT refused to delete thing type {thing_type_name!r}: {aws_message}. AWS deletes a thing "
                f"type only when no thing has it and 5 minutes after it was deprecated: run state=absent again "
                f"{retry}."
            ) from e
    return Outcome(True, before=before, after={}, thing_type_name=thing_type_name)


# ---------------------------------------------------------------------------------------------
# module entry point


def run_thing_type(
    client,
    *,
    name,
    state="present",
    check_mode=False,
    description=None,
    searchable_attributes=None,
    deprecated=None,
):
    """What ``iot_thing_type`` does: :func:`ensure_thing_type` or :func:`remove_thing_type`."""
    thing_type_name = name
    if state == "absent":
        return remove_thing_type(client, thing_type_name, check_mode=check_mode)
    return ensure_thing_type(
        client,
        thing_type_name,
        description=description,
        searchable_attributes=searchable_attributes,
        deprecated=deprecated,
        check_mode=check_mode,
    )
