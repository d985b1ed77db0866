#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_fleet
version_added: 1.0.0
short_description: Register a whole fleet of devices in AWS IoT in one batched run
description:
  - For every device of O(devices), in one module run on the controller, makes sure that
    the device has a key and a certificate signed by the fleet CA (CN = thing name), that the
    certificate is registered with AWS IoT and ACTIVE, that the thing exists with its
    attributes, that O(policy_name) is attached to the certificate and that the certificate is
    attached to the thing.
  - It calls the same code as M(iotfleet.aws.iot_certificate), M(iotfleet.aws.iot_thing),
    M(iotfleet.aws.iot_policy_attachment) and M(iotfleet.aws.iot_thing_principal), from a
    pool of O(workers) threads that share one AWS client and one rate limiter per AWS API, so
    a fleet of thousands pays one Python start and stays within the account's API limits.
  - Per-device files live on the controller under C(<pki_dir>/devices/<thing name>/)
    (C(certificate.pem), C(private.key) 0600 in key mode V(controller), C(device.csr) in key mode
    V(device)). Key material is never returned or logged.
  - One device's failure does not stop the others; the module fails at the end and names every
    failed device. A rerun finishes what a failed run left.
  - With O(registration=jitp) the module only makes (or reads) each device's key and certificate
    under O(pki_dir) and makes B(no AWS call at all), so it needs no credentials or region. Each device
    registers itself on its first connect through the just-in-time provisioning template of the
    fleet CA (see the C(iotfleet.aws.jitp_template) filter and the C(iotfleet.aws.ca) role). The
    per-device results have the same fields; the certificate id is computed locally (as AWS IoT
    computes it), the ARNs are null.
author:
  - iotfleet.aws developers (@iotfleet)
