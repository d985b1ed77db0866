# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: iot_things
short_description: The fleet as the AWS IoT registry sees it
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - Makes one inventory host per AWS IoT thing of one account and region, with the thing's attributes, thing
    type, thing groups and attached certificates as host variables, and Ansible groups from its thing groups
    and thing type.
  - The configuration file name must end with C(iot_things.yml) or C(iot_things.yaml), for example
    C(pis.iot_things.yml), and hold O(plugin=iotfleet.aws.iot_things).
  - Every host gets C(iotfleet_thing_name) set to its thing name, so C(iotfleet.aws.provision) run with
    this inventory manages the same things again, whatever the host is named.
  - "Host variables: C(iot_thing_name), C(iot_thing_arn),
    C(iot_thing_type) (null when the thing has none), C(iot_region), C(iot_attributes) (a dict of the thing's
    attributes, values are strings as AWS IoT stores them; attributes are not flattened into separate variables
    because attribute names may hold characters that are not valid in a variable name, such as C(.), C(:),
    C(/) or C(#)); with O(include_thing_groups) C(iot_thing_groups) (the sorted names of the thing groups the
    thing is directly in); with O(include_certificates) C(iot_certificates) (every X.509 certificate attached
    to the thing, each a dict with C(certificate_id), C(certificate_arn), C(status), C(ca_certificate_id),
    C(creation_date) and C(not_after)), C(iot_certificate_id) and C(iot_certificate_status) (of the live
    identity: an ACTIVE certificate, the newest when several are, else the newest attached one; both null
    when no certificate is attached); C(iotfleet_thing_name); and C(ansible_host) when
    O(ansible_host_attribute) is set and the thing has that attribute."
  - "API cost of one run: C(ListThings) pages of 250 things, plus one C(ListThingsInThingGroup) listing per
    group of O(thing_groups), C(SearchIndex) pages of 100 for O(query), one C(DescribeThingGroup) per thing group
    found (for the group hierarchy), and per thing one C(ListThingGroupsForThing) (O(include_thing_groups)) and
    one C(ListThingPrincipals) plus one C(DescribeCertificate) per attached certificate
    (O(include_certificates)). The per-thing calls run O(max_workers) at a time, retried with backoff when
    AWS IoT throttles them and paced at the collection's rates for the AWS IoT API limits. For a fleet of
    thousands set O(include_certificates=false) unless you need the certificates, and use the inventory cache."
notes:
  - AWS credentials, region and endpoint are found as for every amazon.aws inventory plugin - the options,
    else the environment (C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN), C(AWS_PROFILE),
    C(AWS_REGION)), else the AWS SDK's own sources (C(AWS_DEFAULT_REGION), C(AWS_ENDPOINT_URL), C(AWS_CONFIG_FILE),
    C(AWS_SHARED_CREDENTIALS_FILE), C(~/.aws/config), an instance profile).
  - Things are read from one region (O(region), else the environment or the profile's region). A fleet spread over
    several regions takes one configuration file per region; thing names are unique only within a region.
  - Filters combine with AND. O(thing_type) and the first attribute of O(attributes) are filtered by AWS IoT
    (C(ListThings) takes one attribute); further attributes are compared on the controller.
  - The AWS IoT Core stand-in of this collection's lab (moto) does not implement O(thing_groups_recursive)
    (it lists direct members only) and answers O(query) with a simplified query language and without requiring
    fleet indexing to be enabled, so those two are tested only as far as the stand-in goes.
  - Host names must be unique. When O(hostname_attribute) gives several things the same name (or a name that is
    another thing's name), each of them is named after its thing instead, with a warning.
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
options:
  plugin:
    description: The name of this plugin; it makes the file an inventory source of this plugin.
    type: str
    required: true
    choices: [iotfleet.aws.iot_things]
  thing_type:
    description:
      - Only things of this thing type.
    type: str
  attributes:
    description:
      - "Only things whose attributes have these values (all of them), for example C({site: lab-1})."
      - Values are compared as the strings AWS IoT stores (C(true)/C(false) for booleans).
      - The first attribute is filtered by AWS IoT, the others on the controller.
    type: dict
    default: {}
  thing_groups:
    description:
      - Only things in at least one of these thing groups.
      - One C(ListThingsInThingGroup) listing per group; a group that does not exist matches no thing (with a
        warning).
    type: list
    elements: str
    default: []
  thing_groups_recursive:
    description:
      - With O(thing_groups), also things that are only in a child group of one of them.
    type: bool
    default: false
  query:
    description:
      - Only things that this AWS IoT fleet indexing query finds, for example
        V(thingTypeName:pi-zero AND attributes.site:lab-1) or V(connectivity.connected:true).
      - Needs fleet indexing enabled for things in the account and region (C(aws iot
        update-indexing-configuration --thing-indexing-configuration thingIndexingMode=REGISTRY)); the
        inventory fails with that hint when the index is missing.
      - The index is updated asynchronously; a thing made a moment ago may not be found yet.
    type: str
  index_name:
    description:
      - The fleet index O(query) searches.
    type: str
    default: AWS_Things
  hostname_attribute:
    description:
      - The thing attribute whose value names the host, for example V(hostname).
      - A thing without that attribute (or with an empty value) is named after the thing.
      - Unset (the default), every host is named after its thing.
    type: str
  ansible_host_attribute:
    description:
      - The thing attribute whose value becomes C(ansible_host) (the address Ansible connects to), for example
        V(host).
      - A thing without that attribute gets no C(ansible_host) (Ansible then connects to the host name);
        O(compose) can set it, or C(ansible_port), from other variables.
    type: str
  include_thing_groups:
    description:
      - Read each thing's thing groups (host variable C(iot_thing_groups), and groups with O(group_by_thing_groups)).
      - Costs one C(ListThingGroupsForThing) call per thing.
    type: bool
    default: true
  include_certificates:
    description:
      - Read each thing's attached certificates (host variables C(iot_certificates), C(iot_certificate_id),
        C(iot_certificate_status)).
      - Costs one C(ListThingPrincipals) call per thing and one C(DescribeCertificate) call per attached
        certificate, that is 2 calls per thing of a provisioned fleet.
    type: bool
    default: true
  max_workers:
    description:
      - How many per-thing calls (O(include_thing_groups), O(include_certificates)) run at once.
    type: int
    default: 8
  group_by_thing_groups:
    description:
      - Put each host into an Ansible group per thing group it is in, named O(thing_group_prefix) + the thing
        group's name (characters not valid in a group name become C(_)).
      - A thing group's parent groups become parent Ansible groups (one C(DescribeThingGroup) call per thing
        group), so a host in a child thing group is also in the groups of its ancestors.
      - Needs O(include_thing_groups).
    type: bool
    default: true
  thing_group_prefix:
    description:
      - The prefix of the groups made from thing groups. With V(""), a thing group C(pis) becomes the Ansible
        group C(pis), the group C(iotfleet.aws.provision) runs on by default.
    type: str
    default: thing_group_
  group_by_thing_type:
    description:
      - Put each host that has a thing type into an Ansible group named O(thing_type_prefix) + the thing type's
        name (characters not valid in a group name become C(_)).
    type: bool
    default: true
  thing_type_prefix:
    description:
      - The prefix of the groups made from thing types.
    type: str
    default: thing_type_
