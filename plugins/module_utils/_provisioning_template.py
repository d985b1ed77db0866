# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT provisioning templates (JITP and fleet provisioning): validation and ensure/remove.

A changed template body becomes a new template version that is set as the default; AWS keeps
at most 5 versions, so the oldest non-default version is deleted first when the cap is reached.
Description, enabled, role and pre-provisioning hook are changed with
``update_provisioning_template``. The template type cannot change after creation.

moto does not implement provisioning templates (every call answers HTTP 500): the tests of this
file use botocore's Stubber.
"""

import re

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import dump_json
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import load_json_document
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import version_to_prune

TEMPLATE_NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
MAX_VERSIONS = 5
MAX_BODY = 10240
MAX_DESCRIPTION = 500


def validate_template_name(name):
    if not isinstance(name, str) or not TEMPLATE_NAME_RE.match(name):
        raise IoTFleetError(
            f"Invalid provisioning template name {name!r}: AWS IoT allows 1-36 characters from [0-9A-Za-z_-]."
        )
    return name


def normalize_body(template_body):
    """The template body as a Python object (from a dict or JSON text); must have Resources."""
    body = load_json_document(template_body, "template body")
    if not isinstance(body, dict):
        raise IoTFleetError("The provisioning template body must be a JSON object.")
    if "Resources" not in body:
        raise IoTFleetError("The provisioning template body needs a 'Resources' section.")
    if len(dump_json(body)) > MAX_BODY:
        raise IoTFleetError(f"The provisioning template body is longer than {MAX_BODY} characters.")
    return body


def normalize_hook(hook):
    """None, {} (remove the hook) or {"targetArn": ..., "payloadVersion": ...}."""
    if hook is None:
        return None
    if not isinstance(hook, dict):
        raise IoTFleetError("pre_provisioning_hook must be a dict with target_arn (and payload_version).")
    if not hook:
        return {}
    target = hook.get("target_arn", hook.get("targetArn"))
    if not target or not str(target).startswith("arn:"):
        raise IoTFleetError("pre_provisioning_hook needs target_arn, the ARN of a Lambda function.")
    result = dict(targetArn=target)
    version = hook.get("payload_version", hook.get("payloadVersion"))
    if version:
        result["payloadVersion"] = version
    return result


def desired_template(
    template_body,
    provisioning_role_arn,
    template_type="FLEET_PROVISIONING",
    enabled=True,
    description=None,
    pre_provisioning_hook=None,
):
    body = normalize_body(template_body)
    if not isinstance(provisioning_role_arn, str) or not ROLE_ARN_RE.match(provisioning_role_arn):
        raise IoTFleetError(
            f"Invalid provisioning_role_arn {provisioning_role_arn!r}: an IAM role ARN "
            "(arn:aws:iam::<account>:role/<name>) is required."
        )
    template_type = template_type or "FLEET_PROVISIONING"
    if template_type not in TEMPLATE_TYPES:
        raise IoTFleetError(f"Invalid template type {template_type!r}: use one of {', '.join(TEMPLATE_TYPES)}.")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise IoTFleetError(f"The description is longer than {MAX_DESCRIPTION} characters.")
    hook = normalize_hook(pre_provisioning_hook)
    if hook and template_type == "JITP":
        raise IoTFleetError("A pre-provisioning hook is only supported for FLEET_PROVISIONING templates.")
    return dict(
        template_body=body,
        provisioning_role_arn=provisioning_role_arn,
        type=template_type,
        enabled=bool(enabled),
        description=description,
        pre_provisioning_hook=hook,
    )


def current_template(described):
    """Comparable facts of ``describe_provisioning_template`` (no dates, arn or defaultVersionId)."""
    try:
        body = load_json_document(described.get("templateBody") or "{}", "stored template body")
    except IoTFleetError:
        body = described.get("templateBody")
    return dict(
        template_body=body,
        provisioning_role_arn=described.get("provisioningRoleArn"),
        type=described.get("type") or "FLEET_PROVISIONING",
        enabled=bool(described.get("enabled")),
        description=described.get("description") or "",
        pre_provisioning_hook=described.get("preProvisioningHook") or {},
    )


def template_updates(desired, current):
    """kwargs for ``update_provisioning_template`` (without templateName); {} when nothing to do.

    Undeclared description (None) and pre-provisioning hook (None) are left alone.
    """
    kwargs = {}
    if desired["enabled"] != current["enabled"]:
        kwargs["enabled"] = desired["enabled"]
    if desired["description"] is not None and desired["description"] != current["description"]:
        kwargs["description"] = desired["description"]
    if desired["provisioning_role_arn"] != current["provisioning_role_arn"]:
        kwargs["provisioningRoleArn"] = desired["provisioning_role_arn"]
    hook = desired["pre_provisioning_hook"]
    if hook is not None and hook != current["pre_provisioning_hook"]:
        if hook:
            kwargs["preProvisioningHook"] = hook
        else:
            kwargs["removePreProvisioningHook"] = True
    return kwargs


def _facts(name, facts):
    return dict(name=name, **facts)


def _merged(desired, current):
    """The facts after the run: desired, with undeclared fields taken from current."""
    after = dict(desired)
    if after["description"] is None:
        after["description"] = current.get("description", "") if current else ""
    if after["pre_provisioning_hook"] is None:
        after["pre_provisioning_hook"] = current.get("pre_provisioning_hook", {}) if current else {}
    return after


def ensure_provisioning_template(client, name, template_body, provisioning_role_arn, check_mode=False, **options):
    """Make the template ``name`` as declared; ``options`` (``template_type``, ``enabled``,
    ``description``, ``pre_provisioning_hook``) as :func:`desired_template` takes them."""
    validate_template_name(name)
    desired = desired_template(template_body, provisioning_role_arn, **options)
    described = client.get("describe_provisioning_template", templateName=name)
    if described is None:
        after = _merged(desired, None)
        arn = None
        if not check_mode:
            kwargs = dict(
                templateName=name,
                templateBody=dump_json(desired["template_body"]),
                provisioningRoleArn=desired["provisioning_role_arn"],
                enabled=desired["enabled"],
                type=desired["type"],
            )
            if desired["description"]:
                kwargs["description"] = desired["description"]
            if desired["pre_provisioning_hook"]:
                kwargs["preProvisioningHook"] = desired["pre_provisioning_hook"]
            arn = client.call("create_provisioning_template", **kwargs).get("templateArn")
        return Outcome(True, before={}, after=_facts(name, after), template_name=name, template_arn=arn, template=after)

    current = current_template(described)
    arn = described.get("templateArn")
    if desired["type"] != current["type"]:
        raise IoTFleetError(
            f"Provisioning template {name!r} is of type {current['type']}; AWS IoT cannot change a template's "
            f"type to {desired['type']}: delete it first (state=absent) or use another name."
        )
    after = _merged(desired, current)
    body_changed = desired["template_body"] != current["template_body"]
    updates = template_updates(desired, current)
    changed = body_changed or bool(updates)
    if changed and not check_mode:
        if body_changed:
            versions = client.paginate("list_provisioning_template_versions", "versions", templateName=name)
            prune = version_to_prune(versions, MAX_VERSIONS)
            if prune is not None:
                client.delete("delete_provisioning_template_version", templateName=name, versionId=prune)
            client.call(
                "create_provisioning_template_version",
                templateName=name,
                templateBody=dump_json(desired["template_body"]),
                setAsDefault=True,
            )
        if updates:
            client.call("update_provisioning_template", templateName=name, **updates)
    return Outcome(
        changed,
        before=_facts(name, current),
        after=_facts(name, after),
        template_name=name,
        template_arn=arn,
        template=after,
    )


def remove_provisioning_template(client, name, check_mode=False):
    validate_template_name(name)
    described = client.get("describe_provisioning_template", templateName=name)
    if described is None:
        return Outcome(False, before={}, after={}, template_name=name, template_arn=None, template={})
    current = current_template(described)
    if not check_mode:
        client.delete("delete_provisioning_template", templateName=name)
    return Outcome(
        True,
        before=_facts(name, current),
        after={},
        template_name=name,
        template_arn=described.get("templateArn"),
        template={},
    )


def run_provisioning_template(client, *, name, state="present", check_mode=False, **options):
    """What ``iot_provisioning_template`` does; ``options`` are the module's (``type`` is the
    template type, ``pre_provisioning_hook`` keeps only the keys that are set)."""
    validate_template_name(name)
    if state == "absent":
        return remove_provisioning_template(client, name, check_mode=check_mode)
    for required in ("template_body", "provisioning_role_arn"):
        if options.get(required) is None:
            raise IoTFleetError(f"state=present needs {required}.")
    hook = options.get("pre_provisioning_hook")
    if hook is not None:
        hook = {k: v for k, v in hook.items() if v is not None}
    return ensure_provisioning_template(
        client,
        name,
        options["template_body"],
        options["provisioning_role_arn"],
        template_type=options.get("type") or "FLEET_PROVISIONING",
        enabled=options.get("enabled", True),
        description=options.get("description"),
        pre_provisioning_hook=hook,
        check_mode=check_mode,
    )
