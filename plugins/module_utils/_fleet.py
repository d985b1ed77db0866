# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The batched fleet registration: every device's identity, thing and attachments in one run.

For each device it calls the same ensure-functions as the single-resource modules
(certificate, thing, policy attachment, thing principal), from a thread pool that shares one
IoTClient and therefore one rate limiter. A device's failure is recorded and the others go on.

Controller-side files per device, under ``<pki_dir>/devices/<thing name>/``:

* ``certificate.pem`` - the device certificate, signed by the fleet CA, CN = thing name (a thing
  name over 64 characters, registration ``api`` only: :func:`_x509.device_common_name`);
* ``private.key`` - key mode ``controller`` only: made here, 0600, never returned;
* ``device.csr`` - key mode ``device`` only: the CSR the device made (its key stays on it).

An existing certificate is kept while it is issued by the fleet CA, has the thing's CN, matches
the key (or the CSR) and is valid for more than ``renew_before_days``.

Registration ``api`` (default) registers each certificate, makes the thing and attaches the policy
with the AWS IoT API. Registration ``jitp`` only makes the keys and certificates above: each device
registers itself on its first connect, through the just-in-time provisioning template of the fleet
CA (the ``ca`` role); no AWS call at all, the certificate id is computed locally.
"""

import copy
import datetime
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_policy_attachment
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_thing_principal
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import MAX_NAMED
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import ca_base_name
from ansible_collections.iotfleet.aws.plugins.module_utils._ca_certificate import ca_certificate_info
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import ensure_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import check_transition
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import remove_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import revoke_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import validate_thing_name
from ansible_collections.iotfleet.aws.plugins.module_utils._files import makedirs_private
from ansible_collections.iotfleet.aws.plugins.module_utils._files import read_optional
from ansible_collections.iotfleet.aws.plugins.module_utils._files import write_file
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import validate_policy_name
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import check_thing_type
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import ensure_thing
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import ensure_thing_groups
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import normalize_attributes
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import validate_thing_groups
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import validate_thing_type
from ansible_collections.iotfleet.aws.plugins.module_utils._thing_group import ensure_thing_group

CERTIFICATE_FILE = "certificate.pem"
KEY_FILE = "private.key"
CSR_FILE = "device.csr"
KEY_MODES = ("controller", "device")
REGISTRATIONS = ("api", "jitp")
# what registration api does with a certificate due within renew_before_days that is still valid:
# replace it at once (the old one retired in the same run), or keep it and report it due, for the
# zero-downtime rotation (stage_device / promote_device) to replace once the device has the new one
RENEWALS = ("replace", "rotate")
# the static thing group every thing this collection creates joins: what drift and prune look at
MANAGED_THING_GROUP = "iotfleet-managed"
# RFC 5280's upper bound of a common name; JITP names the thing after the certificate's CN
MAX_COMMON_NAME = _x509.MAX_COMMON_NAME


class FleetSpec:
    """Validated, fleet-wide input (everything checked before any AWS call)."""

    def __init__(
        self,
        devices,
        ca_cert,
        ca_key,
        pki_dir,
        policy_name=None,
        key_mode="controller",
        key_type="ec",
        certificate_days=_x509.DEFAULT_DEVICE_DAYS,
        renew_before_days=30,
        thing_type=None,
        purge_attributes=False,
        exclusive=False,
        register_with_ca=True,
        registration="api",
        retire_certificates="delete",
        managed_thing_group=MANAGED_THING_GROUP,
        accepted_cas=(),
        renewal="replace",
        ca_key_path=None,
    ):
        if registration not in REGISTRATIONS:
            raise IoTFleetError(f"registration must be one of {', '.join(REGISTRATIONS)}, got {registration!r}.")
        if renewal not in RENEWALS:
            raise IoTFleetError(f"renewal must be one of {', '.join(RENEWALS)}, got {renewal!r}.")
        self.devices = devices
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.pki_dir = pki_dir
        self.policy_name = policy_name
        self.key_mode = key_mode
        self.key_type = key_type
        self.certificate_days = certificate_days
        self.renew_before = datetime.timedelta(days=renew_before_days)
        self.thing_type = thing_type
        self.purge_attributes = purge_attributes
        self.exclusive = exclusive
        self.register_with_ca = register_with_ca
        self.registration = registration
        # registration jitp: a deleted certificate of the auto-registering CA would register itself again on the
        # device's next connect, so retired certificates are always REVOKED (effective_retire_mode warns)
        self.retire_certificates = "revoke" if registration == "jitp" else retire_certificates
        self.managed_thing_group = managed_thing_group or None
        # CA rotation in progress: the next CA, whose certificates are kept too (the Pi was rotated)
        self.accepted_cas = list(accepted_cas or ())
        self.renewal = renewal
        # where the fleet CA key is expected (error messages of a controller that cannot sign)
        self.ca_key_path = ca_key_path


def validate_devices(devices, registration="api"):
    """Normalise the device list. A device whose own inputs are bad is kept with an ``error``
    (it fails alone, named by its host, before anything is written for it); what concerns the
    whole fleet raises IoTFleetError before any write: not a list, an entry without thing_name,
    two hosts mapping to one thing name (both named).

    Each device: ``thing_name`` (required), ``attributes`` (dict), ``host`` (the inventory
    name, for reports; defaults to the thing name), ``reactivate`` (bool: an INACTIVE
    certificate, an operator's quarantine, is set ACTIVE again only when true), ``thing_groups``
    (list of static thing group names the thing joins; it is never taken out of other groups),
    ``installed_certificate`` (PEM: what the device holds, its key proven there; see
    :func:`ensure_device_identity`), ``reached`` (False: the run did not reach the device, see
    :func:`installed_certificate`).

    Thing names may have 1-128 characters; with ``registration`` ``jitp`` at most 64, because AWS
    IoT names the thing after the certificate's CN (a longer name fails its device).
    """
    if not isinstance(devices, list):
        raise IoTFleetError("devices must be a list of dicts with at least thing_name.")
    problems = []
    seen = {}
    result = []
    for index, device in enumerate(devices):
        if not isinstance(device, dict) or "thing_name" not in device:
            problems.append(f"devices[{index}] has no thing_name")
            continue
        host = device.get("host") or device["thing_name"]
        entry = dict(host=host, thing_name=device["thing_name"], attributes=None,
                     reactivate=bool(device.get("reactivate")), thing_groups=[])
        if device.get("installed_certificate"):
            entry["installed_certificate"] = device["installed_certificate"]
        if device.get("reached") is False:
            entry["reached"] = False
        try:
            validate_thing_name(device["thing_name"], what=f"thing name of {host}")
            if registration == "jitp" and len(device["thing_name"]) > MAX_COMMON_NAME:
                raise IoTFleetError(_jitp_name_too_long(host, device["thing_name"]))
            entry["attributes"] = normalize_attributes(device.get("attributes"))
            groups = device.get("thing_groups")
            if groups is not None and not isinstance(groups, list):
                raise IoTFleetError(f"thing_groups must be a list of thing group names, got {type(groups).__name__}.")
            entry["thing_groups"] = validate_thing_groups(groups) or []
        except IoTFleetError as e:
            entry["error"] = e.message if host in e.message else f"{host}: {e.message}"
        if device["thing_name"] in seen:
            problems.append(
                f"hosts {seen[device['thing_name']]} and {host} both map to the thing name {device['thing_name']!r}"
            )
            continue
        seen[device["thing_name"]] = host
        result.append(entry)
    if problems:
        raise IoTFleetError("Invalid devices: " + "; ".join(problems) + ".", problems=problems)
    return result


def _jitp_name_too_long(host, thing_name):
    return (f"{host}: the thing name {thing_name!r} has {len(thing_name)} characters: in registration jitp AWS IoT "
            f"names the thing after the certificate's CN, which holds at most {MAX_COMMON_NAME} (RFC 5280); set a "
            "shorter iotfleet_thing_name, or use registration api (which allows 128).")


def load_fleet_ca(ca_certificate_path, ca_private_key_path, optional_key=False, pem=None, passphrase=None,
                  key_content=None, signing_key=None):
    """The fleet CA certificate and key, checked: a CA, the key matches, within validity.

    ``optional_key``: a key file that does not exist gives ``(cert, None)``: a controller that
    cannot sign (the CA key lives elsewhere) still converges every device that needs no new
    certificate (:func:`ensure_device_identity` fails the others by name). ``pem``: the certificate's
    text instead of its path. ``passphrase``: of an encrypted key. ``key_content``: the key file's content
    when the module cannot read it as is (an Ansible Vault file the action plugin decrypted); the path then
    names it. ``signing_key``: the CA key in a key service (``_x509.DelegatedSigningKey``, e.g. ``_kms.signing_key``)
    instead of a key file; checked against the certificate the same way."""
    ca_cert = _x509.load_certificate(pem, path=None if pem else ca_certificate_path, what="fleet CA certificate")
    ca_certificate_path = ca_certificate_path or "(ca_certificate_content)"
    if not _x509.is_ca(ca_cert):
        raise IoTFleetError(f"The fleet CA certificate {ca_certificate_path} is not a CA (basicConstraints CA:FALSE).")
    if signing_key is None and optional_key and key_content is None and not os.path.exists(ca_private_key_path):
        _x509.check_validity(ca_cert, what="fleet CA certificate")
        return ca_cert, None
    if signing_key is not None:
        ca_key, key_name = signing_key, signing_key.where
    else:
        ca_key = _x509.load_private_key(key_content, path=ca_private_key_path, what="fleet CA private key",
                                        passphrase=passphrase)
        key_name = ca_private_key_path
    if not _x509.key_matches_certificate(ca_key, ca_cert):
        raise IoTFleetError(
            f"The fleet CA private key {key_name} does not match the certificate {ca_certificate_path}."
        )
    _x509.check_validity(ca_cert, what="fleet CA certificate")
    return ca_cert, ca_key


def device_dir(pki_dir, thing_name):
    return os.path.join(pki_dir, "devices", thing_name)


def held_certificate_id(pki_dir, thing_name):
    """The id of the certificate the controller holds for the thing, or None (no file, or a
    damaged one: it names no certificate, and provision replaces it)."""
    pem = read_optional(os.path.join(device_dir(pki_dir, thing_name), CERTIFICATE_FILE))
    if pem is None:
        return None
    try:
        return _x509.certificate_id(_x509.load_certificate(pem, what="device certificate"))
    except IoTFleetError:
        return None


def issuing_ca(spec, cert):
    """The fleet CA that issued ``cert``: ``spec.ca_cert``, or one of ``spec.accepted_cas`` (the next CA of a
    CA rotation in progress); None when neither did."""
    for ca in [spec.ca_cert] + spec.accepted_cas:
        if _x509.is_issued_by(cert, ca):
            return ca
    return None


def _usable_certificate(cert_pem, spec, thing_name, public_key):
    """The existing certificate, if it can stay; else None."""
    if cert_pem is None:
        return None
    try:
        cert = _x509.load_certificate(cert_pem, what="device certificate")
    except IoTFleetError:
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    if (
        _x509.common_name(cert) != _x509.device_common_name(thing_name)
        or issuing_ca(spec, cert) is None
        or _x509.not_valid_after(cert) - spec.renew_before <= now
        or not _x509.same_public_key(cert.public_key(), public_key)
    ):
        return None
    return cert


def installed_certificate(device, spec=None):
    """The certificate the device reported installed, its key proven on the device (the preparation
    compares them there; the key never travels), or None.

    A device the run did not reach (``reached`` False: registered offline, or a run without the preparation)
    showed nothing. In key mode controller, when this controller holds no key of it (it forgot the key once the
    device verified with it), the cached certificate stands for the installed one: nothing says the device lost
    its key, so its identity stays (a device that did lose it gets a new one on a run that reaches it)."""
    pem = device.get("installed_certificate")
    if not pem and device.get("reached") is False and spec is not None and spec.key_mode == "controller":
        directory = device_dir(spec.pki_dir, device["thing_name"])
        if not os.path.exists(os.path.join(directory, KEY_FILE)):
            pem = read_optional(os.path.join(directory, CERTIFICATE_FILE))
    if not pem:
        return None
    try:
        return _x509.load_certificate(pem, what=f"certificate installed on {device.get('host')}")
    except IoTFleetError:
        return None


def _cannot_sign(spec, thing_name, why):
    return IoTFleetError(
        f"{thing_name} needs a new certificate ({why}), but the fleet CA's private key is not on this controller "
        f"(expected at {spec.ca_key_path or 'ca_private_key'}): run from a controller that holds it, or put it "
        "there. Nothing was written for this device."
    )


def ensure_device_identity(spec, thing_name, check_mode=False, installed=None, confirm=None):
    """The device's key (controller mode) and certificate on the controller.

    ``pki/`` is a cache: when it holds no usable certificate for the device, the certificate
    installed on the device (``installed``, its key proven there) is taken when it is usable (the
    fleet CA's, the thing's CN, valid, the same public key) and ``confirm(cert)`` says it is the
    device's registered identity; it is written to the cache, and nothing is reported changed.
    In key mode controller a device whose key stays on it (this controller never held it) keeps it:
    no key file is made. Only a device with no usable identity gets a new certificate, which needs
    the fleet CA key (``spec.ca_key``; without it the device fails by name, nothing written).

    Returns ``(cert or None, changed, what)``; ``cert`` is None only in check mode when a
    certificate would be issued.
    """
    directory = device_dir(spec.pki_dir, thing_name)
    cert_path = os.path.join(directory, CERTIFICATE_FILE)
    changes = []
    cached_pem = read_optional(cert_path)
    if installed is not None and not os.path.exists(
            os.path.join(directory, KEY_FILE if spec.key_mode == "controller" else CSR_FILE)):
        # the key is on the device only (the device proved the certificate is its key's; in key mode device its
        # CSR is not here, check mode): its certificate stays when it is the device's registered identity
        cert = _usable_certificate(_x509.certificate_pem(installed), spec, thing_name, installed.public_key())
        if cert is not None and (confirm is None or confirm(cert)):
            _cache_certificate(cert, cached_pem, cert_path, check_mode)
            return cert, False, changes
    if spec.key_mode == "device":
        csr_pem = read_optional(os.path.join(directory, CSR_FILE))
        if csr_pem is None:
            raise IoTFleetError(
                f"No CSR for {thing_name} at {os.path.join(directory, CSR_FILE)}: in key mode 'device' the "
                "device makes its key and CSR first (was the device reachable?)."
            )
        csr = _x509.load_csr(csr_pem)
        public_key = csr.public_key()
        key = None
    else:
        key_path = os.path.join(directory, KEY_FILE)
        key_pem = read_optional(key_path)
        key = _x509.load_private_key(key_pem, what=f"private key of {thing_name}") if key_pem else None
        if key is None:
            if spec.ca_key is None:
                raise _cannot_sign(spec, thing_name, "no key of it on this controller, none proven on the device")
            changes.append("key")
            if check_mode:
                return None, True, changes + ["certificate"]
            key = _x509.generate_private_key(spec.key_type)
            write_file(key_path, _x509.private_key_pem(key).encode("ascii"), 0o600)
        elif os.stat(key_path).st_mode & 0o077:
            changes.append("key mode")
            if not check_mode:
                os.chmod(key_path, 0o600)
        public_key = key.public_key()
    cert = _usable_certificate(cached_pem, spec, thing_name, public_key)
    if cert is None and installed is not None and "key" not in changes:
        cert = _usable_certificate(_x509.certificate_pem(installed), spec, thing_name, public_key)
        if cert is not None and confirm is not None and not confirm(cert):
            cert = None
        if cert is not None:
            _cache_certificate(cert, cached_pem, cert_path, check_mode)
    if cert is None:
        changes.append("certificate")
        if check_mode:
            return None, True, changes
        if spec.ca_key is None:
            raise _cannot_sign(spec, thing_name, "it has no usable certificate of the fleet CA")
        if spec.key_mode == "device":
            cert = _x509.sign_csr(spec.ca_cert, spec.ca_key, csr, cn=_x509.device_common_name(thing_name),
                                  days=spec.certificate_days)
        else:
            cert = _x509.issue_certificate(
                spec.ca_cert, spec.ca_key, _x509.device_common_name(thing_name), public_key, days=spec.certificate_days
            )
        write_file(cert_path, _x509.certificate_pem(cert).encode(), 0o644)
    return cert, bool(changes), changes


def _cache_certificate(cert, cached_pem, cert_path, check_mode):
    """Write the device's adopted certificate (public) to the controller's cache, unless it is there."""
    pem = _x509.certificate_pem(cert)
    if not check_mode and cached_pem != pem:
        write_file(cert_path, pem.encode(), 0o644)


def key_on_controller(spec, thing_name):
    """Whether this controller holds the device's key (key mode controller; else it stays on the device)."""
    return spec.key_mode == "controller" and os.path.exists(os.path.join(device_dir(spec.pki_dir, thing_name), KEY_FILE))


def ensure_device_jitp(spec, device, check_mode=False):
    """Registration ``jitp``: the device's key and certificate on the controller, and nothing else.

    The device registers itself on its first connect (the fleet CA's JITP template makes the thing,
    registers the certificate ACTIVE and attaches the policy), so no AWS call is made: the
    certificate id is computed locally (SHA-256 of the DER, as AWS IoT computes it); the ARNs are
    not known (null). Same result fields as :func:`ensure_device`.
    """
    thing_name = device["thing_name"]
    if len(thing_name) > MAX_COMMON_NAME:
        raise IoTFleetError(_jitp_name_too_long(device["host"], thing_name))
    # no AWS call: the device's installed certificate of the fleet CA stays (its first connect registered it)
    cert, changed, changes = ensure_device_identity(spec, thing_name, check_mode=check_mode,
                                                    installed=installed_certificate(device, spec))
    result = dict(
        host=device["host"],
        thing_name=thing_name,
        changed=changed,
        changes=list(changes),
        failed=False,
        key_on_controller=key_on_controller(spec, thing_name),
        certificate_path=os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE),
        certificate_id=_x509.certificate_id(cert) if cert is not None else None,
        certificate_arn=None,
        thing_arn=None,
    )
    _uncached_certificate(result, cert, check_mode)
    return result


