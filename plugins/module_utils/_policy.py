# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT policies: validation, document comparison, version pruning and ``ensure_policy``.

A changed document becomes a new *default* version. AWS keeps at most
:data:`MAX_POLICY_VERSIONS` versions per policy; at the cap the oldest non-default version
is deleted first. The ``defaultVersionId`` is never compared, and only version ids read from
AWS are ever passed back to it.
"""

import re

from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import dump_json
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import load_json_document
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import version_to_prune

POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
MAX_POLICY_VERSIONS = 5


def validate_policy_name(name):
    """Raise IoTFleetError unless ``name`` is a valid AWS IoT policy name."""
    if not isinstance(name, str) or not POLICY_NAME_RE.match(name):
        raise IoTFleetError(
            f"Invalid policy name {name!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9_+=,.@-]."
        )
    return name


def parse_policy_document(document):
    """The policy document (dict or JSON text) as a dict; IoTFleetError when it is not one."""
    parsed = load_json_document(document, what="policy document")
    if not isinstance(parsed, dict):
        raise IoTFleetError(f"The policy document must be a JSON object, got {type(parsed).__name__}.")
    if "Statement" not in parsed:
        raise IoTFleetError("The policy document has no 'Statement'.")
    return parsed


def policy_differs(current, desired):
    """True when the two parsed documents differ after normalisation (amazon.aws compare_policies).

    Order of statements and of list items, a single item vs. a one-element list and a missing
    ``Version`` do not count as differences.
    """
    return compare_policies(current, desired)


def _facts(name, document, tags=None):
    facts = dict(policy_name=name, policy_document=document)
    if tags is not None:
        facts["tags"] = dict(tags)
    return facts


def validate_tags(tags):
    """``tags`` (None: leave tags alone) as a dict of str -> str; IoTFleetError otherwise."""
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise IoTFleetError(f"tags must be a dictionary, got {type(tags).__name__}.")
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > 128 or key.startswith("aws:"):
            raise IoTFleetError(f"Invalid tag key {key!r}: 1-128 characters, not starting with 'aws:'.")
        if value is None or len(str(value)) > 256:
            raise IoTFleetError(f"Invalid value for tag {key!r}: a string of at most 256 characters.")
    return {key: str(value) for key, value in tags.items()}


def tag_changes(current, desired, purge_tags=True):
    """(tags to set, keys to remove) to go from ``current`` to ``desired`` (None: no change)."""
    if desired is None:
        return {}, []
    return compare_aws_tags(current, desired, purge_tags=purge_tags)


def expected_tags(current, to_set, to_unset):
    result = {k: v for k, v in current.items() if k not in to_unset}
    result.update(to_set)
    return result


def _values(name, arn=None, default_version_id=None, document=None, **extra):
    return dict(
        policy_name=name, policy_arn=arn, default_version_id=default_version_id, policy_document=document, **extra
    )


def ensure_policy(
    client, name, policy_document=None, state="present", detach=False, tags=None, purge_tags=True, check_mode=False
):
    """Make the IoT policy ``name`` present with ``policy_document`` as its default version, or absent.

    ``state=absent`` refuses while the policy has targets unless ``detach`` is true.
    ``tags`` (None: leave alone) are compared with amazon.aws ``compare_aws_tags``; ``aws:`` tags
    are never purged. Returns an :class:`Outcome` with ``policy_name``, ``policy_arn``,
    ``default_version_id`` and ``policy_document`` (the parsed default document), and ``tags``
    when tags were given.
    """
    validate_policy_name(name)
    tags = validate_tags(tags)
    if state not in ("present", "absent"):
        raise IoTFleetError(f"Invalid state {state!r}: expected 'present' or 'absent'.")
    desired = None
    if state == "present":
        if policy_document is None:
            raise IoTFleetError("policy_document is required when state=present.")
        desired = parse_policy_document(policy_document)

    current = client.get("get_policy", policyName=name)
    if state == "absent":
        return _remove_policy(client, name, current, detach, check_mode)

    tag_values = {} if tags is None else dict(tags=tags)
    if current is None:
        after = _facts(name, desired, tags)
        if check_mode:
            return Outcome(True, before={}, after=after, **_values(name, document=desired, **tag_values))
        kwargs = dict(policyName=name, policyDocument=dump_json(desired))
        if tags:
            kwargs["tags"] = ansible_dict_to_boto3_tag_list(tags)
        created = client.call("create_policy", **kwargs)
        values = _values(name, created.get("policyArn"), created.get("policyVersionId"), desired, **tag_values)
        return Outcome(True, before={}, after=after, **values)

    current_doc = load_json_document(current.get("policyDocument") or "{}", what="current policy document")
    arn = current.get("policyArn")
    current_tags = None
    to_set, to_unset = {}, []
    if tags is not None:
        current_tags = boto3_tag_list_to_ansible_dict(
            client.paginate("list_tags_for_resource", "tags", resourceArn=arn), "Key", "Value"
        )
        to_set, to_unset = tag_changes(current_tags, tags, purge_tags)
        tag_values = dict(tags=expected_tags(current_tags, to_set, to_unset))
    tags_change = bool(to_set or to_unset)
    before = _facts(name, current_doc, current_tags)
    if not policy_differs(current_doc, desired):
        values = _values(name, arn, current.get("defaultVersionId"), current_doc, **tag_values)
        if not tags_change:
            return Outcome(False, before=before, after=before, **values)
        if not check_mode:
            _apply_tags(client, arn, to_set, to_unset)
        return Outcome(True, before=before, after=_facts(name, current_doc, tag_values["tags"]), **values)

    after = _facts(name, desired, tag_values.get("tags"))
    if check_mode:
        return Outcome(True, before=before, after=after, **_values(name, arn, None, desired, **tag_values))
    if tags_change:
        _apply_tags(client, arn, to_set, to_unset)
    versions = client.paginate("list_policy_versions", "policyVersions", policyName=name)
    prune = version_to_prune(versions, MAX_POLICY_VERSIONS)
    pruned = []
    if prune is not None:
        client.delete("delete_policy_version", policyName=name, policyVersionId=prune)
        pruned.append(prune)
    created = client.call(
        "create_policy_version", policyName=name, policyDocument=dump_json(desired), setAsDefault=True
    )
    values = _values(name, arn, created.get("policyVersionId"), desired, pruned_versions=pruned, **tag_values)
    return Outcome(True, before=before, after=after, **values)


def run_policy(client, *, name, state="present", check_mode=False, policy_document=None, detach=False, tags=None,
               purge_tags=True):
    """What ``iot_policy`` does: :func:`ensure_policy`."""
    return ensure_policy(client, name, policy_document=policy_document, state=state, detach=detach, tags=tags,
                         purge_tags=purge_tags, check_mode=check_mode)


def _apply_tags(client, arn, to_set, to_unset):
    if to_unset:
        client.call("untag_resource", resourceArn=arn, tagKeys=list(to_unset))
    if to_set:
        client.call("tag_resource", resourceArn=arn, tags=ansible_dict_to_boto3_tag_list(to_set))


def _remove_policy(client, name, current, detach, check_mode):
    if current is None:
        return Outcome(False, before={}, after={}, **_values(name, detached_targets=[]))
    current_doc = load_json_document(current.get("policyDocument") or "{}", what="current policy document")
    before = _facts(name, current_doc)
    targets = client.paginate("list_targets_for_policy", "targets", policyName=name)
    if targets and not detach:
        shown = ", ".join(targets[:5]) + (f" and {len(targets) - 5} more" if len(targets) > 5 else "")
        raise IoTFleetError(
            f"Policy {name!r} is attached to {len(targets)} target(s) ({shown}): "
            "detach it first, or set detach=true to detach it from every target before deleting it.",
            targets=targets,
        )
    values = _values(name, current.get("policyArn"), detached_targets=list(targets))
    if check_mode:
        return Outcome(True, before=before, after={}, **values)
    for target in targets:
        client.delete("detach_policy", policyName=name, target=target)
    for version in client.paginate("list_policy_versions", "policyVersions", policyName=name):
        if not version.get("isDefaultVersion"):
            client.delete("delete_policy_version", policyName=name, policyVersionId=version["versionId"])
    client.delete("delete_policy", policyName=name)
    return Outcome(True, before=before, after={}, **values)
