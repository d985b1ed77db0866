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
    M(iotfleet.aws.iot_fleet) makes every thing it creates join - whose name is not in O(inventory),
    (b) the certificates of the fleet CA attached to no thing, leaving out the certificate each
    inventory device holds under O(pki_dir) (the fleet module attaches it) and REVOKED ones (retired
    on purpose, kept for audit),
    (c) for every device of O(devices) (the devices of this run), each ACTIVE certificate attached to its
    thing that is not its identity - the certificate O(devices[].certificate_id) names, else the one the
    controller holds under O(pki_dir) - nor the identity a rotation staged for it (C(staged/) under
    O(pki_dir)) - a second controller's certificates, an earlier staged one whose files are gone - and
    (d) every fleet-CA-like CA registered in the account that the run does not own - a CA whose subject CN is
    the fleet CA's CN (without the creation time a CA rotation appends) or starts with its first 43
    characters (the C(iotfleet.aws.ca) role names a rotation's next CA C(<ca_common_name[:43]> <UTC time>)),
    other than the fleet CA (O(ca_certificate)) and the next CA of a CA rotation in progress (C(next/)
    beside it). Reported are the ACTIVE ones, and INACTIVE ones with no ACTIVE certificate left under them.
  - (a) and (b) only with O(whole_inventory=true) - a run that sees part of the fleet (C(--limit), a job
    slice) cannot tell a thing of a Pi it does not see from drift. (c) looks only at O(devices).
  - By default it only reports. With O(prune=true) it decommissions (a) as
    M(iotfleet.aws.iot_fleet) with O(iotfleet.aws.iot_fleet#module:state=absent) does - every
    certificate of the thing INACTIVE, detached, then deleted or REVOKED (O(retire_certificates)); the
    thing deleted; its files under O(pki_dir) moved to C(retired/) with the private key destroyed -,
    retires (b) and (c) the same way as a superseded certificate, and sets each CA of (d) INACTIVE, deleting
    it only when no ACTIVE certificate remains under it; a CA's key files are never touched (they are not
    this run's). A failure stays with its thing, certificate or CA. A rerun after a prune finds nothing.
  - Things the collection did not create (made by hand, by JITP, or before it marked things) are
    never reported or pruned as (a).
  - Two fleets in one account must have CA names (C(ca_common_name)) that do not start with one another,
    or each reports the other's CA as (d).
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
    description: Threads that read the devices' certificates and retire things at once.
  devices:
    description:
      - The devices of this run (the play's Pis, as the registration step returned them); each one's thing is
        checked for certificates besides its identity (c). Pis outside the run are not looked at.
    type: list
    elements: dict
    default: []
    version_added: 1.2.0
    suboptions:
      thing_name:
        description: The thing name.
        type: str
        required: true
      host:
        description: The inventory host, for reports. Defaults to O(devices[].thing_name).
        type: str
      certificate_id:
        description:
          - The device's identity, as the registration step named it. Omitted or null - the certificate the
            controller holds (C(devices/<thing name>/certificate.pem) under O(pki_dir)); with no such file either
            the device's identity is unknown and none of its certificates is reported (RV(unknown_identity_devices)).
        type: str
  whole_inventory:
    description:
      - Whether O(inventory) is the whole fleet. V(false) for a run that sees part of it (C(--limit), a job
        slice, whose inventory holds only its own hosts) - (a) and (b) are then not reported.
    type: bool
    default: true
    version_added: 1.2.0
  registration:
    description:
      - The fleet's registration mode. With V(jitp) retired certificates are always REVOKED, never deleted
        (O(retire_certificates)).
    type: str
    choices: [api, jitp]
    default: api
    version_added: 1.2.0
  rate_limits:
    description:
      - Requests per second per AWS API operation, merged over the defaults, as
        O(iotfleet.aws.iot_fleet#module:rate_limits).
    type: dict
    default: {}
    version_added: 1.2.0
  rate_share:
    description:
      - The share of the AWS rates this run may use, 0 < V(rate_share) <= 1, as
        O(iotfleet.aws.iot_fleet#module:rate_share) (job slices, parallel controllers).
    type: float
    default: 1.0
    version_added: 1.2.0
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
    C(ListPrincipalThings) per fleet CA certificate that no inventory device holds (with O(whole_inventory));
    one C(ListThingPrincipals) per device of O(devices) and one C(DescribeCertificate) per other certificate of
    its thing; C(ListCACertificates) in pages, one C(DescribeCACertificate) per CA the run does not own and one
    C(ListCertificatesByCA) per fleet-like one. Every call is paced by O(rate_limits) times O(rate_share).
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

- name: A --limit run - only the Pis of the play are checked for extra certificates
  iotfleet.aws.iot_fleet_drift:
    inventory: "{{ thing_names }}"
    whole_inventory: false
    devices: "{{ registry_fleet.devices }}"  # host, thing_name, certificate_id of each Pi of the run
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    pki_dir: "{{ pki_dir }}"
    rate_share: 0.25
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
extra_certificates:
  description:
    - ACTIVE certificates attached to a thing of O(devices) that are not that device's identity (nor its
      staged one), before any pruning.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The inventory host.
      type: str
    thing_name:
      description: The thing the certificate is attached to.
      type: str
    certificate_id:
      description: The certificate.
      type: str
    ca_certificate_id:
      description: The CA it was registered under (null without a CA).
      type: str
  version_added: 1.2.0
foreign_cas:
  description: Fleet-CA-like CAs of the account the run does not own, before any pruning.
  returned: always
  type: list
  elements: dict
  contains:
    certificate_id:
      description: The CA certificate id.
      type: str
    common_name:
      description: Its subject CN.
      type: str
    status:
      description: Its status (ACTIVE, or INACTIVE with no ACTIVE certificate left under it).
      type: str
    active_certificates:
      description: How many ACTIVE certificates are registered under it.
      type: int
    active_certificate_ids:
      description: Their ids.
      type: list
      elements: str
  version_added: 1.2.0
unknown_identity_devices:
  description: Hosts of O(devices) whose identity is not known (check mode, no file); their things were not checked.
  returned: always
  type: list
  elements: str
  version_added: 1.2.0
whole_inventory:
  description: Whether (a) and (b) were looked at (O(whole_inventory)).
  returned: always
  type: bool
  version_added: 1.2.0
retired_certificates:
  description: Orphan and extra certificates retired (O(prune=true); predicted in check mode).
  returned: always
  type: list
  elements: str
retired_cas:
  description:
    - Foreign CAs retired (O(prune=true); predicted in check mode) - C(certificate_id) and C(done)
      (V(inactive), V(deleted)).
  returned: always
  type: list
  elements: dict
  version_added: 1.2.0
rate_limits:
  description: The requests-per-second limits in force, by AWS API operation.
  returned: always
  type: dict
  version_added: 1.2.0
failures:
  description: What could not be retired (thing or certificate, and why); the module fails when it is not empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import merged_rate_limits
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import effective_retire_mode
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import fleet_drift
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def run_devices(devices):
    """The run's devices as fleet_drift takes them: ``certificate_id`` only where the caller named one (else
    the controller's file says)."""
    result = []
    for device in devices or []:
        entry = dict(host=device.get("host") or device["thing_name"], thing_name=device["thing_name"])
        if device.get("certificate_id"):
            entry["certificate_id"] = device["certificate_id"]
        result.append(entry)
    return result


def run(module):
    p = module.params
    if p["workers"] < 1:
        raise IoTFleetError("workers must be at least 1.")
    rates = merged_rate_limits(p["rate_limits"], p["rate_share"])
    retire_mode, warning = effective_retire_mode(p["registration"], p["retire_certificates"])
    if warning:
        getattr(module, "_module", module).warn(warning)
    ca_cert = _x509.load_certificate(path=p["ca_certificate"], what="fleet CA certificate")
    spec = FleetSpec(run_devices(p["devices"]), ca_cert, None, p["pki_dir"], retire_certificates=retire_mode,
                     managed_thing_group=p["managed_thing_group"])
    client = module.iot_client(limiter=RateLimiter(rates))
    result = fleet_drift(client, spec, p["inventory"], prune=p["prune"], workers=p["workers"],
                         check_mode=module.check_mode, whole_inventory=p["whole_inventory"],
                         ca_certificate_path=p["ca_certificate"])
    result["rate_limits"] = rates
    if result["failures"]:
        raise IoTFleetError(f"{len(result['failures'])} retirements failed: {'; '.join(result['failures'])}", **result)
    return result


def main():
    argument_spec = dict(
        inventory=dict(type="list", elements="str", required=True),
        devices=dict(type="list", elements="dict", default=[], options=dict(
            thing_name=dict(type="str", required=True),
            host=dict(type="str"),
            certificate_id=dict(type="str"),
        )),
        whole_inventory=dict(type="bool", default=True),
        ca_certificate=dict(type="path", required=True),
        pki_dir=dict(type="path", required=True),
        managed_thing_group=dict(type="str", default="iotfleet-managed"),
        prune=dict(type="bool", default=False),
        registration=dict(type="str", choices=["api", "jitp"], default="api"),
        retire_certificates=dict(type="str", choices=["delete", "revoke"]),
        workers=dict(type="int", default=8),
        rate_limits=dict(type="dict", default={}),
        rate_share=dict(type="float", default=1.0),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _x509.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(_x509.CRYPTOGRAPHY_IMPORT_ERROR))
    module.run(run, module)


if __name__ == "__main__":
    main()