BULK_READ_MIN_DEVICES = 50
# ListThings pages (250 things each) a snapshot reads per device at most: reading on would cost more reads
# than the DescribeThing per device it saves (at worst a rerun then makes 1.5 reads per device)
THING_PAGES_PER_DEVICE = 0.5


class RegistrySnapshot:
    """The registry read in pages once for a whole fleet (``ensure_fleet`` with many devices):
    things (ListThings), the fleet CA's certificates (ListCertificatesByCA) and the policy's
    targets (ListTargetsForPolicy). A rerun then costs one read per device (the certificate's
    things) instead of four; two in an account whose things outnumber the fleet's more than 125
    to 1 (:data:`THING_PAGES_PER_DEVICE`). Taken at the start of the run; writes go to AWS as always.
    """

    def __init__(self, client, spec):
        # the largest pages AWS serves (250) for all three listings. ListThings lists the whole account: when it
        # takes more than THING_PAGES_PER_DEVICE pages per device (an account holding far more things than the
        # fleet), the listing is dropped and each thing described (the pages would cost more than they save)
        budget = max(1, math.ceil(len(spec.devices) * THING_PAGES_PER_DEVICE))
        things = client.paginate("list_things", "things", maxResults=250, max_pages=budget)
        self.things = {t["thingName"]: t for t in things or []}
        self.ca_id = _x509.certificate_id(spec.ca_cert) if spec.register_with_ca else None
        self.certificates = {}
        if self.ca_id:
            for c in client.paginate("list_certificates_by_ca", "certificates", caCertificateId=self.ca_id,
                                     pageSize=250):
                self.certificates[c["certificateId"]] = c
        self.policy = spec.policy_name
        self.targets = set(client.paginate("list_targets_for_policy", "targets", policyName=self.policy,
                                           pageSize=250)) if self.policy else set()
        # the members of the groups devices declare (ListThingsInThingGroup pages), so no device
        # lists its own groups; None when no device declares any
        declared = sorted({g for d in spec.devices for g in d.get("thing_groups") or []})
        self.members = {g: set(client.paginate("list_things_in_thing_group", "things", thingGroupName=g,
                                               maxResults=250)) for g in declared} if declared else None

    def thing(self, name):
        """A describe_thing answer from the listing (no thingId), or None when the thing does not exist."""
        item = self.things.get(name)
        if item is None:
            return None
        return dict(thingName=name, thingArn=item.get("thingArn"), thingTypeName=item.get("thingTypeName"),
                    attributes=item.get("attributes") or {}, version=item.get("version"))