"""

EXAMPLES = r"""
# pis.iot_things.yml: every thing of the account's default region; credentials, region and endpoint from the
# environment or profile, as for any amazon.aws plugin.
plugin: iotfleet.aws.iot_things

---
# The Pis of one site, with the SSH address from the thing attribute "host", ready for
#   ansible-playbook provision.yml -i pis.iot_things.yml
plugin: iotfleet.aws.iot_things
region: eu-west-1
thing_type: pi-zero
attributes:
  site: lab-1
ansible_host_attribute: host
compose:
  ansible_port: iot_attributes.port | default(22) | int
  ansible_user: "'pi'"
groups:
  # iotfleet.aws.provision runs on the group "pis" (iotfleet_device_group)
  pis: true
  needs_identity: iot_certificate_status != 'ACTIVE'
keyed_groups:
  - key: iot_attributes.room | default('none')
    prefix: room

---
# A large fleet: the things a fleet-index query finds, no certificate look-ups, cached for an hour.
plugin: iotfleet.aws.iot_things
query: "thingTypeName:pi-zero AND attributes.firmware:1.2*"
include_certificates: false
max_workers: 16
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/iot_things
cache_timeout: 3600

---
# Things of the thing group "pis" and its child groups, named after their "hostname" attribute, in Ansible
# groups named as the thing groups (the thing group "pis" becomes the group "pis").
plugin: iotfleet.aws.iot_things
profile: fleet-admin
thing_groups: [pis]
thing_groups_recursive: true
hostname_attribute: hostname
thing_group_prefix: ""
"""

import concurrent.futures
import datetime

from ansible.inventory.group import to_safe_group_name

from ansible_collections.amazon.aws.plugins.plugin_utils.inventory import AWSInventoryBase

from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import ATTRIBUTE_NAME_RE
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import ATTRIBUTE_VALUE_RE
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import THING_TYPE_RE
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import attribute_value
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import validate_thing_groups

PAGE_SIZE = 250  # ListThings, ListThingsInThingGroup, ListThingGroupsForThing, ListThingPrincipals
SEARCH_PAGE_SIZE = 100  # SearchIndex
_INDEX_MISSING = ("IndexNotReadyException", "ResourceNotFoundException")


class IoTInventoryError(Exception):
    """A problem with the configuration, found before or while reading the registry."""


# ---------------------------------------------------------------------------------------------
# pure helpers (plain dicts in, plain dicts out)


def normalize_filters(thing_type, attributes, thing_groups):
    """Validate the filter options; return (thing_type, [(name, value), ...], [group, ...])."""
    if thing_type is not None and not THING_TYPE_RE.match(thing_type):
        raise IoTInventoryError(
            f"Invalid thing_type {thing_type!r}: AWS IoT allows 1-128 characters from [a-zA-Z0-9:_-]."
        )
    pairs = []
    for name, value in (attributes or {}).items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME_RE.match(name):
            raise IoTInventoryError(
                f"Invalid attribute name {name!r} in attributes: AWS IoT allows 1-128 characters from "
                "[a-zA-Z0-9_.,@/:#-]."
            )
        if isinstance(value, (dict, list)):
            raise IoTInventoryError(f"The value of attribute {name!r} in attributes must be a scalar.")
        text = attribute_value(value)
        if text == "" or not ATTRIBUTE_VALUE_RE.match(text):
            raise IoTInventoryError(
                f"Invalid value {text!r} for attribute {name!r} in attributes: AWS IoT allows 1-800 characters "
                r"from [a-zA-Z0-9_.,@/:#=[]-]."
            )
        pairs.append((name, text))
    try:
        groups = validate_thing_groups(thing_groups or [])
    except IoTFleetError as e:
        raise IoTInventoryError(f"In thing_groups: {e.message}") from None
    return thing_type, pairs, groups


def thing_record(listed):
    """A ``ListThings`` entry as the inventory keeps it (JSON-serialisable, cacheable)."""
    return dict(
        thing_name=listed["thingName"],
        thing_arn=listed.get("thingArn"),
        thing_type=listed.get("thingTypeName") or None,
        attributes=dict(listed.get("attributes") or {}),
    )


def matches_attributes(record, pairs):
    attributes = record["attributes"]
    return all(attributes.get(name) == value for name, value in pairs)


def certificate_id_of(principal):
    """The certificate id of an X.509 certificate principal ARN (``arn:aws:iot:…:cert/<id>``), else None."""
    if ":cert/" not in principal:
        return None
    return principal.rsplit("/", 1)[-1] or None


def _iso(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def certificate_entry(description):
    """A ``DescribeCertificate`` answer as the host variable ``iot_certificates`` lists it (no PEM)."""
    return dict(
        certificate_id=description.get("certificateId"),
        certificate_arn=description.get("certificateArn"),
        status=description.get("status"),
        ca_certificate_id=description.get("caCertificateId"),
        creation_date=_iso(description.get("creationDate")),
        not_after=_iso((description.get("validity") or {}).get("notAfter")),
    )


def order_certificates(certificates):
    """ACTIVE first, newest first within a status, then by id (stable)."""
    by_id = sorted(certificates, key=lambda c: c.get("certificate_id") or "")
    by_date = sorted(by_id, key=lambda c: c.get("creation_date") or "", reverse=True)
    return sorted(by_date, key=lambda c: c.get("status") != "ACTIVE")


def assign_host_names(records, hostname_attribute):
    """``{thing name: host name}`` and the warnings about names that had to fall back to the thing name.

    A host name chosen from an attribute that more than one thing would get (or that is another thing's
    own name) is given up: each thing concerned is named after itself (thing names are unique).
    """
    names = {}
    for record in records:
        chosen = record["attributes"].get(hostname_attribute) if hostname_attribute else None
        names[record["thing_name"]] = chosen or record["thing_name"]
    warnings = []
    while True:
        holders = {}
        for thing, host in names.items():
            holders.setdefault(host, []).append(thing)
        reverted = False
        for host, things in sorted(holders.items()):
            if len(things) < 2:
                continue
            for thing in sorted(things):
                if names[thing] != thing:
                    warnings.append(
                        f"Thing {thing!r}: host name {host!r} from attribute {hostname_attribute!r} is not unique "
                        f"(things {', '.join(sorted(things))}); the host is named {thing!r} instead."
                    )
                    names[thing] = thing
                    reverted = True
        if not reverted:
            return names, warnings


def host_variables(record, region, ansible_host_attribute=None):
    """The host variables of one thing record (see DOCUMENTATION)."""
    hostvars = dict(
        iot_thing_name=record["thing_name"],
        iot_thing_arn=record.get("thing_arn"),
        iot_thing_type=record.get("thing_type"),
        iot_region=region,
        iot_attributes=dict(record["attributes"]),
        iotfleet_thing_name=record["thing_name"],
    )
    if record.get("thing_groups") is not None:
        hostvars["iot_thing_groups"] = list(record["thing_groups"])
    if record.get("certificates") is not None:
        certificates = order_certificates(record["certificates"])
        live = certificates[0] if certificates else {}
        hostvars["iot_certificates"] = certificates
        hostvars["iot_certificate_id"] = live.get("certificate_id")
        hostvars["iot_certificate_status"] = live.get("status")
    if ansible_host_attribute and record["attributes"].get(ansible_host_attribute):
        hostvars["ansible_host"] = record["attributes"][ansible_host_attribute]
    return hostvars


def group_name(prefix, name):
    return to_safe_group_name(f"{prefix}{name}", force=True, silent=True)


# ---------------------------------------------------------------------------------------------
# reading the registry


class Registry:
    """The registry reads of one inventory run, through the collection's IoTClient."""

    def __init__(self, client, max_workers=8):
        self.client = client
        self.max_workers = max(1, int(max_workers))
        self.warnings = []

    def _pages(self, operation, result_key, **kwargs):
        """All items of a nextToken-paginated call; None when the first page says the resource is missing."""
        items, first = [], True
        while True:
            page = self.client.get(operation, **kwargs)
            if page is None:
                return None if first else items
            first = False
            items.extend(page.get(result_key) or [])
            token = page.get("nextToken")
            if not token:
                return items
            kwargs["nextToken"] = token

    def things(self, thing_type=None, attribute=None):
        kwargs = dict(maxResults=PAGE_SIZE)
        if thing_type:
            kwargs["thingTypeName"] = thing_type
        if attribute:
            kwargs["attributeName"], kwargs["attributeValue"] = attribute
        return [thing_record(t) for t in self._pages("list_things", "things", **kwargs) or []]

    def group_members(self, groups, recursive=False):
        members = set()
        for group in groups:
            found = self._pages("list_things_in_thing_group", "things", thingGroupName=group,
                                recursive=bool(recursive), maxResults=PAGE_SIZE)
            if found is None:
                self.warnings.append(f"Thing group {group!r} does not exist: it matches no thing.")
                continue
            members.update(found)
        return members

    def search(self, query, index_name):
        names, kwargs = set(), dict(indexName=index_name, queryString=query, maxResults=SEARCH_PAGE_SIZE)
        while True:
            try:
                page = self.client.call("search_index", **kwargs)
            except IoTAWSError as e:
                if error_code(e) in _INDEX_MISSING:
                    raise IoTInventoryError(
                        f"The fleet index {index_name!r} cannot be searched ({error_code(e)}): enable fleet indexing "
                        "for things (aws iot update-indexing-configuration --thing-indexing-configuration "
                        "thingIndexingMode=REGISTRY) and wait until it is built, or use the other filters."
                    ) from e
                raise
            names.update(t["thingName"] for t in page.get("things") or [] if t.get("thingName"))
            token = page.get("nextToken")
            if not token:
                return names
            kwargs["nextToken"] = token

    def thing_groups_of(self, thing_name):
        groups = self._pages("list_thing_groups_for_thing", "thingGroups", thingName=thing_name, maxResults=PAGE_SIZE)
        return sorted(g["groupName"] for g in groups or [])

    def certificates_of(self, thing_name):
        principals = self._pages("list_thing_principals", "principals", thingName=thing_name, maxResults=PAGE_SIZE)
        certificates = []
        for principal in principals or []:
            certificate_id = certificate_id_of(principal)
            if certificate_id is None:
                continue
            described = self.client.get("describe_certificate", certificateId=certificate_id)
            if described is None:  # deleted since the listing
                continue
            certificates.append(certificate_entry(described.get("certificateDescription") or {}))
        return certificates

    def add_details(self, records, thing_groups=True, certificates=True):
        """Fill ``thing_groups`` and ``certificates`` of each record (None when not read), in parallel."""

        def details(record):
            name = record["thing_name"]
            groups = self.thing_groups_of(name) if thing_groups else None
            certs = self.certificates_of(name) if certificates else None
            return groups, certs

        if not (thing_groups or certificates):
            for record in records:
                record.update(thing_groups=None, certificates=None)
            return records
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            for record, (groups, certs) in zip(records, pool.map(details, records)):
                record.update(thing_groups=groups, certificates=certs)
        return records

    def group_parents(self, groups):
        """``{thing group: [root, ..., parent]}`` for each of ``groups`` that has parents."""
        parents = {}
        for group in sorted(groups):
            described = self.client.get("describe_thing_group", thingGroupName=group)
            if described is None:
                continue
            chain = (described.get("thingGroupMetadata") or {}).get("rootToParentThingGroups") or []
            names = [g["groupName"] for g in chain if g.get("groupName")]
            if names:
                parents[group] = names
        return parents


