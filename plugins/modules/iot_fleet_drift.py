#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_fleet_drift
version_added: 1.0.0
short_description: Report (and prune) the fleet's things and certificates that the inventory no longer holds
description:
  - Compares the AWS IoT registry with the inventory and reports
    (a) the things this collection created - members of O(managed_thing_group), which
    M(iotfleet.aws.iot_fleet) makes every thing it creates join - whose name is not in O(inventory), and
    (b) the certificates of the fleet CA attached to no thing, leaving out the certificate each
    inventory device holds under O(pki_dir) (the fleet module attaches it) and REVOKED ones (retired
    on purpose, kept for audit).
  - By default it only reports. With O(prune=true) it decommissions them as
    M(iotfleet.aws.iot_fleet) with O(iotfleet.aws.iot_fleet#module:state=absent) does - every
    certificate of the thing INACTIVE, detached, then deleted or REVOKED (O(retire_certificates)); the
    thing deleted; its files under O(pki_dir) moved to C(retired/) with the private key destroyed -
    and retires the orphan certificates the same way. A failure stays with its thing or certificate.
  - Things the collection did not create (made by hand, by JITP, or before it marked things) are
    never reported or pruned as (a).
  - A separate module from M(iotfleet.aws.iot_fleet) because its input is the whole inventory (the
    fleet module gets only the devices registered in one run, which leaves out unreachable Pis) and
    its result is a report, not one entry per device.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  inventory:
    description:
      - The thing names of the B(whole) inventory (every host of the device group, reachable or not).
        A managed thing whose name is not here is drift.
      - With O(prune=true) an empty list is refused (it would retire every managed thing).
    type: list
    elements: str
    required: true
  ca_certificate:
    description: Path on the controller to the fleet CA certificate (PEM); its certificates are checked.
    required: true
  prune:
    description: V(true) decommissions what is reported; V(false) only reports.
    type: bool
    default: false
  workers:
    description: Threads that retire things at once (O(prune=true)).
attributes:
  check_mode:
    support: full
    details:
      - With O(prune=true) predicts every retirement and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.fleet
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
requirements:
  - cryptography (on the controller)
notes:
  - Reads - C(ListThingsInThingGroup) and C(ListCertificatesByCA) in pages of 250, one C(DescribeThing)
    per managed thing out of the inventory (a deleted thing can be listed as a member a while), and one
    C(ListPrincipalThings) per fleet CA certificate that no inventory device holds.
"""

EXAMPLES = r"""
- name: Report what the registry holds and the inventory no longer does
  iotfleet.aws.iot_fleet_drift:
    inventory: "{{ groups['pis'] | map('extract', hostvars) | map(attribute='iotfleet_thing_name') | list }}"
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    pki_dir: "{{ pki_dir }}"
  register: drift

- name: Decommission it
  iotfleet.aws.iot_fleet_drift:
    inventory: "{{ thing_names }}"
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    pki_dir: "{{ pki_dir }}"
    prune: true
"""

RETURN = r"""
orphan_things:
  description: Managed things whose name is not in O(inventory) (before any pruning).
  returned: always
  type: list
  elements: str
orphan_certificates:
  description: Ids of fleet CA certificates attached to no thing (not REVOKED, held by no inventory device).
  returned: always
  type: list
  elements: str
pruned:
  description: Whether O(prune) was asked.
  returned: always
  type: bool
devices:
  description:
    - With O(prune=true), one retirement result per orphan thing, as M(iotfleet.aws.iot_fleet) returns
      with O(iotfleet.aws.iot_fleet#module:state=absent) (C(retired_certificates), C(thing_deleted),
      C(archived_to), C(failed), C(msg)).
  returned: always
  type: list
  elements: dict
retired_certificates:
  description: Orphan certificates retired (O(prune=true)).
  returned: always
  type: list
  elements: str
failures:
  description: What could not be retired (thing or certificate, and why); the module fails when it is not empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import fleet_drift
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def run(module):
    p = module.params
    if p["workers"] < 1:
        raise IoTFleetError("workers must be at least 1.")
    ca_cert = _x509.load_certificate(path=p["ca_certificate"], what="fleet CA certificate")
    spec = FleetSpec([], ca_cert, None, p["pki_dir"], retire_certificates=p["retire_certificates"],
                     managed_thing_group=p["managed_thing_group"])
    client = module.iot_client(limiter=RateLimiter(DEFAULT_RATE_LIMITS))
    result = fleet_drift(client, spec, p["inventory"], prune=p["prune"], workers=p["workers"],
                         check_mode=module.check_mode)
    if result["failures"]:
        raise IoTFleetError(f"{len(result['failures'])} retirements failed: {'; '.join(result['failures'])}", **result)
    return result


def main():
    argument_spec = dict(
        inventory=dict(type="list", elements="str", required=True),
        ca_certificate=dict(type="path", required=True),
        pki_dir=dict(type="path", required=True),
        managed_thing_group=dict(type="str", default="iotfleet-managed"),
        prune=dict(type="bool", default=False),
        retire_certificates=dict(type="str", choices=["delete", "revoke"], default="delete"),
        workers=dict(type="int", default=8),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _x509.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(_x509.CRYPTOGRAPHY_IMPORT_ERROR))
    module.run(run, module)


if __name__ == "__main__":
    main()