class SnapshotClient:
    """The fleet's client answering, from a :class:`RegistrySnapshot`, the reads the snapshot holds:
    ``describe_certificate`` of the fleet CA's certificates and ``list_attached_policies`` as far
    as the fleet's policy goes. Everything else (all writes) goes to the real client."""

    def __init__(self, client, snapshot):
        self._client = client
        self._snapshot = snapshot

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get(self, operation, **kwargs):
        if operation == "describe_certificate":
            item = self._snapshot.certificates.get(kwargs.get("certificateId"))
            if item is not None:
                return {"certificateDescription": dict(
                    certificateArn=item["certificateArn"], certificateId=item["certificateId"],
                    status=item.get("status"), caCertificateId=self._snapshot.ca_id)}
        return self._client.get(operation, **kwargs)

    def paginate(self, operation, result_key, **kwargs):
        if operation == "list_attached_policies" and self._snapshot.policy:
            attached = kwargs.get("target") in self._snapshot.targets
            return [{"policyName": self._snapshot.policy}] if attached else []
        return self._client.paginate(operation, result_key, **kwargs)


def ensure_device(client, spec, device, check_mode=False, snapshot=None, groups=None):
    """Everything for one device; returns its result dict (no secrets).

    Calls per device: a new device (key and certificate made now) DescribeThing and 4 writes
    (+1 AddThingToThingGroup per group it joins: the managed group, its ``thing_groups``);
    an unchanged device 4 reads (DescribeCertificate, DescribeThing, ListAttachedPolicies of
    its certificate, ListPrincipalThings of its certificate) and no write - or, with a
    ``snapshot`` of the registry (large fleets), only ListPrincipalThings. A device with
    ``thing_groups`` reads its groups once more (ListThingGroupsForThing) unless a snapshot holds them.
    ``groups``: the :func:`ensure_fleet_groups` answer (groups made once per run); the thing type
    is checked once per run too (:func:`fleet_thing_type_checked`), not here.

    ``result["diff"]``: before/after of the device (certificate id and status, thing attributes and
    type, thing groups, policy and thing attachments, certificates retired); :func:`ensure_fleet`
    takes it out of the result.

    Renewal: with ``spec.renewal`` ``replace`` a certificate due within ``renew_before`` is replaced
    here and the old one retired at once; with ``rotate`` it stays live and the result says
    ``renewal_due`` (and ``expires``), for :func:`stage_device` / :func:`promote_device` to replace it
    once the device has proven the new one. A dead certificate (expired, REVOKED, not the CA's or
    the key's) is replaced here either way.
    """
    if spec.registration == "jitp":
        return ensure_device_jitp(spec, device, check_mode=check_mode)
    thing_name = device["thing_name"]
    join = list(device.get("thing_groups") or [])
    refused = [(groups or {}).get("problems", {}).get(g) for g in join]
    if any(refused):
        raise IoTFleetError(f"{device['host']}: " + "; ".join(r for r in refused if r))
    result = dict(host=device["host"], thing_name=thing_name, changed=False, changes=[], failed=False)
    before, after = {}, {}
    result["diff"] = dict(before=before, after=after)
    if snapshot is not None:
        client = SnapshotClient(client, snapshot)
    # renewal rotate: a due certificate that is still valid stays (renewal_due); only a dead one
    # (expired, not the fleet CA's, not the key's) is replaced here
    identity_spec = spec
    if spec.renewal == "rotate":
        identity_spec = copy.copy(spec)
        identity_spec.renew_before = datetime.timedelta(0)
    # the certificate installed on the device is its identity when AWS holds it registered (ACTIVE, a quarantine
    # or a revocation alike: ensure_certificate below reads its status); one read, only when pki/ lacks it
    cert, changed, changes = ensure_device_identity(
        identity_spec, thing_name, check_mode=check_mode, installed=installed_certificate(device, spec),
        confirm=lambda c: client.get("describe_certificate", certificateId=_x509.certificate_id(c)) is not None)
    result["changes"].extend(changes)
    result["certificate_path"] = os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE)

    cert_arn = None
    unregistered = False   # the certificate was not registered before this run: nothing attached to it
    if cert is not None:
        fresh = "certificate" in changes   # issued now (by spec.ca_cert): its id is new, AWS cannot know it
        ca_cert = None
        if spec.register_with_ca:
            ca_cert = spec.ca_cert if fresh else (issuing_ca(spec, cert) or spec.ca_cert)
        # An existing certificate is read first with its status left alone: INACTIVE is an
        # operator's quarantine and stays so unless the device says reactivate.
        outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE" if fresh else None,
                                     check_mode=check_mode, known_new=fresh)
        before["certificate"] = _certificate_diff(outcome.before)
        status = outcome.values.get("status")
        if status == "INACTIVE" and not fresh and not device.get("reactivate"):
            result["quarantined"] = True
            result["msg"] = (f"{device['host']}: the certificate {outcome.values['certificate_id']} is INACTIVE "
                             "(quarantined by an operator): left so; iotfleet_reactivate=true brings it back")
        elif status not in ("ACTIVE", "REVOKED"):
            outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE", check_mode=check_mode)
        elif status == "REVOKED":
            # recovery: a revoked identity is replaced (new key in controller mode), never reused
            if spec.key_mode == "device":
                check_transition(outcome.values["certificate_id"], status, "ACTIVE")   # raises, with the reason
            if check_mode:
                result["changes"] += ["key", "certificate", "certificate registration", "thing principal"]
                result["certificate_id"] = None
                result["certificate_arn"] = None
                result["superseded_certificates"] = [outcome.values["certificate_id"]]
                result["changed"] = True
                after["certificate"] = dict(certificate_id=None, status="ACTIVE")
                after["retired_certificates"] = list(result["superseded_certificates"])
                return result
            revoked = outcome.values["certificate_id"]
            _retire_certificate(client, spec, revoked, check_mode=False)   # dead already: no detach may wait
            result["superseded_certificates"] = [revoked]
            _archive_identity(spec, thing_name)
            cert, _changed, changes = ensure_device_identity(spec, thing_name)
            result["changes"] += ["replaced revoked certificate"] + changes
            ca_cert = spec.ca_cert if spec.register_with_ca else None
            outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE", known_new=True)
            fresh = True
        unregistered = not outcome.before
        after["certificate"] = _certificate_diff(outcome.after)
        result["certificate_id"] = outcome.values["certificate_id"]
        cert_arn = outcome.values.get("certificate_arn")
        if outcome.changed:
            result["changes"].append("certificate registration")
    else:
        result["certificate_id"] = None
        result["changes"].append("certificate registration")
        before["certificate"], after["certificate"] = None, dict(certificate_id=None, status="ACTIVE")
    result["certificate_arn"] = cert_arn

    outcome = ensure_thing(
        client,
        thing_name,
        attributes=device.get("attributes"),
        purge_attributes=spec.purge_attributes,
        thing_type=spec.thing_type,
        check_mode=check_mode,
        current=snapshot.thing(thing_name) if snapshot is not None else None,
        verify_thing_type=False,   # checked once for the fleet: fleet_thing_type_checked
    )
    result["thing_arn"] = outcome.values.get("thing_arn")
    thing_created = outcome.changed and not outcome.before
    before["thing"], after["thing"] = _thing_diff(outcome.before), _thing_diff(outcome.after)
    if outcome.changed:
        result["changes"].append("thing")

    if thing_created and spec.managed_thing_group and spec.managed_thing_group not in join:
        join.append(spec.managed_thing_group)   # marked as this collection's when created (drift, prune)
    if join:
        current = [] if thing_created else None
        if current is None and snapshot is not None and snapshot.members is not None:
            current = [g for g in join if thing_name in snapshot.members.get(g, ())]
        groups_changed, groups_before, groups_after = ensure_thing_groups(
            client, thing_name, join, check_mode=check_mode, exists=not thing_created, current=current,
            groups_checked=True)
        result["thing_groups"] = groups_after
        before["thing_groups"], after["thing_groups"] = groups_before, groups_after
        if groups_changed:
            result["changes"].append("thing groups")

    if cert_arn is None:
        # check mode with a certificate still to be issued or registered: both links are new
        if spec.policy_name:
            result["changes"].append("policy attachment")
            before["policy_attached"], after["policy_attached"] = False, True
        result["changes"].append("thing principal")
        before["thing_principal_attached"], after["thing_principal_attached"] = False, True
    else:
        if spec.policy_name:
            outcome = ensure_policy_attachment(client, spec.policy_name, cert_arn, check_mode=check_mode,
                                               known_new=unregistered)
            before["policy_attached"], after["policy_attached"] = outcome.before["attached"], outcome.after["attached"]
            if outcome.changed:
                result["changes"].append("policy attachment")
        outcome = ensure_thing_principal(client, thing_name, cert_arn, exclusive=spec.exclusive, check_mode=check_mode,
                                         known_new=unregistered)
        before["thing_principal_attached"] = outcome.before["attached"]
        after["thing_principal_attached"] = outcome.after["attached"]
        if outcome.changed:
            result["changes"].append("thing principal")
        if cert is not None and fresh and not thing_created:
            # one live identity per device: a certificate this run replaced is retired now
            superseded = _retire_others(client, spec, thing_name, cert_arn, check_mode)
            # a rotation staged for the identity replaced now is superseded with it: its certificate retired (one
            # of the thing's others, unless its stage stopped before attaching it) and its files archived below,
            # key destroyed, so no later rotation revives it
            staged_id = held_certificate_id(staged_spec(spec).pki_dir, thing_name)
            if staged_id and staged_id not in superseded and _retire_certificate(client, spec, staged_id, check_mode):
                superseded.append(staged_id)
            if superseded:
                result["superseded_certificates"] = result.get("superseded_certificates", []) + superseded
                result["changes"].append("retired superseded certificates")
            if _archive_identity(spec, thing_name, staged=True):
                result["changes"].append("archived the staged identity")
    if result.get("superseded_certificates"):
        after["retired_certificates"] = list(result["superseded_certificates"])
    if identity_spec is not spec and cert is not None and not fresh and not result.get("quarantined"):
        expires = _x509.not_valid_after(cert)
        if expires - spec.renew_before <= datetime.datetime.now(datetime.timezone.utc):
            # left on its live certificate: the rotation stages the next one, proves it, then retires this
            result.update(renewal_due=True, expires=expires.isoformat())
    result["changed"] = bool(result["changes"]) or changed
    result["key_on_controller"] = key_on_controller(spec, thing_name)
    _uncached_certificate(result, cert, check_mode)
    return result


