# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The collection's own error and the input checks that need no AWS (stdlib only).

Dependency-free on purpose: device-side modules (``device_csr``, ``device_bundle``) import it
through ``_x509`` and ``_files``, and Ansible ships it with them to the Pi, where neither
botocore nor amazon.aws exists. ``_client`` re-exports :class:`IoTFleetError`.
"""

import re

# AWS IoT thing names: 1-128 characters from [a-zA-Z0-9:_-]
THING_NAME_CHARACTERS = "a-zA-Z0-9:_-"
THING_NAME_MAX = 128
THING_NAME_RE = re.compile(r"^[%s]{1,%d}$" % (THING_NAME_CHARACTERS, THING_NAME_MAX))
THING_NAME_DISALLOWED_RE = re.compile(r"[^%s]" % THING_NAME_CHARACTERS)

# Certificate statuses, in the one documented case: upper case as AWS writes them; lower case is
# accepted everywhere (normalize_status).
CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")
CA_CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE")


class IoTFleetError(Exception):
    """A failure the collection detects itself (bad input, a refused transition).

    Raised before any write reaches AWS whenever the input alone shows the problem.
    """

    def __init__(self, message, **kwargs):
        super().__init__(message)
        self.message = message
        self.kwargs = kwargs


def validate_thing_name(name, what="thing name"):
    """Raise IoTFleetError unless ``name`` is a valid AWS IoT thing name."""
    if not isinstance(name, str) or not THING_NAME_RE.match(name):
        raise IoTFleetError(
            f"Invalid {what} {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-] "
            "(no spaces or dots; map inventory host names first)."
        )
    return name


def normalize_status(status, allowed=CERTIFICATE_STATUSES, what="certificate"):
    """A certificate status in upper case (lower case accepted); None stays None.

    ``allowed`` is :data:`CERTIFICATE_STATUSES` (device certificates) or
    :data:`CA_CERTIFICATE_STATUSES` (CA certificates).
    """
    if status is None:
        return None
    value = str(status).upper()
    if value not in allowed:
        raise IoTFleetError(
            f"Invalid {what} status {status!r}: use one of {', '.join(allowed)} (lower case is accepted too)."
        )
    return value