options:
  devices:
    description:
      - The devices. Thing names must be unique; two hosts that map to one thing name are refused
        before any AWS call.
    type: list
    elements: dict
    required: true
    suboptions:
      thing_name:
        description:
          - The thing name, 1-128 characters from C([a-zA-Z0-9:_-]); also the MQTT client id.
          - The device certificate's CN is the thing name when it has at most 64 characters (the X.509
            limit). A longer name (O(registration=api) only) gets the CN C(<first 55 characters>-<first 8 hex
            digits of the SHA-256 of the whole name>), 64 characters, stable and distinct for names that
            share their first 64; the certificate is bound to its thing by the attachment, not the CN.
          - With O(registration=jitp) AWS IoT names the thing after the CN, so a name over 64 characters
            fails its device (named by its host) before anything is written for it.
        type: str
        required: true
      host:
        description: The inventory host the device is, for reports. Defaults to O(devices[].thing_name).
        type: str
      reactivate:
        description:
          - An INACTIVE certificate is an operator's quarantine and is left INACTIVE (the device is
            reported in RV(quarantined_devices)); V(true) sets it ACTIVE again.
        type: bool
        default: false
      attributes:
        description:
          - Thing attributes (merged with existing ones unless O(purge_attributes)).
          - A dict; a device whose attributes are not a valid dict of AWS IoT attributes fails alone,
            named by its host, before anything is written for it.
          - Not applied with O(registration=jitp) (the JITP template sets the attributes); the module
            warns, naming the devices whose attributes are left out.
        type: raw
      thing_groups:
        description:
          - Static thing groups the device's thing joins (it is never taken out of other groups).
          - Every group named by any device is made sure of once per run, not per device - a missing
            one is created as a static group without a parent (RV(thing_groups_created)). A dynamic
            group cannot be joined (AWS IoT picks its members by its query) - the devices naming it
            fail, named by their host, and the others go on.
          - Not applied with O(registration=jitp).
        type: list
        elements: str
      installed_certificate:
        description:
          - The certificate (PEM, public) installed on the device, whose key the device has proven to
            match it (the C(device) role's preparation compares them on the device, and the key never
            travels).
          - The controller's O(pki_dir) is a cache. When it holds no usable certificate for the device,
            this one is the device's identity if it is usable (the fleet CA's, the thing's CN, valid) and,
            with O(registration=api), registered in AWS IoT. It is then written to the cache and nothing
            changes. In key mode V(controller) a key that only the device holds stays there (no key file
            on the controller; RV(devices[].key_on_controller) is V(false)).
        type: str
      reached:
        description:
          - V(false) - this run did not reach the device, so it showed no installed certificate (the
            C(registry) role sets it for a Pi its preparation did not prepare - registered offline, or a run
            without the preparation such as C(--tags cloud)).
          - In key mode V(controller), when O(pki_dir) holds the device's certificate but no key (the
            controller forgot it once the device verified with it, C(iotfleet_keep_device_keys=false)), that
            certificate is taken as the installed one (see O(devices[].installed_certificate)), so the identity
            stays. Without it such a device would get a new key and certificate, the one it holds retired.
        type: bool
        default: true
  ca_certificate:
    description:
      - Path on the controller to the fleet CA certificate (PEM) that signs device certificates.
      - While a CA rotation is in progress (the next CA in C(next/) beside it, same file names), a device
        certificate the next CA issued is kept as well (that device was rotated already); new certificates
        are still signed by this CA.
      - Required with O(state=present), unless O(ca_certificate_content) is given.
  ca_certificate_content:
    description:
      - The fleet CA certificate as PEM text, instead of O(ca_certificate) (the C(ca) role passes the one it
        found in AWS IoT in check mode, when nothing may be written to this controller's cache).
    type: str
  ca_private_key:
    description:
      - Path on the controller to the fleet CA private key (PEM; encrypted with O(ca_private_key_passphrase)
        or not). It is read, never copied.
      - A file encrypted with Ansible Vault works as is - the module's action plugin decrypts it on the
        controller with the play's vault password and passes its content in O(ca_private_key_content).
      - Required with O(state=present), unless O(ca_kms_key) is given. When the file does not exist, the devices
        that need no new certificate converge all the same; a device that needs one (new, renewed, recovered)
        fails by name, nothing written for it.
    type: path
  ca_private_key_content:
    description:
      - The content (PEM) of the file O(ca_private_key), when the module cannot read that file as is. The
        action plugin sets it for a file encrypted with Ansible Vault; O(ca_private_key) still names the key
        in messages and is the file a CA rotation moves.
      - Never logged or returned.
    type: str
  ca_private_key_passphrase:
    description:
      - The passphrase of the fleet CA private key when it is encrypted (the C(iotfleet.aws.ca) role's
        C(ca_private_key_passphrase)); with O(rotation=switch_ca) also of O(next_ca_private_key).
      - A wrong passphrase fails the module before any AWS call, naming the key file. Never logged.
    type: str
  state:
    description:
      - V(present) registers the devices.
      - V(absent) decommissions them - every certificate attached to the thing (and the one in
        C(devices/<thing name>/) on the controller) is set INACTIVE, detached from its policies and
        things, then deleted (waiting for AWS's asynchronous detach) or REVOKED
        (O(retire_certificates)); the thing is deleted; the controller's files move to
        C(retired/<thing name>-<UTC time>/) under O(pki_dir) with the private key destroyed
        (certificate and CSR kept for audit). A second run changes nothing.
    type: str
    choices: [present, absent]
    default: present
  retire_certificates:
    description:
      - How a retired certificate ends - V(delete) removes it from AWS IoT; V(revoke) keeps it
        registered as REVOKED (detached from everything), for audit.
      - With O(state=absent), every certificate of the device is retired.
      - With O(state=present), a device that gets a new certificate (renewal within
        O(renew_before_days), a damaged or replaced certificate file, recovery from a REVOKED one)
        has every other certificate attached to its thing retired in the same run, so a thing never
        keeps two live identities. A REVOKED certificate is replaced by a new key and certificate (key
        mode V(controller); in key mode V(device) the Pi must make a new key) and its files move to
        C(retired/) with the key destroyed.
  rotation:
    description:
      - Certificate rotation in two phases (the C(iotfleet.aws.rotate) playbook runs both, with the
        device-side steps between them); omit it for normal registration.
      - V(stage) - for each device whose live certificate (C(devices/<thing name>/certificate.pem))
        expires within O(renew_before_days), or every device with O(rotate_all), or one that has a
        staged identity already, makes the next identity under C(staged/devices/<thing name>/) - a new
        key (key mode V(controller); in key mode V(device) it signs the C(device.csr) the device made
        beside its live key, and reports the device in RV(pending_csr_devices) while there is none),
        a certificate signed by the fleet CA, registered ACTIVE, O(policy_name) attached, attached
        to the thing beside the live certificate. A rerun reuses the staged identity. Retired first (as
        O(retire_certificates) says; C(retired_certificates) in the device's result) - a certificate attached
        to the thing, ACTIVE, issued by the fleet CA, that is neither the live identity nor the staged file's
        (an earlier staged identity whose files are gone); nothing else.
      - V(promote) - for each device given (those that verified their staged identity and switched to
        it) - the staged certificate must be ACTIVE and attached to the thing; every other certificate
        of the thing, and the controller's live one, is retired as O(retire_certificates) says; the live
        files move to C(retired/<thing name>-<UTC time>/) with the key destroyed, and the staged
        files become the live ones. A device with nothing staged is left alone (in check mode its
        promotion is predicted - give only the devices the V(stage) run reported in RV(staged_devices)).
      - Rotation of the fleet CA - V(stage) also counts a device due when its live certificate was not
        issued by O(ca_certificate) (give the next CA, C(pki/ca/next/), as O(ca_certificate) and
        O(ca_private_key); every device still under the old CA is then due and gets a certificate of
        the next CA).
      - V(switch_ca) - the end of a CA rotation. O(ca_certificate) and O(ca_private_key) are the live
        fleet CA, O(next_ca_certificate) and O(next_ca_private_key) the next one (made and registered by
        the C(iotfleet.aws.ca) role with C(ca_next)). Once no ACTIVE certificate is registered under the
        live CA (C(ListCertificatesByCA)), it is set INACTIVE and deleted from AWS IoT, its certificate
        archived under C(retired/<CA certificate id>/) beside it, its key destroyed, and the next CA's
        files renamed over the live ones (the C(next) directory removed). While ACTIVE certificates are
        left (Pis not rotated yet) nothing changes and RV(ca_rotation) says how many. Each step is left
        for a rerun to finish when a run stops midway; without the next CA's directory nothing is done.
        O(devices) is used in check mode only - their live certificates count as retired (the
        V(promote) step would have retired them).
      - With O(registration=jitp) V(stage) makes the staged identity and does B(not) register it - the device
        registers it itself on its first connect with it (the fleet CA's just-in-time provisioning template -
        ACTIVE, the policy and the existing thing attached), which the rotation's round trip is; V(promote)
        then finds it ACTIVE and attached as in V(api). Retired certificates are REVOKED in V(jitp)
        (O(retire_certificates)). The rotation calls AWS in either mode (O(rate_limits), O(rate_share)).
      - Needs O(state=present).
    type: str
    choices: [stage, promote, switch_ca]
  next_ca_certificate:
    description:
      - With O(rotation=switch_ca), the next fleet CA certificate (C(pki/ca/next/fleet-ca.pem)).
      - With O(keep_ca_files=true) and no O(rotation), the next CA of a CA rotation in progress (an operator's) -
        registration keeps a device certificate it issued, as it does for C(next/) beside O(ca_certificate).
    type: path
  next_ca_private_key:
    description:
      - With O(rotation=switch_ca), the next fleet CA private key. It is renamed, never read out or copied.
      - An Ansible Vault file is decrypted by the action plugin into O(next_ca_private_key_content), as for O(ca_private_key).
    type: path
  next_ca_private_key_content:
    description:
      - The content (PEM) of the file O(next_ca_private_key) when the module cannot read it as is (set by the
        action plugin for an Ansible Vault file). Never logged.
    type: str
  keep_ca_files:
    description:
      - The fleet CA files are the operator's own (the C(iotfleet.aws.ca) role's C(ca_create=false)), and
        O(next_ca_certificate) and O(next_ca_private_key) the next CA they gave, wherever it is; the rotation
        is in progress while O(next_ca_certificate) exists.
      - With O(rotation=switch_ca) only the AWS IoT part of the switch happens (the old CA INACTIVE, then
        deleted, once no ACTIVE certificate hangs under it); no file is archived, renamed or deleted, and
        RV(ca_rotation.msg) names the variables to point at the next CA.
    type: bool
    default: false
  rotate_all:
    description: With O(rotation=stage), stage a new identity for every device, due or not.
    type: bool
    default: false
  key_mode:
    description:
      - V(controller) makes each device key here (0600) for the C(device) role to push.
      - V(device) signs the CSR that the device made (C(device.csr)); the key never leaves the device.
    type: str
    choices: [controller, device]
    default: controller
  key_type:
    description: Type of the device keys made in key mode V(controller).
    type: str
    choices: [ec, rsa]
    default: ec
  certificate_days:
    description: Validity of newly issued device certificates, in days (never beyond the CA's).
    type: int
    default: 3650
  renew_before_days:
    description:
      - An existing device certificate closer than this to its expiry is due for renewal - replaced by a
        new one in this run (O(renewal=replace)), or kept and reported (O(renewal=rotate)).
    type: int
    default: 30
  renewal:
    description:
      - What registration V(api) does with a device certificate due within O(renew_before_days) that is
        still valid.
      - V(replace) - a new certificate (same key) at once; every other certificate attached to the thing
        is retired in the same run (O(retire_certificates)), before the device has the new one.
      - V(rotate) - the certificate stays live and the device is reported in RV(renewal_due_devices)
        (C(renewal_due) and C(expires) in its RV(devices) entry), for O(rotation=stage) and O(rotation=promote)
        to replace it once the device has proven the new one (as C(iotfleet.aws.provision) does). A dead
        certificate (expired, not issued by the fleet CA, not matching the key or CSR, REVOKED) is replaced
        directly either way.
      - Not used with O(registration=jitp) (a replaced certificate stays registered there).
    type: str
    choices: [replace, rotate]
    default: replace
    version_added: 1.1.0
  policy_name:
    description: The IoT policy to attach to every device certificate. Omit to attach none.
    type: str
  thing_type:
    description:
      - Thing type of every thing. Omit to leave the type alone.
      - It is checked once per run; when it does not exist or is deprecated, every device fails,
        named by its host, before anything is written for it.
    type: str
  purge_attributes:
    description: Remove thing attributes that O(devices[].attributes) does not declare.
    type: bool
    default: false
  exclusive:
    description: Attach each certificate to its thing as C(EXCLUSIVE_THING) (no other thing may use it).
    type: bool
    default: false
  register_with_ca:
    description:
      - Register device certificates together with the fleet CA (C(RegisterCertificate)); the CA
        must be registered in this account and region.
      - V(false) registers them without a CA (C(RegisterCertificateWithoutCA), for SNI_ONLY/multi-account setups).
    type: bool
    default: true
  registration:
    description:
      - V(api) registers each device certificate ACTIVE, makes the thing, attaches the policy and the
        certificate with the AWS IoT API (batched, rate-limited); the thing joins its thing groups.
      - V(jitp) issues the certificates only, with no AWS call; the devices are registered by AWS IoT
        on their first connect (just-in-time provisioning). The fleet CA must be registered with
        auto-registration on and a template, which makes the thing, registers the certificate ACTIVE
        and attaches the policy. O(policy_name), O(thing_type), O(purge_attributes), O(exclusive),
        O(register_with_ca), O(rate_limits), O(managed_thing_group), O(devices[].attributes) and
        O(devices[].thing_groups) are then not used (O(rate_limits) is, with O(rotation)). Retired certificates are
        always REVOKED (O(retire_certificates)).
      - A fleet can move between the two; certificates that exist are kept either way.
    type: str
    choices: [api, jitp]
    default: api
  managed_thing_group:
    description:
      - The static thing group every thing this module B(creates) joins, the mark of the things this
        collection manages; M(iotfleet.aws.iot_fleet_drift) reports (and prunes) the members that are
        no longer in the inventory. Created once if missing. Things that already exist are not
        added (they were not made here).
      - V('') marks nothing.
      - A group rather than an attribute, because a thing without a thing type holds at most 3
        attributes and O(purge_attributes) removes undeclared ones; a group takes none of them, is
        listed in pages (C(ListThingsInThingGroup)) and costs one write per new thing.
  progress_every:
    description:
      - "While the module runs on the controller (as in the C(registry) role), a progress line
        C(iot_fleet: <done>/<total> devices, <percent>, <n> changed, <n> failed, <seconds>, <rate>)
        is displayed after every this many finished devices and after the last one. It costs no AWS call."
      - A fleet of at most this many devices runs silently, as does a run with V(0), on another host, or
        with C(async).
    type: int
    default: 500
    version_added: 1.0.0
  rate_limits:
    description:
      - Requests per second per AWS API operation (for example C(CreateThing)), shared by all workers.
        Merged over the defaults from the published AWS IoT limits (RegisterCertificate 10/s,
        AttachPolicy 15/s, CreateThing 15/s, ...). V(0) lifts the limit of an operation.
      - Throttling answers (C(ThrottlingException)) are retried with jittered backoff in any case.
    type: dict
    default: {}
  rate_share:
    description:
      - The share of the AWS rates this run may use, 0 < V(rate_share) <= 1; every limit of
        O(rate_limits) (and of the defaults) is multiplied by it.
      - The limits are paced per process. Runs that share one AWS account and region at the same
        time (job slices in AWX / Automation Platform, parallel controllers) each take their share,
        for example V(0.25) with 4 slices, so that together they stay within the account's limits.
    type: float
    default: 1.0
attributes:
  check_mode:
    support: full
    details:
      - Predicts every change; makes no key, certificate or AWS change.
      - With O(registration=jitp) it makes no AWS call at all, in check mode or not (except with O(rotation)).
  diff_mode:
    support: full
    details:
      - One before/after per changed device - its certificate id and status, thing attributes and type,
        thing groups, whether the policy and the thing are attached, certificates retired. Never key
        material; nothing for a device that did not change.
  idempotent:
    support: full
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - iotfleet.aws._options.fleet
  - iotfleet.aws._options.ca_kms_key
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
requirements:
  - cryptography (on the controller)
notes:
  - In registration V(api), a certificate a device's new one replaces (renewal with O(renewal=replace), a
    damaged file, recovery from REVOKED) is retired in the same run per O(retire_certificates); O(rotation)
    replaces it only after the device has proven the new one. In registration V(jitp) no AWS call is made, so a replaced
    certificate stays registered; retire it with M(iotfleet.aws.iot_certificate).
  - From 50 devices on, registration V(api) reads the registry in pages at the start of the run (the account's
    things, the fleet CA's certificates, the policy's targets), so a rerun with no change costs about one read per
    device. In an account whose things outnumber the fleet's more than 125 to 1 the things are described one by
    one instead (about two reads per device).
"""

EXAMPLES = r"""
- name: Register the devices the registry role lists (one run for the whole fleet)
  iotfleet.aws.iot_fleet:
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    ca_private_key: "{{ pki_dir }}/ca/fleet-ca.key"
    pki_dir: "{{ pki_dir }}"
    policy_name: fleet-device
    devices: "{{ fleet_devices }}"  # [{thing_name: pi1, host: pi1.lan, attributes: {...}}, ...]
  register: fleet

- name: Two devices with attributes, at most 5 CreateThing calls per second
  iotfleet.aws.iot_fleet:
    ca_certificate: /etc/fleet/ca.pem
    ca_private_key: /etc/fleet/ca.key
    pki_dir: /var/lib/fleet
    devices:
      - thing_name: pi-kitchen
        attributes: {room: kitchen}
      - thing_name: pi-garage
        attributes: {room: garage}
    rate_limits:
      CreateThing: 5

- name: Just-in-time provisioning - issue the certificates only (no AWS call); devices register on first connect
  iotfleet.aws.iot_fleet:
    registration: jitp
    ca_certificate: "{{ pki_dir }}/ca/fleet-ca.pem"
    ca_private_key: "{{ pki_dir }}/ca/fleet-ca.key"
    pki_dir: "{{ pki_dir }}"
    devices: "{{ fleet_devices }}"
"""

RETURN = r"""
devices:
  description: One result per device, in the order of O(devices).
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The inventory host.
      type: str
      returned: always
    thing_name:
      description: The thing name.
      type: str
      returned: always
    changed:
      description: Whether anything changed for this device.
      type: bool
      returned: always
    changes:
      description:
        - What changed (key, certificate, certificate registration, thing, policy attachment, thing principal).
        - With O(registration=jitp) only V(key), V(key mode) and V(certificate).
      type: list
      elements: str
      returned: success
    failed:
      description: Whether this device failed.
      type: bool
      returned: always
    msg:
      description: Why the device failed.
      type: str
      returned: failure
    certificate_id:
      description:
        - The AWS IoT certificate id (SHA-256 of the DER); null in check mode before issuance.
        - With O(registration=jitp) computed locally; the id AWS IoT gives the certificate when the device first connects.
      type: str
      returned: success
    certificate_arn:
      description: The certificate ARN; null in check mode before registration, and always with O(registration=jitp).
      type: str
      returned: success
    certificate_path:
      description: The device certificate on the controller.
      type: str
      returned: success
    certificate_pem:
      description:
        - Check mode only - the device's certificate (public) when it was taken from the device or AWS IoT and
          is not in the controller's cache yet (check mode writes nothing there), for the device side to compare.
      type: str
      returned: in check mode, for a certificate not cached yet
    key_on_controller:
      description:
        - Key mode V(controller) - whether the controller holds the device's private key. V(false) when
          only the device holds it (adopted from the device by another controller). Always V(false) in key
          mode V(device).
      type: bool
      returned: success
    thing_arn:
      description: The thing ARN; null in check mode before creation, and always with O(registration=jitp).
      type: str
      returned: success
    thing_groups:
      description: The thing groups of the thing after the run, as far as O(devices[].thing_groups) and O(managed_thing_group) go.
      type: list
      elements: str
      returned: when the device joins groups
    renewal_due:
      description: With O(renewal=rotate), true when the device's live certificate is due and was left in place.
      type: bool
      returned: when due
    expires:
      description: With O(renewal=rotate), when the due certificate expires (ISO 8601, UTC).
      type: str
      returned: when due
thing_groups_created:
  description: Thing groups this run created (or would create, in check mode), once for the fleet.
  returned: O(state=present)
  type: list
  elements: str
failed_devices:
  description:
    - Hosts whose device failed.
    - With O(state=absent) each device also returns C(retired_certificates) (ids), C(thing_deleted)
      and C(archived_to) (the controller directory its files moved to; C(staged_archived_to) for an identity a
      rotation staged and did not promote).
  returned: always
  type: list
  elements: str
quarantined_devices:
  description:
    - Hosts whose certificate an operator set INACTIVE and that stays so (no O(devices[].reactivate)).
    - Their thing and attachments are kept; the device side should skip them.
  returned: always
  type: list
  elements: str
renewal_due_devices:
  description:
    - With O(renewal=rotate), the hosts whose live certificate is due within O(renew_before_days) and
      was left in place (ACTIVE, attached), for the rotation to replace.
  returned: O(state=present) without O(rotation)
  type: list
  elements: str
rate_limits:
  description: The requests-per-second limits in force, by AWS API operation; empty with O(registration=jitp) (no AWS call) unless O(rotation) is set.
  returned: always
  type: dict
due_devices:
  description: With O(rotation=stage), the hosts whose certificate is due for rotation (or staged already).
  returned: when O(rotation=stage)
  type: list
  elements: str
staged_devices:
  description: With O(rotation=stage), the hosts whose next identity is staged (ACTIVE and attached; predicted in check mode).
  returned: when O(rotation=stage)
  type: list
  elements: str
pending_csr_devices:
  description: With O(rotation=stage) in key mode V(device), the due hosts whose next CSR is not on the controller yet.
  returned: when O(rotation=stage)
  type: list
  elements: str
promoted_devices:
  description: With O(rotation=promote), the hosts whose staged identity became the live one (old certificates retired).
  returned: when O(rotation=promote)
  type: list
  elements: str
ca_rotation:
  description: With O(rotation=switch_ca), what became of the CA rotation.
  returned: when O(rotation=switch_ca)
  type: dict
  contains:
    state:
      description:
        - V(none) - no rotation in progress; V(waiting) - ACTIVE certificates still hang under the old CA,
          which stays; V(creating) - the next CA is not complete yet; V(switched) - the next CA is the
          fleet CA (predicted in check mode).
      type: str
      sample: switched
    old_ca_certificate_id:
      description: The CA being retired (null without a rotation, or once the switch moved its files).
      type: str
    ca_certificate_id:
      description: The next CA (after the switch, the fleet CA).
      type: str
    active_certificates:
      description: How many ACTIVE certificates still hang under the old CA.
      type: int
      sample: 1
    active_certificate_ids:
      description: The first 10 of them.
      type: list
      elements: str
    archived_to:
      description: Where the old CA's certificate is archived (its key destroyed).
      type: str
    changes:
      description: What was done.
      type: list
      elements: str
    msg:
      description: One line for the report.
      type: str
registration:
  description: The registration mode of this run, V(api) or V(jitp).
  returned: always
  type: str
  sample: jitp
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import merged_rate_limits
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import effective_retire_mode
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import live_certificate_ids
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import load_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import next_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import retire_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import rotate_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import switch_fleet_ca
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices
from ansible_collections.iotfleet.aws.plugins.module_utils._kms import signing_key
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule
from ansible_collections.iotfleet.aws.plugins.module_utils._progress import ProgressWriter
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.iotfleet.aws.plugins.module_utils._x509 import HAS_CRYPTOGRAPHY


def finished(result):
    """The module's result; an IoTFleetError naming every failed device (by host) when any failed,
    with the whole result (the others' outcomes, ``changed``) attached."""
    if result["failed_devices"]:
        failed = [d for d in result["devices"] if d["failed"]]
        details = "; ".join(f"{d['host']}: {d['msg']}" for d in failed)
        raise IoTFleetError(f"{len(failed)} of {len(result['devices'])} devices failed: {details}", **result)
    return result


def retire(module, p, devices, rates, retire_mode):
    """state=absent: decommission the devices (their certificates, things and controller keys)."""
    spec = FleetSpec(devices, None, None, p["pki_dir"])
    client = module.iot_client(limiter=RateLimiter(rates))
    result = retire_fleet(client, spec, certificates=retire_mode, workers=p["workers"],
                          check_mode=module.check_mode)
    result["rate_limits"] = rates
    return finished(result)


def rotate(module, p, spec, rates, limiter):
    """rotation=stage|promote: the two controller phases of a certificate rotation (registration jitp: the
    staged certificate is registered by the Pi itself, on its first connect with it)."""
    client = module.iot_client(limiter=limiter)
    result = rotate_fleet(client, spec, p["rotation"], rotate_all=p.get("rotate_all", False), workers=p["workers"],
                          check_mode=module.check_mode)
    result["rate_limits"] = rates
    result["registration"] = p["registration"]
    return finished(result)


def switch_ca(module, p, devices, rates):
    """rotation=switch_ca: retire the live fleet CA once nothing ACTIVE hangs under it; the next one takes its place.
    The CA files are not loaded here: a run stopped midway leaves them for switch_fleet_ca to finish."""
    missing = [o for o in ("ca_certificate", "ca_private_key", "next_ca_certificate", "next_ca_private_key") if not p[o]]
    if missing:
        raise IoTFleetError(f"rotation=switch_ca needs {', '.join(missing)}.")
    pending = live_certificate_ids(p["pki_dir"], devices) if module.check_mode else set()
    client = module.iot_client(limiter=RateLimiter(rates))
    outcome = switch_fleet_ca(client, p["ca_certificate"], p["ca_private_key"], p["next_ca_certificate"],
                              p["next_ca_private_key"], pending=pending, check_mode=module.check_mode,
                              passphrase=p.get("ca_private_key_passphrase"), key_content=p.get("ca_private_key_content"),
                              next_key_content=p.get("next_ca_private_key_content"), keep_ca_files=p.get("keep_ca_files", False))
    return dict(changed=outcome.pop("changed"), ca_rotation=outcome, devices=[], failed_devices=[],
                rate_limits=rates, registration=p["registration"])


def run(module):
    p = module.params
    if p["workers"] < 1:
        raise IoTFleetError("workers must be at least 1.")
    jitp = p["registration"] == "jitp"
    # registration jitp makes no AWS call, except for a rotation (which reads, promotes and retires)
    rates = {} if jitp and not p.get("rotation") else merged_rate_limits(p["rate_limits"], p["rate_share"])
    # one rule for every retirement: in jitp a certificate is REVOKED, never deleted (it would register again)
    retire_mode, warning = effective_retire_mode(p["registration"], p["retire_certificates"])
    if warning:
        getattr(module, "_module", module).warn(warning)
    devices = validate_devices(p["devices"], registration=p["registration"] if p["state"] == "present" else "api")
    if p["state"] == "absent":
        return retire(module, p, devices, merged_rate_limits(p["rate_limits"], p["rate_share"]), retire_mode)
    if p.get("rotation") == "switch_ca":
        return switch_ca(module, p, devices, rates)
    # a controller without the CA key (it lives elsewhere) converges what needs no signing; a CA key in KMS signs
    # there (one Sign call per certificate, paced with the registry's calls)
    limiter = RateLimiter(rates)
    kms_key = signing_key(module.kms_client(limiter=limiter), p["ca_kms_key"]) if p.get("ca_kms_key") else None
    ca_cert, ca_key = load_fleet_ca(p["ca_certificate"], p["ca_private_key"], optional_key=True,
                                    pem=p.get("ca_certificate_content"), passphrase=p.get("ca_private_key_passphrase"),
                                    key_content=p.get("ca_private_key_content"), signing_key=kms_key)
    spec = FleetSpec(
        devices,
        ca_cert,
        ca_key,
        p["pki_dir"],
        policy_name=p["policy_name"],
        key_mode=p["key_mode"],
        key_type=p["key_type"],
        certificate_days=p["certificate_days"],
        renew_before_days=p["renew_before_days"],
        thing_type=p["thing_type"],
        purge_attributes=p["purge_attributes"],
        exclusive=p["exclusive"],
        register_with_ca=p["register_with_ca"],
        registration=p["registration"],
        retire_certificates=retire_mode,
        managed_thing_group=p["managed_thing_group"],
        accepted_cas=[] if p.get("rotation") or not p.get("ca_certificate") or kms_key else next_fleet_ca(
            p["ca_certificate"], p["ca_private_key"], passphrase=p.get("ca_private_key_passphrase"),
            next_certificate_path=p["next_ca_certificate"] if p.get("keep_ca_files", False) else None),
        renewal=p.get("renewal", "replace"),
        ca_key_path=p.get("ca_kms_key") or p["ca_private_key"],
    )
    if p.get("rotation"):
        return rotate(module, p, spec, rates, limiter)
    if jitp:
        # no AWS client at all: the devices register themselves on their first connect
        ignored = [d["host"] for d in devices if d["attributes"] or d["thing_groups"]]
        if ignored:
            # AnsibleModule.warn itself: amazon.aws's AnsibleAWSModule.warn also copies warnings into
            # the result, which ansible-core >= 2.21 reports as a deprecation
            getattr(module, "_module", module).warn(
                f"registration jitp does not apply per-device thing attributes or thing groups (the JITP template "
                f"makes every thing): the attributes and groups of {', '.join(ignored[:10])}"
                f"{f' and {len(ignored) - 10} more' if len(ignored) > 10 else ''} are not applied."
            )
        client = None
    else:
        client = module.iot_client(limiter=limiter)
    progress = ProgressWriter.from_environment(len(devices), p["progress_every"])
    result = ensure_fleet(client, spec, workers=p["workers"], check_mode=module.check_mode, diff=module._diff,
                          progress=progress)
    result["rate_limits"] = rates
    result["registration"] = p["registration"]
    return finished(result)


def main():
    argument_spec = dict(
        devices=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                thing_name=dict(type="str", required=True),
                host=dict(type="str"),
                # raw: a device with bad attributes fails alone, named by its host (not the module)
                attributes=dict(type="raw"),
                reactivate=dict(type="bool", default=False),
                thing_groups=dict(type="list", elements="str"),
                installed_certificate=dict(type="str"),
                reached=dict(type="bool", default=True),
            ),
        ),
        ca_certificate=dict(type="path"),
        ca_certificate_content=dict(type="str"),
        ca_private_key=dict(type="path", no_log=False),
        ca_private_key_content=dict(type="str", no_log=True),
        ca_private_key_passphrase=dict(type="str", no_log=True),
        ca_kms_key=dict(type="str", no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        retire_certificates=dict(type="str", choices=["delete", "revoke"]),
        rotation=dict(type="str", choices=["stage", "promote", "switch_ca"]),
        next_ca_certificate=dict(type="path"),
        next_ca_private_key=dict(type="path", no_log=False),
        next_ca_private_key_content=dict(type="str", no_log=True),
        keep_ca_files=dict(type="bool", default=False),
        rotate_all=dict(type="bool", default=False),
        pki_dir=dict(type="path", required=True),
        key_mode=dict(type="str", choices=["controller", "device"], default="controller"),
        key_type=dict(type="str", choices=["ec", "rsa"], default="ec"),
        certificate_days=dict(type="int", default=3650),
        renew_before_days=dict(type="int", default=30),
        renewal=dict(type="str", choices=["replace", "rotate"], default="replace"),
        policy_name=dict(type="str"),
        thing_type=dict(type="str"),
        purge_attributes=dict(type="bool", default=False),
        exclusive=dict(type="bool", default=False),
        register_with_ca=dict(type="bool", default=True),
        registration=dict(type="str", choices=["api", "jitp"], default="api"),
        managed_thing_group=dict(type="str", default="iotfleet-managed"),
        workers=dict(type="int", default=8),
        progress_every=dict(type="int", default=500),
        rate_limits=dict(type="dict", default={}),
        rate_share=dict(type="float", default=1.0),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True,
                       required_if=[("state", "present", ("ca_private_key", "ca_kms_key"), True),
                                    ("state", "present", ("ca_certificate", "ca_certificate_content"), True)],
                       mutually_exclusive=[("ca_certificate", "ca_certificate_content"),
                                           ("ca_kms_key", "ca_private_key"), ("ca_kms_key", "ca_private_key_content")])
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    module.run(run, module)


if __name__ == "__main__":
    main()