def _uncached_certificate(result, cert, check_mode):
    """Check mode: a certificate taken from the device (or AWS) that the cache does not hold yet is returned
    as ``certificate_pem`` (public), so the device side compares it without a file being written."""
    if check_mode and cert is not None and not os.path.exists(result["certificate_path"]):
        result["certificate_pem"] = _x509.certificate_pem(cert)


def _certificate_diff(facts):
    """A certificate's id and status for a diff (public facts only), or None when it did not exist."""
    if not facts:
        return None
    return dict(certificate_id=facts.get("certificate_id"), status=facts.get("status"))


def _thing_diff(facts):
    if not facts:
        return None
    return dict(attributes=facts.get("attributes") or {}, thing_type=facts.get("thing_type"))


def fleet_thing_type_checked(client, spec):
    """The fleet's thing type checked once per run (one DescribeThingType, not one per new thing:
    :func:`ensure_device` does not check it again). A name AWS IoT refuses raises (fleet input);
    a type that does not exist or is deprecated fails every device, named by its host, before
    anything is written for it: the spec returned carries the reason as those devices' input error.
    """
    if not spec.thing_type:
        return spec
    validate_thing_type(spec.thing_type)
    try:
        check_thing_type(client, spec.thing_type)
    except IoTFleetError as e:
        refused = [d["host"] for d in spec.devices if not d.get("error")]
        reason = (f"{e.message} No device of this run is provisioned with it "
                  f"({len(refused)}: {', '.join(refused[:10])}{' and more' if len(refused) > 10 else ''}).")
        checked = copy.copy(spec)
        checked.devices = [d if d.get("error") else dict(d, error=f"{d['host']}: {reason}") for d in spec.devices]
        return checked
    return spec


def ensure_fleet_groups(client, spec, check_mode=False):
    """The thing groups the fleet's things join, made sure of once per run (not per device): the
    managed group and every device's ``thing_groups``; a missing one is created as a static group
    (predicted in check mode). One DescribeThingGroup per group.

    Returns ``{"created": [names], "problems": {name: why}}``: a group that cannot take things (a
    dynamic group, whose members AWS IoT picks by its query) or could not be made fails the devices
    that name it, not the fleet.
    """
    names = [spec.managed_thing_group] if spec.managed_thing_group else []
    for device in spec.devices:
        if not device.get("error"):
            names += [g for g in device.get("thing_groups") or [] if g not in names]
    created, problems = [], {}
    for name in names:
        try:
            outcome = ensure_thing_group(client, name, check_mode=check_mode)
        except (IoTFleetError, IoTAWSError) as e:
            problems[name] = f"thing group {name!r}: {e}"
            continue
        if outcome.values.get("dynamic"):
            problems[name] = (f"thing group {name!r} is a dynamic group: AWS IoT picks its members by its query and "
                              "adds no thing on request; list static groups in thing_groups")
        elif outcome.changed:
            created.append(name)
    return dict(created=created, problems=problems)


def _retire_others(client, spec, thing_name, keep_arn, check_mode):
    """Retire (INACTIVE, detach, delete or REVOKE) every other certificate attached to the thing."""
    retired = []
    for arn in client.paginate("list_thing_principals", "principals", thingName=thing_name):
        if arn == keep_arn or ":cert/" not in arn:
            continue
        cert_id = arn.rsplit("/", 1)[-1]
        if _retire_certificate(client, spec, cert_id, check_mode):
            retired.append(cert_id)
    return retired


def _retire_certificate(client, spec, certificate_id, check_mode):
    """INACTIVE, detached from policies and things, then deleted or REVOKED (spec.retire_certificates)."""
    if spec.retire_certificates == "delete":
        return remove_certificate(client, certificate_id=certificate_id, force=True, check_mode=check_mode).changed
    return revoke_certificate(client, certificate_id, check_mode=check_mode)


def _archive_identity(spec, thing_name, staged=False):
    """Move a replaced identity's controller files aside (``pki/retired/``), the key destroyed;
    ``staged``: the identity staged for a rotation (``pki/staged/devices/<thing>``)."""
    directory = device_dir(staged_spec(spec).pki_dir if staged else spec.pki_dir, thing_name)
    if not os.path.isdir(directory):
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    archive = os.path.join(spec.pki_dir, "retired", f"{thing_name}{'-staged' if staged else ''}-{stamp}")
    key_path = os.path.join(directory, KEY_FILE)
    if os.path.exists(key_path):
        os.remove(key_path)
    makedirs_private(os.path.dirname(archive))
    os.rename(directory, archive)
    return archive


RETIRE_MODES = ("delete", "revoke")


def retire_device(client, spec, device, check_mode=False):
    """Decommission one device: every certificate attached to its thing (and the one on the
    controller, so a rerun finishes a half-done retirement) INACTIVE, detached from policies and
    things, then deleted (waiting for the asynchronous detach) or REVOKED (``spec.retire_certificates``);
    the thing deleted; the
    controller's files moved to ``pki/retired/<thing>-<UTC time>/`` with the private key destroyed
    (the certificate and CSR kept for audit). Idempotent: a retired device changes nothing.
    """
    thing_name = device["thing_name"]
    result = dict(host=device["host"], thing_name=thing_name, changed=False, failed=False,
                  retired_certificates=[], thing_deleted=False, archived_to=None)
    directory = device_dir(spec.pki_dir, thing_name)
    ids = {arn.rsplit("/", 1)[-1] for arn in client.paginate("list_thing_principals", "principals", thingName=thing_name)}
    ids.add(held_certificate_id(spec.pki_dir, thing_name))   # a damaged file names none: the principals still do
    ids.add(held_certificate_id(staged_spec(spec).pki_dir, thing_name))   # a rotation's staged one, attached or not
    ids.discard(None)
    for cert_id in sorted(ids):
        if _retire_certificate(client, spec, cert_id, check_mode):
            result["retired_certificates"].append(cert_id)
    if client.get("describe_thing", thingName=thing_name) is not None:
        result["thing_deleted"] = True
        if not check_mode:
            _retry_delete_thing(client, thing_name)
    if os.path.isdir(directory):
        # never left usable: the key goes, the certificate stays for audit
        result["archived_to"] = "(check mode)" if check_mode else _archive_identity(spec, thing_name)
    if os.path.isdir(device_dir(staged_spec(spec).pki_dir, thing_name)):
        # a rotation staged but not promoted: its key goes too
        result["staged_archived_to"] = ("(check mode)" if check_mode
                                        else _archive_identity(spec, thing_name, staged=True))
    result["changed"] = bool(result["retired_certificates"] or result["thing_deleted"] or result["archived_to"]
                             or result.get("staged_archived_to"))
    return result


