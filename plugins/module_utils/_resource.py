# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""What every ensure-implementation shares: the outcome object and input normalisation."""

import json

from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import THING_NAME_RE
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import validate_thing_name

# THING_NAME_RE and validate_thing_name live in _errors (dependency-free); re-exported here for
# code that imported them from _resource before.
__all__ = [
    "THING_NAME_RE",
    "Outcome",
    "dump_json",
    "load_json_document",
    "validate_thing_name",
    "version_sort_key",
    "version_to_prune",
]


class Outcome:
    """The result of one ensure-function: changed, a before/after diff and return values.

    ``before``/``after`` hold only declared, comparable facts (never secrets, ids that
    AWS generates or timestamps). ``values`` are the module's return values.
    """

    def __init__(self, changed=False, before=None, after=None, **values):
        self.changed = changed
        self.before = before
        self.after = after
        self.values = values

    def to_result(self, diff=False):
        result = dict(changed=self.changed, **self.values)
        if diff:
            result["diff"] = dict(before=self.before or {}, after=self.after or {})
        return result


def load_json_document(document, what="document"):
    """A JSON document given as dict/list or JSON text, as a Python object.

    Raises IoTFleetError with the parser's position for invalid JSON.
    """
    if isinstance(document, (dict, list)):
        return document
    if not isinstance(document, str):
        raise IoTFleetError(f"The {what} must be a dict or a JSON string, got {type(document).__name__}.")
    try:
        return json.loads(document)
    except ValueError as e:
        raise IoTFleetError(f"The {what} is not valid JSON: {e}") from e


def dump_json(document):
    """Canonical JSON text (sorted keys, compact): for AWS calls and comparisons."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def version_sort_key(version):
    """The age order of a policy or provisioning-template version: oldest first.

    AWS IoT numbers versions with increasing integers (``"1"``, ``"2"``... for policies, 1, 2...
    for templates), so the smallest number is the oldest; an id that is not a number sorts after
    every number, by its creation date (``createDate`` or ``creationDate``) and then its id.
    """
    version_id = str(version.get("versionId", ""))
    if version_id.isdigit():
        return (0, int(version_id), "")
    created = version.get("createDate", version.get("creationDate"))
    return (1, 0, ("" if created is None else str(created)) + version_id)


def version_to_prune(versions, cap=5):
    """The versionId to delete before creating one more version, or None when under the cap.

    ``versions`` is the list AWS returns (``policyVersions`` or ``versions``). At (or above)
    ``cap`` (AWS IoT keeps 5 versions of a policy or a provisioning template) the oldest
    non-default version (:func:`version_sort_key`) is chosen; the default version is never pruned.
    """
    if len(versions) < cap:
        return None
    candidates = [v for v in versions if not v.get("isDefaultVersion")]
    if not candidates:
        return None
    return min(candidates, key=version_sort_key)["versionId"]
