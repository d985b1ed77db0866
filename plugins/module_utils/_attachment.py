# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""Links between AWS IoT resources: thing <-> principal and policy <-> target.

Each ensure-function costs one read and at most one write, so the batched fleet module can
call them per device from a thread pool.
"""

import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import validate_thing_name
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import validate_policy_name
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome

_ARN_PREFIX = r"^arn:aws[-a-z]*:iot:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:"
CERT_ARN_RE = re.compile(_ARN_PREFIX + r"cert/[0-9a-f]{64}$")
THING_GROUP_ARN_RE = re.compile(_ARN_PREFIX + r"thinggroup/[a-zA-Z0-9:_-]{1,128}$")

_CERT_SHAPE = "arn:aws:iot:<region>:<account>:cert/<64 hex digits>"
_GROUP_SHAPE = "arn:aws:iot:<region>:<account>:thinggroup/<name>"


def validate_certificate_arn(arn, what="principal"):
    """Raise IoTFleetError unless ``arn`` is an AWS IoT certificate ARN."""
    if not isinstance(arn, str) or not CERT_ARN_RE.match(arn):
        raise IoTFleetError(f"Invalid {what} {arn!r}: expected a certificate ARN ({_CERT_SHAPE}).")
    return arn


def validate_target_arn(arn):
    """Raise IoTFleetError unless ``arn`` is a certificate or thing group ARN (a policy target)."""
    if not isinstance(arn, str) or not (CERT_ARN_RE.match(arn) or THING_GROUP_ARN_RE.match(arn)):
        raise IoTFleetError(
            f"Invalid policy target {arn!r}: expected a certificate ARN ({_CERT_SHAPE}) "
            f"or a thing group ARN ({_GROUP_SHAPE})."
        )
    return arn


def _validate_state(state):
    if state not in ("present", "absent"):
        raise IoTFleetError(f"Invalid state {state!r}: expected 'present' or 'absent'.")


def thing_principal_action(thing_name, principal_things, state, exclusive=False):
    """Decide from the principal's things: ``"attach"``, ``"detach"`` or None.

    Raises IoTFleetError when ``exclusive`` is asked and the principal is attached to another
    thing (AWS refuses EXCLUSIVE_THING then; moto does not check it).
    """
    attached = thing_name in principal_things
    if state == "absent":
        return "detach" if attached else None
    others = sorted(t for t in principal_things if t != thing_name)
    if exclusive and others:
        raise IoTFleetError(
            f"The principal cannot be attached exclusively to thing {thing_name!r}: it is also attached "
            f"to {', '.join(others)}. Detach it from those things first, or set exclusive=false.",
            other_things=others,
        )
    return None if attached else "attach"


def ensure_thing_principal(client, thing_name, principal_arn, exclusive=False, state="present", check_mode=False,
                           known_new=False):
    """Attach (or detach) the certificate ``principal_arn`` to/from the thing ``thing_name``.

    One read (``list_principal_things``) and at most one write. With ``exclusive`` the
    attachment is made as ``EXCLUSIVE_THING``; an existing attachment is left as it is.
    ``known_new``: the caller registered the certificate in this run, so it is attached to no
    thing yet (no read).
    """
    validate_thing_name(thing_name)
    validate_certificate_arn(principal_arn)
    _validate_state(state)
    things = [] if known_new else client.paginate("list_principal_things", "things", principal=principal_arn)
    action = thing_principal_action(thing_name, things, state, exclusive)
    attached_before = thing_name in things
    attached_after = state == "present"
    values = dict(thing_name=thing_name, principal=principal_arn, attached=attached_after)
    before = dict(thing_name=thing_name, principal=principal_arn, attached=attached_before)
    after = dict(thing_name=thing_name, principal=principal_arn, attached=attached_after)
    if action is None:
        return Outcome(False, before=before, after=before, **values)
    if not check_mode:
        if action == "attach":
            kwargs = dict(thingName=thing_name, principal=principal_arn)
            if exclusive:
                kwargs["thingPrincipalType"] = "EXCLUSIVE_THING"
            client.call("attach_thing_principal", **kwargs)
        else:
            client.delete("detach_thing_principal", thingName=thing_name, principal=principal_arn)
    return Outcome(True, before=before, after=after, **values)


def ensure_policy_attachment(client, policy_name, target_arn, state="present", check_mode=False, known_new=False):
    """Attach (or detach) the policy ``policy_name`` to/from ``target_arn`` (certificate or thing group).

    One read (``list_attached_policies`` of the target) and at most one write. ``known_new``: the
    caller registered the target in this run, so no policy is attached to it yet (no read).
    """
    validate_policy_name(policy_name)
    validate_target_arn(target_arn)
    _validate_state(state)
    policies = [] if known_new else client.paginate("list_attached_policies", "policies", target=target_arn)
    attached_before = any(p.get("policyName") == policy_name for p in policies)
    attached_after = state == "present"
    values = dict(policy_name=policy_name, target=target_arn, attached=attached_after)
    before = dict(policy_name=policy_name, target=target_arn, attached=attached_before)
    after = dict(policy_name=policy_name, target=target_arn, attached=attached_after)
    if attached_before == attached_after:
        return Outcome(False, before=before, after=before, **values)
    if not check_mode:
        if attached_after:
            client.call("attach_policy", policyName=policy_name, target=target_arn)
        else:
            client.delete("detach_policy", policyName=policy_name, target=target_arn)
    return Outcome(True, before=before, after=after, **values)


# ---------------------------------------------------------------------------------------------
# module entry points


def run_thing_principal(client, *, thing_name, principal, state="present", check_mode=False, exclusive=False):
    """What ``iot_thing_principal`` does: :func:`ensure_thing_principal`."""
    return ensure_thing_principal(client, thing_name, principal, exclusive=exclusive, state=state, check_mode=check_mode)


def run_policy_attachment(client, *, policy_name, target, state="present", check_mode=False):
    """What ``iot_policy_attachment`` does: :func:`ensure_policy_attachment`."""
    return ensure_policy_attachment(client, policy_name, target, state=state, check_mode=check_mode)