def _retry_delete_thing(client, thing_name, timeout=60.0):
    """DeleteThing right after DetachThingPrincipal can be refused while the detach propagates."""
    deadline, pause = time.monotonic() + timeout, 0.5
    while True:
        try:
            client.delete("delete_thing", thingName=thing_name)
            return
        except IoTAWSError as e:
            if error_code(e) not in ("InvalidRequestException", "DeleteConflictException") or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def retire_fleet(client, spec, certificates="delete", workers=8, check_mode=False):
    """:func:`retire_device` for every device, in a thread pool; a failure stays with its device."""
    if certificates not in RETIRE_MODES:
        raise IoTFleetError(f"certificates must be one of {', '.join(RETIRE_MODES)}, got {certificates!r}.")
    spec.retire_certificates = certificates
    return _per_device(spec, workers, lambda d: retire_device(client, spec, d, check_mode))


def effective_retire_mode(registration, requested):
    """The retire mode a run uses, and a warning or None: in registration ``jitp`` a certificate is
    always REVOKED, never deleted - a deleted certificate of a CA with auto-registration registers itself
    again on the device's next connect (a stolen Pi comes back). ``requested`` None: the default
    (``delete``; ``revoke`` in jitp) with no warning."""
    if requested is not None and requested not in RETIRE_MODES:
        raise IoTFleetError(f"retire_certificates must be one of {', '.join(RETIRE_MODES)}, got {requested!r}.")
    if registration != "jitp":
        return requested or "delete", None
    warning = None
    if requested == "delete":
        warning = ("registration jitp: retired certificates are REVOKED, not deleted (retire_certificates=delete "
                   "ignored): a deleted certificate of a CA with auto-registration registers itself again on the "
                   "device's next connect.")
    return "revoke", warning


def fleet_ca_base_name(ca_cert):
    """The fleet's CA name: the fleet CA's CN without the creation time a CA rotation appends."""
    return ca_base_name(_x509.common_name(ca_cert))


def owned_fleet_cas(ca_certificate_path, ca_cert):
    """The CA ids a run owns: the fleet CA and the next CA of a CA rotation in progress (``next/`` beside
    the fleet CA, the same file name; its key is not read)."""
    owned = [_x509.certificate_id(ca_cert)]
    if ca_certificate_path:
        next_path = os.path.join(os.path.dirname(ca_certificate_path), NEXT_CA_DIR,
                                 os.path.basename(ca_certificate_path))
        pem = read_optional(next_path)
        if pem is not None:
            try:
                owned.append(_x509.certificate_id(_x509.load_certificate(pem, what="next fleet CA certificate")))
            except IoTFleetError:
                pass
    return owned


def _device_identities(spec, device):
    """The certificate ids a device of the run may keep attached: its identity (the fleet result's
    ``certificate_id``, else the certificate the controller holds) and the identity a rotation staged for
    it (``pki/staged``). None when its identity is not known (check mode before issuing, no file): then
    nothing of it is drift."""
    if "certificate_id" in device:
        identity = device["certificate_id"]
    else:
        identity = held_certificate_id(spec.pki_dir, device["thing_name"])
    if identity is None:
        return None
    return {identity, held_certificate_id(staged_spec(spec).pki_dir, device["thing_name"])} - {None}


def _extra_certificates(client, spec, device):
    """The ACTIVE certificates attached to the device's thing that are not its identity (nor its staged
    one): one ListThingPrincipals, one DescribeCertificate per other principal."""
    keep = _device_identities(spec, device)
    result = dict(host=device["host"], thing_name=device["thing_name"], changed=False, failed=False,
                  extra=[], unknown=keep is None)
    if keep is None:
        return result
    for arn in client.paginate("list_thing_principals", "principals", thingName=device["thing_name"]):
        if ":cert/" not in arn or arn.rsplit("/", 1)[-1] in keep:
            continue
        described = client.get("describe_certificate", certificateId=arn.rsplit("/", 1)[-1])
        description = (described or {}).get("certificateDescription") or {}
        if description.get("status") == "ACTIVE":
            result["extra"].append(dict(host=device["host"], thing_name=device["thing_name"],
                                        certificate_id=description["certificateId"],
                                        ca_certificate_id=description.get("caCertificateId")))
    return result


def _foreign_cas(client, spec, owned):
    """The fleet-CA-like CAs of the account this run does not own (:func:`_ca_certificate.is_fleet_ca_name`,
    the rule the ca role finds the fleet CA by). One ListCACertificates per page, a DescribeCACertificate per
    CA, a ListCertificatesByCA per fleet-like one not owned."""
    found = []
    for ca in ca_certificate_info(client, common_name=fleet_ca_base_name(spec.ca_cert))["ca_certificates"]:
        if ca["certificate_id"] in owned:
            continue
        active = sorted(c["certificateId"] for c in client.paginate(
            "list_certificates_by_ca", "certificates", caCertificateId=ca["certificate_id"], pageSize=250)
            if c.get("status") == "ACTIVE")
        found.append(dict(certificate_id=ca["certificate_id"], common_name=ca["common_name"], status=ca["status"],
                          active_certificates=len(active), active_certificate_ids=active))
    return sorted(found, key=lambda c: c["certificate_id"])


def _reported_ca(ca):
    """A foreign CA is drift while it is ACTIVE, or INACTIVE with nothing ACTIVE under it (a prune deletes it);
    INACTIVE with ACTIVE certificates left (of Pis outside the run) it is harmless until they are retired."""
    return ca["status"] == "ACTIVE" or not ca["active_certificate_ids"]


def _retire_foreign_ca(client, ca, retired, check_mode):
    """A foreign CA set INACTIVE, and deleted when no ACTIVE certificate remains under it (``retired``:
    the certificates this prune retired). Its files, wherever they are, are never touched. Returns what
    was done: ``inactive``, ``deleted`` (or both)."""
    done = []
    if ca["status"] == "ACTIVE":
        done.append("inactive")
        if not check_mode:
            client.call("update_ca_certificate", certificateId=ca["certificate_id"], newStatus="INACTIVE")
    if check_mode:
        left = [c for c in ca["active_certificate_ids"] if c not in retired]
    else:
        left = [c["certificateId"] for c in client.paginate(
            "list_certificates_by_ca", "certificates", caCertificateId=ca["certificate_id"], pageSize=250)
            if c.get("status") == "ACTIVE"]
    if not left:
        done.append("deleted")
        if not check_mode:
            client.delete("delete_ca_certificate", certificateId=ca["certificate_id"])
    return done