# ---------------------------------------------------------------------------------------------
# the plugin


class InventoryModule(AWSInventoryBase):
    NAME = "iotfleet.aws.iot_things"
    INVENTORY_FILE_SUFFIXES = ("iot_things.yml", "iot_things.yaml")

    def _iot_client(self):
        boto3_client = self.client("iot")
        return IoTClient(boto3_client, limiter=RateLimiter(DEFAULT_RATE_LIMITS))

    def _query(self):
        """Read the registry: ``{"region": ..., "things": [record, ...], "group_parents": {...}}``."""
        thing_type, pairs, groups = normalize_filters(
            self.get_option("thing_type"), self.get_option("attributes"), self.get_option("thing_groups")
        )
        query = self.get_option("query")
        include_groups = self.get_option("include_thing_groups")
        client = self._iot_client()
        registry = Registry(client, max_workers=self.get_option("max_workers"))

        records = registry.things(thing_type, pairs[0] if pairs else None)
        records = [r for r in records if matches_attributes(r, pairs[1:])]
        if groups:
            members = registry.group_members(groups, self.get_option("thing_groups_recursive"))
            records = [r for r in records if r["thing_name"] in members]
        if query:
            found = registry.search(query, self.get_option("index_name"))
            records = [r for r in records if r["thing_name"] in found]
        records.sort(key=lambda r: r["thing_name"])

        registry.add_details(records, thing_groups=include_groups, certificates=self.get_option("include_certificates"))
        group_parents = {}
        if include_groups and self.get_option("group_by_thing_groups"):
            group_parents = registry.group_parents({g for r in records for g in r["thing_groups"] or []})
        for warning in registry.warnings:
            self.warn(warning)
        return dict(region=client.raw.meta.region_name, things=records, group_parents=group_parents)

    def _populate(self, results):
        hostname_attribute = self.get_option("hostname_attribute")
        ansible_host_attribute = self.get_option("ansible_host_attribute")
        by_groups = self.get_option("group_by_thing_groups")
        by_type = self.get_option("group_by_thing_type")
        group_prefix = self.get_option("thing_group_prefix") or ""
        type_prefix = self.get_option("thing_type_prefix") or ""
        strict = self.get_option("strict")

        records = results["things"]
        names, warnings = assign_host_names(records, hostname_attribute)
        for warning in warnings:
            self.warn(warning)

        if by_groups:
            for group, chain in (results.get("group_parents") or {}).items():
                lineage = [group_name(group_prefix, g) for g in chain + [group]]
                for parent, child in zip(lineage, lineage[1:]):
                    self.inventory.add_group(parent)
                    self.inventory.add_group(child)
                    self.inventory.add_child(parent, child)

        for record in records:
            host = self.inventory.add_host(names[record["thing_name"]])
            hostvars = host_variables(record, results.get("region"), ansible_host_attribute)
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            if by_groups:
                for thing_group in record.get("thing_groups") or []:
                    self.inventory.add_child(self.inventory.add_group(group_name(group_prefix, thing_group)), host)
            if by_type and record.get("thing_type"):
                self.inventory.add_child(self.inventory.add_group(group_name(type_prefix, record["thing_type"])), host)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        if self.get_option("max_workers") < 1:
            self.fail_aws("max_workers must be at least 1.")
        result_was_cached, results = self.get_cached_result(path, cache)
        if not result_was_cached:
            try:
                results = self._query()
            except IoTInventoryError as e:
                self.fail_aws(str(e))
            except IoTAWSError as e:
                self.fail_aws(e.message, exception=e.exception)
        self._populate(results)
        self.update_cached_result(path, cache, results)
