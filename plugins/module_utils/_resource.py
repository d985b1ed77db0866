# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""What every ensure-implementation shares: the outcome object and input normalisation."""

import json
import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError

THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


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


def validate_thing_name(name, what="thing name"):
    """Raise IoTFleetError unless ``name`` is a valid AWS IoT thing name."""
    if not isinstance(name, str) or not THING_NAME_RE.match(name):
        raise IoTFleetError(
            f"Invalid {what} {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-] "
            "(no spaces or dots; map inventory host names first)."
        )
    return name


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