def fleet_drift(client, spec, inventory, prune=False, workers=8, check_mode=False, whole_inventory=True,
                ca_certificate_path=None):
    """Drift between the inventory and the registry, and (``prune``) its end.

    Reports

    (a) the things of the managed thing group (things this collection created) whose name is not in
        ``inventory`` (the thing names of the WHOLE inventory) - only with ``whole_inventory`` (a run on part
        of the fleet, --limit or a job slice, does not see the rest: nothing of it is drift);
    (b) the fleet CA's certificates attached to no thing - leaving out the certificate each inventory device
        holds on the controller and REVOKED ones (retired on purpose, kept for audit) - only with
        ``whole_inventory`` too;
    (c) ``extra_certificates``: for each device of the run (``spec.devices``: ``host``, ``thing_name`` and
        the ``certificate_id`` the fleet result names, else the one the controller holds), every ACTIVE
        certificate attached to its thing that is not its identity nor a rotation's staged one (a second
        controller's, an earlier staged one whose files are gone);
    (d) ``foreign_cas``: every fleet-CA-like CA of the account (:func:`_ca_certificate.is_fleet_ca_name`) other than the
        fleet CA and the next CA of a CA rotation in progress (``ca_certificate_path``'s ``next/``).

    With ``prune`` (a) and (b) are retired as :func:`retire_device` does, (c) as a superseded certificate
    (INACTIVE, detached, deleted or REVOKED per ``spec.retire_certificates``), (d) set INACTIVE and deleted
    once no ACTIVE certificate remains under it (its key files are never touched: they are not ours). A
    failure stays with its thing, certificate or CA. Check mode predicts; a rerun after a prune finds nothing.

    Reads: ListThingsInThingGroup and ListCertificatesByCA in pages of 250, one DescribeThing per managed
    thing out of the inventory, one ListPrincipalThings per CA certificate that is no inventory device's;
    one ListThingPrincipals per device of the run and a DescribeCertificate per other certificate of its
    thing; ListCACertificates, a DescribeCACertificate per CA not owned and a ListCertificatesByCA per
    fleet-like one.
    """
    if not spec.managed_thing_group:
        raise IoTFleetError("Drift needs the managed thing group (managed_thing_group): it marks the things "
                            "this collection created.")
    known = set(inventory)
    if prune and whole_inventory and not known:
        raise IoTFleetError("prune with an empty inventory would retire every managed thing: refused. Give the "
                            "thing names of the whole inventory.")
    orphan_things, orphan_certificates = [], []
    if whole_inventory:
        managed = client.paginate("list_things_in_thing_group", "things", thingGroupName=spec.managed_thing_group,
                                  maxResults=250)
        # a deleted thing can still be listed as a member for a while (the stand-in keeps it for good)
        orphan_things = sorted(t for t in set(managed) - known
                               if client.get("describe_thing", thingName=t) is not None)
        held = {held_certificate_id(spec.pki_dir, name) for name in known}
        for item in client.paginate("list_certificates_by_ca", "certificates",
                                    caCertificateId=_x509.certificate_id(spec.ca_cert), pageSize=250):
            if item["certificateId"] in held or item.get("status") == "REVOKED":
                continue
            if not client.paginate("list_principal_things", "things", principal=item["certificateArn"]):
                orphan_certificates.append(item["certificateId"])
    scanned = _per_device(spec, workers, lambda d: _extra_certificates(client, spec, d))
    extra = sorted((e for d in scanned["devices"] for e in d.get("extra", [])),
                   key=lambda e: (e["thing_name"], e["certificate_id"]))
    fleet_like = _foreign_cas(client, spec, owned_fleet_cas(ca_certificate_path, spec.ca_cert))
    foreign = [ca for ca in fleet_like if _reported_ca(ca)]
    result = dict(changed=False, orphan_things=orphan_things, orphan_certificates=sorted(orphan_certificates),
                  extra_certificates=extra, foreign_cas=foreign, whole_inventory=bool(whole_inventory),
                  unknown_identity_devices=[d["host"] for d in scanned["devices"] if d.get("unknown")],
                  pruned=bool(prune), devices=[], retired_certificates=[], retired_cas=[],
                  failures=[f"device {d['host']}: {d['msg']}" for d in scanned["devices"] if d["failed"]])
    if not prune:
        return result
    prune_spec = FleetSpec([dict(host=t, thing_name=t) for t in orphan_things], spec.ca_cert, None, spec.pki_dir,
                           retire_certificates=spec.retire_certificates)
    retired = _per_device(prune_spec, workers, lambda d: retire_device(client, prune_spec, d, check_mode))
    result["devices"] = retired["devices"]
    result["failures"] += [f"thing {d['thing_name']}: {d['msg']}" for d in retired["devices"] if d["failed"]]
    for certificate_id in result["orphan_certificates"] + [e["certificate_id"] for e in extra]:
        try:
            if _retire_certificate(client, spec, certificate_id, check_mode):
                result["retired_certificates"].append(certificate_id)
        except (IoTFleetError, IoTAWSError) as e:
            result["failures"].append(f"certificate {certificate_id}: {e}")
    retired_now = set(result["retired_certificates"])
    for ca in fleet_like:
        if not (_reported_ca(ca) or set(ca["active_certificate_ids"]) <= retired_now):
            continue   # INACTIVE, with ACTIVE certificates of Pis outside this run left under it
        try:
            done = _retire_foreign_ca(client, ca, retired_now, check_mode)
        except (IoTFleetError, IoTAWSError) as e:
            result["failures"].append(f"CA {ca['certificate_id']}: {e}")
            continue
        if done:
            result["retired_cas"].append(dict(certificate_id=ca["certificate_id"], done=done))
    result["changed"] = retired["changed"] or bool(result["retired_certificates"] or result["retired_cas"])
    return result


def ensure_fleet(client, spec, workers=8, check_mode=False, diff=False, progress=None):
    """Run :func:`ensure_device` for every device in a thread pool; never stops at a failure.
    ``progress(result)``, when given, is called with each device's result as it finishes (serialised).

    Returns the module values: ``changed``, ``devices`` (one result per device, in input
    order), ``failed_devices``, ``quarantined_devices``, ``thing_groups_created``; with ``diff``
    also ``diff``, one before/after per changed device (nothing when nothing changed). The caller
    fails the module when ``failed_devices`` is set. In registration ``jitp`` ``client`` is not
    used (None is fine).
    """
    if spec.policy_name:
        validate_policy_name(spec.policy_name)
    snapshot = groups = None
    if spec.registration == "api":
        spec = fleet_thing_type_checked(client, spec)
    if spec.registration == "api" and any(not d.get("error") for d in spec.devices):
        groups = ensure_fleet_groups(client, spec, check_mode=check_mode)   # none made when every device failed
    if spec.registration == "api" and len(spec.devices) >= BULK_READ_MIN_DEVICES:
        snapshot = RegistrySnapshot(client, spec)   # a few pages instead of three reads per device
    result = _per_device(spec, workers, lambda d: ensure_device(client, spec, d, check_mode=check_mode,
                                                                snapshot=snapshot, groups=groups), progress=progress)
    result["quarantined_devices"] = [r["host"] for r in result["devices"] if r.get("quarantined")]
    result["renewal_due_devices"] = [r["host"] for r in result["devices"] if r.get("renewal_due")]
    result["thing_groups_created"] = groups["created"] if groups else []
    if result["thing_groups_created"]:
        result["changed"] = True
    diffs = []
    for device in result["devices"]:
        device_diff = device.pop("diff", None)
        if device_diff is not None and device["changed"]:
            label = f"{device['host']} (thing {device['thing_name']})"
            diffs.append(dict(before_header=label, after_header=label, **device_diff))
    if diff:
        result["diff"] = diffs
    return result


def _per_device(spec, workers, work_one, progress=None):
    """``work_one(device)`` for every device in a thread pool, in input order; a device whose input
    was refused (``error``) or whose work raised fails alone, named by its host."""
    lock = threading.Lock()
    results = [None] * len(spec.devices)

    def work(index, device):
        try:
            if device.get("error"):
                raise IoTFleetError(device["error"])
            result = work_one(device)
        except (IoTFleetError, IoTAWSError) as e:
            result = dict(
                host=device["host"], thing_name=device["thing_name"], changed=False, failed=True, msg=str(e)
            )
        except Exception as e:  # noqa: BLE001 - one device's bug must not hide the others' results
            result = dict(
                host=device["host"],
                thing_name=device["thing_name"],
                changed=False,
                failed=True,
                msg=f"{type(e).__name__}: {e}",
            )
        with lock:
            results[index] = result
            if progress is not None:
                progress(result)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(spec.devices) or 1))) as pool:
        for future in [pool.submit(work, i, d) for i, d in enumerate(spec.devices)]:
            future.result()

    return dict(
        changed=any(r["changed"] for r in results),
        devices=results,
        failed_devices=[r["host"] for r in results if r["failed"]],
    )


# --- Certificate rotation (rotate.yml): stage a new identity beside the live one, promote it once the
# device has proven it. The staged identity lives under <pki_dir>/staged/devices/<thing>/ (the same
# files as a live one), so ensure_device_identity makes it unchanged.

STAGED_DIR = "staged"
ROTATION_PHASES = ("stage", "promote")


def staged_spec(spec):
    """``spec`` rooted at ``<pki_dir>/staged``: the device directory it names is the staged one."""
    staged = copy.copy(spec)
    staged.pki_dir = os.path.join(spec.pki_dir, STAGED_DIR)
    return staged


def _live_certificate(spec, thing_name, host):
    path = os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE)
    pem = read_optional(path)
    if pem is None:
        raise IoTFleetError(f"{host}: no live certificate at {path}; provision it first (provision.yml).")
    return _x509.load_certificate(pem, what=f"live certificate of {host}")


def _stale_staged_certificates(client, spec, thing_name, keep):
    """The certificates attached to the thing, ACTIVE and issued by the fleet CA (``spec.ca_cert``, or one of
    ``spec.accepted_cas``) other than ``keep`` (the live identity and the staged file's): what an earlier
    stage left when its files are gone. One ListThingPrincipals, a DescribeCertificate per other principal."""
    stale = []
    for arn in client.paginate("list_thing_principals", "principals", thingName=thing_name):
        cert_id = arn.rsplit("/", 1)[-1]
        if ":cert/" not in arn or cert_id in keep:
            continue
        description = (client.get("describe_certificate", certificateId=cert_id) or {}).get("certificateDescription") or {}
        if description.get("status") != "ACTIVE" or not description.get("certificatePem"):
            continue
        try:
            cert = _x509.load_certificate(description["certificatePem"], what="certificate")
        except IoTFleetError:
            continue
        if issuing_ca(spec, cert) is not None:
            stale.append(cert_id)
    return sorted(stale)


def stage_device(client, spec, device, rotate_all=False, check_mode=False):
    """Stage the device's next identity when its live certificate is due (expires within
    ``spec.renew_before``, or was not issued by the fleet CA given, ``spec.ca_cert``: in a CA
    rotation that is the next CA, so every certificate of the old one is due; ``other_ca`` in the
    result) or ``rotate_all``, or when one is staged already (a rerun finishes it).

    The next key (key mode ``controller``; in key mode ``device`` the CSR the device made, copied to
    the staged directory) and a certificate signed by the fleet CA, registered ACTIVE, the policy
    attached, attached to the thing beside the live one (non-exclusive). A rerun reuses the staged identity.
    Key mode ``device`` without a staged CSR yet: ``pending_csr``. Registration ``jitp``: the staged identity
    is made and NOT registered - the Pi registers it itself on its first connect with it (the fleet CA's
    JITP template: ACTIVE, the policy and the existing thing attached), before :func:`promote_device`.

    Retired first (``retired_certificates``): a certificate attached to the thing, ACTIVE, issued by the fleet
    CA, that is neither the live identity nor the staged file's - an earlier staged identity whose files are
    gone (a CA rotation with a Pi down once left it with 3 ACTIVE certificates). Nothing else is retired here.
    """
    thing_name, host = device["thing_name"], device["host"]
    live = _live_certificate(spec, thing_name, host)
    expires = _x509.not_valid_after(live)
    result = dict(host=host, thing_name=thing_name, changed=False, changes=[], failed=False, due=False,
                  staged=False, pending_csr=False, old_certificate_id=_x509.certificate_id(live),
                  expires=expires.isoformat(), certificate_id=None, certificate_arn=None, retired_certificates=[])
    sspec = staged_spec(spec)
    directory = device_dir(sspec.pki_dir, thing_name)
    now = datetime.datetime.now(datetime.timezone.utc)
    # a CA rotation: the target CA (spec.ca_cert, pki/ca/next/) did not issue the live certificate
    other_ca = not _x509.is_issued_by(live, spec.ca_cert)
    result["other_ca"] = other_ca
    if not (rotate_all or other_ca or expires - spec.renew_before <= now or os.path.isdir(directory)):
        return result
    result["due"] = True
    # an earlier staged identity whose files are gone (pki/staged removed, a run on another controller) left
    # its certificate ACTIVE on the thing: retired before another is staged, so the thing never holds three
    keep = {result["old_certificate_id"], held_certificate_id(sspec.pki_dir, thing_name)}
    stale = _stale_staged_certificates(client, spec, thing_name, keep)
    for cert_id in stale:
        if _retire_certificate(client, spec, cert_id, check_mode):
            result["retired_certificates"].append(cert_id)
    if result["retired_certificates"]:
        result["changes"].append("retired an earlier staged certificate")
    if spec.key_mode == "device" and not os.path.exists(os.path.join(directory, CSR_FILE)):
        if not check_mode:
            result["pending_csr"] = True   # the device makes its next key and CSR, then stage again
            return result
        cert, changes = None, ["key (on the device)", "certificate"]
    else:
        cert, _changed, changes = ensure_device_identity(sspec, thing_name, check_mode=check_mode)
    result["changes"].extend(changes)
    result["certificate_path"] = os.path.join(directory, CERTIFICATE_FILE)
    fresh = "certificate" in changes
    if spec.registration == "jitp":
        # registration jitp: the staged certificate is not registered here; the Pi registers it itself on its
        # first connect with it (the new identity's round trip: the CA's JITP template registers it ACTIVE,
        # attaches the policy and the existing thing), and promote then finds it ACTIVE and attached
        result["certificate_id"] = _x509.certificate_id(cert) if cert is not None else None
        result["staged"] = True
        result["changed"] = bool(result["changes"])
        return result
    if cert is None:
        # check mode: the identity would be made, registered and attached
        result["changes"] += ["certificate registration"] + (["policy attachment"] if spec.policy_name else [])
        result["changes"].append("thing principal")
    else:
        ca_cert = spec.ca_cert if spec.register_with_ca else None
        outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE" if fresh else None,
                                     check_mode=check_mode, known_new=fresh)
        unregistered = not outcome.before   # nothing can be attached to it yet
        status = outcome.values.get("status")
        if status in ("INACTIVE", "REVOKED") and not fresh:
            raise IoTFleetError(
                f"{host}: the staged certificate {outcome.values['certificate_id']} is {status} (set by an "
                f"operator?): left so; remove {directory} to stage a new identity.")
        if status != "ACTIVE":
            outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE", check_mode=check_mode)
        if outcome.changed:
            result["changes"].append("certificate registration")
        result["certificate_id"] = outcome.values["certificate_id"]
        arn = result["certificate_arn"] = outcome.values.get("certificate_arn")
        if arn is None:
            result["changes"] += (["policy attachment"] if spec.policy_name else []) + ["thing principal"]
        else:
            if spec.policy_name and ensure_policy_attachment(client, spec.policy_name, arn, check_mode=check_mode,
                                                             known_new=unregistered).changed:
                result["changes"].append("policy attachment")
            if ensure_thing_principal(client, thing_name, arn, exclusive=False, check_mode=check_mode,
                                      known_new=unregistered).changed:
                result["changes"].append("thing principal")
    result["staged"] = True
    result["changed"] = bool(result["changes"])
    return result


def promote_device(client, spec, device, check_mode=False):
    """Make the staged identity the live one, for a device that has proven it (verified, switched).

    The staged certificate must be ACTIVE and attached to the thing; then every other certificate of
    the thing and the controller's live one are retired (INACTIVE, detached, deleted after the
    asynchronous detach, or REVOKED: ``spec.retire_certificates``), the live files move to
    ``pki/retired/<thing>-<UTC time>/`` with the key destroyed, and the staged files become the live
    ones. Cloud first, files last: a failure leaves the staged identity for a rerun to finish.
    Nothing staged: nothing to do; in check mode it is predicted (the stage step only predicted it:
    the playbook promotes only the devices the stage step staged or predicted).
    """
    thing_name, host = device["thing_name"], device["host"]
    result = dict(host=host, thing_name=thing_name, changed=False, changes=[], failed=False,
                  retired_certificates=[], archived_to=None, certificate_id=None)
    directory = device_dir(staged_spec(spec).pki_dir, thing_name)
    pem = read_optional(os.path.join(directory, CERTIFICATE_FILE))
    if pem is None:
        if check_mode:
            result.update(changed=True, changes=["retire the old certificate", "archive the old identity"])
        return result
    new_id = _x509.certificate_id(_x509.load_certificate(pem, what=f"staged certificate of {host}"))
    result["certificate_id"] = new_id
    current = client.get("describe_certificate", certificateId=new_id)
    description = (current or {}).get("certificateDescription") or {}
    if description.get("status") != "ACTIVE":
        if spec.registration == "jitp" and not description:
            raise IoTFleetError(f"{host}: the staged certificate {new_id} is not registered: in registration jitp the "
                                "Pi registers it on its first connect with it (the round trip), which has not happened; "
                                "the old identity stays; rerun rotate.")
        raise IoTFleetError(f"{host}: the staged certificate {new_id} is {description.get('status') or 'not registered'}, "
                            "not ACTIVE: the old identity stays; rerun rotate to stage it again.")
    arn = description["certificateArn"]
    principals = client.paginate("list_thing_principals", "principals", thingName=thing_name)
    if arn not in principals:
        raise IoTFleetError(f"{host}: the staged certificate {new_id} is not attached to the thing {thing_name}: "
                            "the old identity stays; rerun rotate to attach it.")
    retire = {p.rsplit("/", 1)[-1] for p in principals if p != arn and ":cert/" in p}
    live = read_optional(os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE))
    if live is not None:
        try:
            retire.add(_x509.certificate_id(_x509.load_certificate(live, what="live certificate")))
        except IoTFleetError:
            pass   # a damaged file names no certificate: the thing's principals still do
    retire.discard(new_id)
    for cert_id in sorted(retire):
        if _retire_certificate(client, spec, cert_id, check_mode):
            result["retired_certificates"].append(cert_id)
    result["changes"].append("promote the staged identity")
    if result["retired_certificates"]:
        result["changes"].append("retired the old certificates")
    if check_mode:
        result["archived_to"] = "(check mode)"
    else:
        result["archived_to"] = _archive_identity(spec, thing_name)
        os.rename(directory, device_dir(spec.pki_dir, thing_name))
    result["changed"] = True
    return result


def rotate_fleet(client, spec, phase, rotate_all=False, workers=8, check_mode=False):
    """:func:`stage_device` or :func:`promote_device` for every device, in a thread pool; a failure
    stays with its device. Adds ``due_devices``, ``staged_devices`` and ``pending_csr_devices``
    (stage) or ``promoted_devices`` (promote) to the :func:`ensure_fleet`-shaped result."""
    if phase not in ROTATION_PHASES:
        raise IoTFleetError(f"rotation must be one of {', '.join(ROTATION_PHASES)}, got {phase!r}.")
    if spec.policy_name:
        validate_policy_name(spec.policy_name)
    if phase == "stage":
        result = _per_device(spec, workers, lambda d: stage_device(client, spec, d, rotate_all, check_mode))
        for key in ("due", "staged", "pending_csr"):
            result[f"{key}_devices"] = [r["host"] for r in result["devices"] if r.get(key)]
    else:
        result = _per_device(spec, workers, lambda d: promote_device(client, spec, d, check_mode))
        result["promoted_devices"] = [r["host"] for r in result["devices"] if r["changed"]]
    return result


# --- Rotation of the fleet CA itself: the next CA (made and registered by the ca role with ca_next, in
# pki/ca/next/) signs the staged identities; once no ACTIVE certificate hangs under the old CA it is
# retired and the next CA takes its place.

CA_RETIRED_DIR = "retired"


def _key_matches(path, cert, what, passphrase=None, content=None):
    """Whether the key file at ``path`` (its ``content`` when given: a decrypted vault file) matches
    ``cert``; None when there is no file. A key that cannot be decrypted (wrong passphrase) raises:
    switch_fleet_ca checks that before any write."""
    pem = read_optional(path)
    if pem is None:
        return None
    pem = content if content is not None else pem
    try:
        key = _x509.load_private_key(pem, path=path, what=what, passphrase=passphrase)
    except IoTFleetError:
        if _x509.is_encrypted_pem(pem) or _x509.is_vault_encrypted(pem):
            raise
        return False
    return _x509.key_matches_certificate(key, cert)


def _active_under_ca(client, ca_id):
    """The CA's description and the ids of the ACTIVE certificates registered under it; (None, None) when
    the CA is not registered."""
    described = client.get("describe_ca_certificate", certificateId=ca_id)
    if described is None:
        return None, None
    return described["certificateDescription"], sorted(
        c["certificateId"] for c in client.paginate("list_certificates_by_ca", "certificates",
                                                    caCertificateId=ca_id, pageSize=250)
        if c.get("status") == "ACTIVE")


def live_certificate_ids(pki_dir, devices):
    """The ids of the devices' live certificates on the controller (a missing or damaged file names none)."""
    ids = (held_certificate_id(pki_dir, device["thing_name"]) for device in devices)
    return {certificate_id for certificate_id in ids if certificate_id is not None}


NEXT_CA_DIR = "next"


def next_fleet_ca(ca_certificate_path, ca_private_key_path, passphrase=None, key_content=None,
                  next_certificate_path=None):
    """The next CA of a CA rotation in progress (``next/`` beside the fleet CA, same file names) as a list
    of its certificate, or an empty list. Registration keeps a device certificate it issued (that Pi was
    rotated already) while new certificates are still signed by the live CA. ``passphrase`` and
    ``key_content`` (the next key's, see :func:`load_fleet_ca`): the fleet CA's keys share the passphrase.
    ``next_certificate_path``: the next CA an operator gives for a CA of their own (``ca_create: false``),
    wherever it is; only its certificate is read."""
    if next_certificate_path:
        pem = read_optional(next_certificate_path)
        return [] if pem is None else [_x509.load_certificate(pem, what="next fleet CA certificate")]
    directory = os.path.join(os.path.dirname(ca_certificate_path), NEXT_CA_DIR)
    cert_path = os.path.join(directory, os.path.basename(ca_certificate_path))
    key_path = os.path.join(directory, os.path.basename(ca_private_key_path))
    if not (os.path.isfile(cert_path) and os.path.isfile(key_path)):
        return []
    return [load_fleet_ca(cert_path, key_path, passphrase=passphrase, key_content=key_content)[0]]


def switch_fleet_ca(client, ca_certificate_path, ca_private_key_path, next_certificate_path, next_private_key_path,
                    pending=(), check_mode=False, passphrase=None, key_content=None, next_key_content=None,
                    keep_ca_files=False):
    """The end of a CA rotation: retire the live CA (``ca_certificate_path``, ``pki/ca/``) once no ACTIVE
    certificate hangs under it, and let the next CA (``next_certificate_path``, ``pki/ca/next/``) take its
    place.

    Steps, each one left for a rerun to finish when the run stops after it (the state is read from the
    files, never remembered): (1) the next CA must be registered ACTIVE; (2) ListCertificatesByCA of the
    old CA: any ACTIVE certificate left (a Pi not rotated yet: unreachable, failed) and nothing happens
    (``state`` ``waiting``, the count and the ids in the result; the old CA stays ACTIVE); (3) the old CA
    INACTIVE, then deleted (AWS deletes only an INACTIVE CA); (4) its certificate archived under
    ``<ca dir>/retired/<id>/``; (5) its key destroyed; (6) the next certificate renamed over the live one;
    (7) the next key renamed over the live key; (8) ``next/`` removed. ``pki/ca/`` always holds exactly
    one CA certificate; the old key goes only once nothing ACTIVE hangs under the old CA and the CA is
    deleted; the next key is only ever renamed.

    ``pending``: check mode only - the certificate ids this run's promote step would retire (it did not
    run), so the prediction counts them as gone. No ``next/``: nothing to do.

    ``keep_ca_files``: the CA files are the operator's (``ca_create: false``), the next CA one they gave
    (``next_certificate_path`` anywhere, the rotation in progress while it exists): only (1)-(3) happen, in
    AWS IoT; no file is archived, renamed or deleted, and the result says which variables to point at the
    next CA.
    """
    next_dir = os.path.dirname(next_certificate_path)
    result = dict(changed=False, changes=[], state="none", old_ca_certificate_id=None, ca_certificate_id=None,
                  active_certificates=0, active_certificate_ids=[], archived_to=None,
                  msg=f"no CA rotation in progress (no {next_certificate_path if keep_ca_files else next_dir})")
    if not (os.path.isfile(next_certificate_path) if keep_ca_files else os.path.isdir(next_dir)):
        return result
    # a wrong passphrase fails here, before the old CA is retired in AWS
    _x509.check_private_key_readable(key_content, ca_private_key_path, "fleet CA private key", passphrase)
    _x509.check_private_key_readable(next_key_content, next_private_key_path, "next fleet CA private key", passphrase)
    live_pem = read_optional(ca_certificate_path)
    if live_pem is None:
        raise IoTFleetError(f"No fleet CA certificate at {ca_certificate_path} while a CA rotation is in progress "
                            f"({next_dir}): restore it (a backup of the controller) and rerun.")
    live = _x509.load_certificate(live_pem, what="fleet CA certificate")
    next_pem = read_optional(next_certificate_path)
    if next_pem is not None:
        new = _x509.load_certificate(next_pem, what="next fleet CA certificate")
        new_id, old_id = _x509.certificate_id(new), _x509.certificate_id(live)
        result.update(ca_certificate_id=new_id, old_ca_certificate_id=old_id)
        if new_id == old_id:
            if keep_ca_files:
                # the operator made the next CA the fleet CA: the rotation is over
                result.update(msg=f"{next_certificate_path} is the fleet CA itself: the CA rotation is over (remove "
                                  "ca_next_certificate_path and ca_next_private_key_path)")
                return result
            raise IoTFleetError(f"{next_certificate_path} is the live fleet CA itself: remove {next_dir}.")
        registered = client.get("describe_ca_certificate", certificateId=new_id)
        if ((registered or {}).get("certificateDescription") or {}).get("status") != "ACTIVE":
            # an operator's next CA exists before the run registers it (its ca step, after this one)
            if check_mode or keep_ca_files:
                result.update(state="waiting", msg=f"the next fleet CA {new_id} {'would be' if check_mode else 'is'} "
                                                   "registered first")
                return result
            raise IoTFleetError(f"The next fleet CA {new_id} ({next_certificate_path}) is not registered ACTIVE: the "
                                "old CA stays; rerun rotate.yml (its ca step registers the next CA).")
        old_description, active = _active_under_ca(client, old_id)
        active = [c for c in active or [] if not (check_mode and c in pending)] if active is not None else None
        if active:
            result.update(state="waiting", active_certificates=len(active), active_certificate_ids=active[:MAX_NAMED],
                          msg=f"the old fleet CA {old_id} stays ACTIVE: {len(active)} ACTIVE certificate(s) still "
                              f"hang under it (Pis not rotated yet; rerun rotate.yml once they are reachable)")
            return result
        if active is not None:
            result["changes"].append("old CA retired")
            if not check_mode:
                if old_description.get("status") == "ACTIVE":
                    client.call("update_ca_certificate", certificateId=old_id, newStatus="INACTIVE")
                client.delete("delete_ca_certificate", certificateId=old_id)
        if keep_ca_files:
            result.update(changed=bool(result["changes"]), state="switched",
                          msg=f"{new_id} is the fleet CA in AWS IoT"
                              + (f"; the old one {old_id} {'would be' if check_mode else 'is'} retired there"
                                 if result["changes"] else "")
                              + f". Your CA files are left as they are: set ca_certificate_path={next_certificate_path} "
                              f"and ca_private_key_path={next_private_key_path}, and remove ca_next_certificate_path "
                              "and ca_next_private_key_path, before the next run.")
            return result
        archive = os.path.join(os.path.dirname(ca_certificate_path), CA_RETIRED_DIR, old_id)
        result["archived_to"] = archive
        result["changes"] += ["old CA archived, its key destroyed", "next CA is the fleet CA"]
        if check_mode:
            result.update(changed=True, state="switched",
                          msg=f"the old fleet CA {old_id} would be retired; {new_id} would become the fleet CA")
            return result
        old_key = _key_matches(ca_private_key_path, live, "fleet CA private key", passphrase, key_content)
        if old_key is False:
            raise IoTFleetError(f"The key {ca_private_key_path} does not match the old fleet CA {old_id}: left alone "
                                "(nothing retired on the controller); check the CA directory by hand.")
        makedirs_private(archive)
        archived = os.path.join(archive, os.path.basename(ca_certificate_path))
        if read_optional(archived) is None:
            write_file(archived, live_pem.encode() if isinstance(live_pem, str) else live_pem, 0o644)
        if old_key:
            os.remove(ca_private_key_path)
            key_content = None
        os.rename(next_certificate_path, ca_certificate_path)
        live = new
        result["changed"] = True
    # the next certificate is the live one now; its key follows (unless the next CA is still being made)
    next_key = _key_matches(next_private_key_path, live, "next fleet CA private key", passphrase, next_key_content)
    if next_key is False:
        if not result["changed"]:
            result.update(state="creating", msg=f"the next fleet CA in {next_dir} is not complete yet (no certificate)")
        return result
    if next_key:
        if _key_matches(ca_private_key_path, live, "fleet CA private key", passphrase, key_content) is False:
            raise IoTFleetError(f"{ca_private_key_path} holds a key of no CA in this rotation: left alone.")
        if check_mode:
            result["changes"].append("next CA key moved")
        else:
            os.rename(next_private_key_path, ca_private_key_path)
    if check_mode or not os.listdir(next_dir):
        if not check_mode:
            os.rmdir(next_dir)
        result["changes"].append(f"{next_dir} removed")
    result["ca_certificate_id"] = _x509.certificate_id(live)
    result.update(changed=bool(result["changes"]), state="switched",
                  msg=f"{result['ca_certificate_id']} is the fleet CA"
                      + (f"; the old one {result['old_ca_certificate_id']} is retired, archived in {result['archived_to']}"
                         if result["old_ca_certificate_id"] else ""))
    return result
