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

* ``certificate.pem`` - the device certificate, signed by the fleet CA, CN = thing name;
* ``private.key`` - key mode ``controller`` only: made here, 0600, never returned;
* ``device.csr`` - key mode ``device`` only: the CSR the device made (its key stays on it).

An existing certificate is kept while it is issued by the fleet CA, names the thing, matches
the key (or the CSR) and is valid for more than ``renew_before_days``.

Registration ``api`` (default) registers each certificate, makes the thing and attaches the policy
with the AWS IoT API. Registration ``jitp`` only makes the keys and certificates above: each device
registers itself on its first connect, through the just-in-time provisioning template of the fleet
CA (the ``ca`` role); no AWS call at all, the certificate id is computed locally.
"""

import datetime
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_policy_attachment
from ansible_collections.iotfleet.aws.plugins.module_utils._attachment import ensure_thing_principal
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import ensure_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import check_transition
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import remove_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._certificate import revoke_certificate
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._policy import validate_policy_name
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import validate_thing_name
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import ensure_thing
from ansible_collections.iotfleet.aws.plugins.module_utils._thing import normalize_attributes

CERTIFICATE_FILE = "certificate.pem"
KEY_FILE = "private.key"
CSR_FILE = "device.csr"
KEY_MODES = ("controller", "device")
REGISTRATIONS = ("api", "jitp")
# RFC 5280's upper bound of a common name; JITP names the thing after the certificate's CN
MAX_COMMON_NAME = 64


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
    ):
        if registration not in REGISTRATIONS:
            raise IoTFleetError(f"registration must be one of {', '.join(REGISTRATIONS)}, got {registration!r}.")
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
        self.retire_certificates = retire_certificates


def validate_devices(devices):
    """Normalise the device list. A device whose own inputs are bad is kept with an ``error``
    (it fails alone, named by its host, before anything is written for it); what concerns the
    whole fleet raises IoTFleetError before any write: not a list, an entry without thing_name,
    two hosts mapping to one thing name (both named).

    Each device: ``thing_name`` (required), ``attributes`` (dict), ``host`` (the inventory
    name, for reports; defaults to the thing name), ``reactivate`` (bool: an INACTIVE
    certificate, an operator's quarantine, is set ACTIVE again only when true).
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
                     reactivate=bool(device.get("reactivate")))
        try:
            validate_thing_name(device["thing_name"], what=f"thing name of {host}")
            if len(device["thing_name"]) > MAX_COMMON_NAME:
                raise IoTFleetError(
                    f"The thing name {device['thing_name']!r} of {host} has {len(device['thing_name'])} characters: "
                    f"the device certificate's CN is the thing name and holds at most {MAX_COMMON_NAME} "
                    "(RFC 5280); set a shorter iotfleet_thing_name.")
            entry["attributes"] = normalize_attributes(device.get("attributes"))
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


def load_fleet_ca(ca_certificate_path, ca_private_key_path):
    """The fleet CA certificate and key, checked: a CA, the key matches, within validity."""
    ca_cert = _x509.load_certificate(path=ca_certificate_path, what="fleet CA certificate")
    ca_key = _x509.load_private_key(path=ca_private_key_path, what="fleet CA private key")
    if not _x509.is_ca(ca_cert):
        raise IoTFleetError(f"The fleet CA certificate {ca_certificate_path} is not a CA (basicConstraints CA:FALSE).")
    if not _x509.key_matches_certificate(ca_key, ca_cert):
        raise IoTFleetError(
            f"The fleet CA private key {ca_private_key_path} does not match the certificate {ca_certificate_path}."
        )
    _x509.check_validity(ca_cert, what="fleet CA certificate")
    return ca_cert, ca_key


def device_dir(pki_dir, thing_name):
    return os.path.join(pki_dir, "devices", thing_name)


def _makedirs_private(directory):
    """Make ``directory`` and its missing parents 0700 (whatever the umask): which devices exist is
    private too. Existing directories keep the mode their owner gave them."""
    parent = os.path.dirname(directory)
    if parent and parent != directory and not os.path.isdir(parent):
        _makedirs_private(parent)
    try:
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)
    except FileExistsError:
        pass


def _write_private(path, data, mode):
    """Write ``data`` atomically with ``mode`` (the file never exists with wider rights)."""
    directory = os.path.dirname(path)
    _makedirs_private(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_optional(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
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
        _x509.common_name(cert) != thing_name
        or not _x509.is_issued_by(cert, spec.ca_cert)
        or _x509.not_valid_after(cert) - spec.renew_before <= now
        or _x509._public_der(cert.public_key()) != _x509._public_der(public_key)
    ):
        return None
    return cert


def ensure_device_identity(spec, thing_name, check_mode=False):
    """The device's key (controller mode) and certificate on the controller.

    Returns ``(cert or None, changed, what)``; ``cert`` is None only in check mode when a
    certificate would be issued.
    """
    directory = device_dir(spec.pki_dir, thing_name)
    cert_path = os.path.join(directory, CERTIFICATE_FILE)
    changes = []
    if spec.key_mode == "device":
        csr_pem = _read_optional(os.path.join(directory, CSR_FILE))
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
        key_pem = _read_optional(key_path)
        key = _x509.load_private_key(key_pem, what=f"private key of {thing_name}") if key_pem else None
        if key is None:
            changes.append("key")
            if check_mode:
                return None, True, changes + ["certificate"]
            key = _x509.generate_private_key(spec.key_type)
            _write_private(key_path, _x509.private_key_pem(key).encode("ascii"), 0o600)
        elif os.stat(key_path).st_mode & 0o077:
            changes.append("key mode")
            if not check_mode:
                os.chmod(key_path, 0o600)
        public_key = key.public_key()
    cert = _usable_certificate(_read_optional(cert_path), spec, thing_name, public_key)
    if cert is None:
        changes.append("certificate")
        if check_mode:
            return None, True, changes
        if spec.key_mode == "device":
            cert = _x509.sign_csr(spec.ca_cert, spec.ca_key, csr, cn=thing_name, days=spec.certificate_days)
        else:
            cert = _x509.issue_certificate(
                spec.ca_cert, spec.ca_key, thing_name, public_key, days=spec.certificate_days
            )
        _write_private(cert_path, _x509.certificate_pem(cert).encode(), 0o644)
    return cert, bool(changes), changes


class FreshCertificateClient:
    """The fleet's client, for one device whose certificate was issued in this run for a new key.

    Such a certificate cannot be registered yet (its id, the SHA-256 of its DER, is new) and once
    this run registers it, it has no policy and no thing attached. This view answers exactly those
    reads locally - the first ``describe_certificate`` of the new id, and ``list_attached_policies``
    / ``list_principal_things`` of the ARN this view registered - and passes everything else (all
    writes included) to the real client. So the ensure-functions stay the single implementation
    and a new device costs one read (``describe_thing``) and its writes, no per-device lists.
    """

    def __init__(self, client, certificate_id):
        self._client = client
        self._certificate_id = certificate_id
        self._described = False
        self._arn = None

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get(self, operation, **kwargs):
        if operation == "describe_certificate" and kwargs.get("certificateId") == self._certificate_id:
            if not self._described:
                self._described = True
                return None
        return self._client.get(operation, **kwargs)

    def call(self, operation, **kwargs):
        response = self._client.call(operation, **kwargs)
        if operation in ("register_certificate", "register_certificate_without_ca"):
            self._arn = (response or {}).get("certificateArn")
        return response

    def paginate(self, operation, result_key, **kwargs):
        if self._arn is not None and (
            (operation == "list_attached_policies" and kwargs.get("target") == self._arn)
            or (operation == "list_principal_things" and kwargs.get("principal") == self._arn)
        ):
            return []
        return self._client.paginate(operation, result_key, **kwargs)


def ensure_device_jitp(spec, device, check_mode=False):
    """Registration ``jitp``: the device's key and certificate on the controller, and nothing else.

    The device registers itself on its first connect (the fleet CA's JITP template makes the thing,
    registers the certificate ACTIVE and attaches the policy), so no AWS call is made: the
    certificate id is computed locally (SHA-256 of the DER, as AWS IoT computes it); the ARNs are
    not known (null). Same result fields as :func:`ensure_device`.
    """
    thing_name = device["thing_name"]
    if len(thing_name) > MAX_COMMON_NAME:
        raise IoTFleetError(
            f"The thing name {thing_name!r} has {len(thing_name)} characters: in registration jitp AWS IoT names "
            f"the thing after the certificate's CN, which holds at most {MAX_COMMON_NAME}; set a shorter "
            "iotfleet_thing_name."
        )
    cert, changed, changes = ensure_device_identity(spec, thing_name, check_mode=check_mode)
    return dict(
        host=device["host"],
        thing_name=thing_name,
        changed=changed,
        changes=list(changes),
        failed=False,
        certificate_path=os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE),
        certificate_id=_x509.certificate_id(cert) if cert is not None else None,
        certificate_arn=None,
        thing_arn=None,
    )


BULK_READ_MIN_DEVICES = 50


class RegistrySnapshot:
    """The registry read in pages once for a whole fleet (``ensure_fleet`` with many devices):
    things (ListThings), the fleet CA's certificates (ListCertificatesByCA) and the policy's
    targets (ListTargetsForPolicy). A rerun then costs one read per device (the certificate's
    things) instead of four. Taken at the start of the run; writes go to AWS as always.
    """

    def __init__(self, client, spec):
        # the largest pages AWS serves (250) for all three listings
        self.things = {t["thingName"]: t for t in client.paginate("list_things", "things", maxResults=250)}
        self.ca_id = _x509.certificate_id(spec.ca_cert) if spec.register_with_ca else None
        self.certificates = {}
        if self.ca_id:
            for c in client.paginate("list_certificates_by_ca", "certificates", caCertificateId=self.ca_id,
                                     pageSize=250):
                self.certificates[c["certificateId"]] = c
        self.policy = spec.policy_name
        self.targets = set(client.paginate("list_targets_for_policy", "targets", policyName=self.policy,
                                           pageSize=250)) if self.policy else set()

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


def ensure_device(client, spec, device, check_mode=False, snapshot=None):
    """Everything for one device; returns its result dict (no secrets).

    Calls per device: a new device (key and certificate made now) DescribeThing and 4 writes;
    an unchanged device 4 reads (DescribeCertificate, DescribeThing, ListAttachedPolicies of
    its certificate, ListPrincipalThings of its certificate) and no write - or, with a
    ``snapshot`` of the registry (large fleets), only ListPrincipalThings.
    """
    if spec.registration == "jitp":
        return ensure_device_jitp(spec, device, check_mode=check_mode)
    thing_name = device["thing_name"]
    result = dict(host=device["host"], thing_name=thing_name, changed=False, changes=[], failed=False)
    if snapshot is not None:
        client = SnapshotClient(client, snapshot)
    cert, changed, changes = ensure_device_identity(spec, thing_name, check_mode=check_mode)
    result["changes"].extend(changes)
    result["certificate_path"] = os.path.join(device_dir(spec.pki_dir, thing_name), CERTIFICATE_FILE)
    if cert is not None and "certificate" in changes and not check_mode:
        client = FreshCertificateClient(client, _x509.certificate_id(cert))

    cert_arn = None
    if cert is not None:
        ca_cert = spec.ca_cert if spec.register_with_ca else None
        fresh = "certificate" in changes
        # An existing certificate is read first with its status left alone: INACTIVE is an
        # operator's quarantine and stays so unless the device says reactivate.
        outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE" if fresh else None,
                                     check_mode=check_mode)
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
                return result
            revoked = outcome.values["certificate_id"]
            _retire_certificate(client, spec, revoked, check_mode=False)   # dead already: no detach may wait
            result["superseded_certificates"] = [revoked]
            _archive_identity(spec, thing_name)
            cert, _changed, changes = ensure_device_identity(spec, thing_name)
            result["changes"] += ["replaced revoked certificate"] + changes
            client = FreshCertificateClient(client, _x509.certificate_id(cert))
            outcome = ensure_certificate(client, cert=cert, ca_cert=ca_cert, status="ACTIVE")
            fresh = True
        result["certificate_id"] = outcome.values["certificate_id"]
        cert_arn = outcome.values.get("certificate_arn")
        if outcome.changed:
            result["changes"].append("certificate registration")
    else:
        result["certificate_id"] = None
        result["changes"].append("certificate registration")
    result["certificate_arn"] = cert_arn

    outcome = ensure_thing(
        client,
        thing_name,
        attributes=device.get("attributes"),
        purge_attributes=spec.purge_attributes,
        thing_type=spec.thing_type,
        check_mode=check_mode,
        current=snapshot.thing(thing_name) if snapshot is not None else None,
    )
    result["thing_arn"] = outcome.values.get("thing_arn")
    thing_created = outcome.changed and not outcome.before
    if outcome.changed:
        result["changes"].append("thing")

    if cert_arn is None:
        # check mode with a certificate still to be issued or registered: both links are new
        if spec.policy_name:
            result["changes"].append("policy attachment")
        result["changes"].append("thing principal")
    else:
        if spec.policy_name:
            outcome = ensure_policy_attachment(client, spec.policy_name, cert_arn, check_mode=check_mode)
            if outcome.changed:
                result["changes"].append("policy attachment")
        outcome = ensure_thing_principal(client, thing_name, cert_arn, exclusive=spec.exclusive, check_mode=check_mode)
        if outcome.changed:
            result["changes"].append("thing principal")
        if cert is not None and fresh and not thing_created:
            # one live identity per device: a certificate this run replaced is retired now
            superseded = _retire_others(client, spec, thing_name, cert_arn, check_mode)
            if superseded:
                result["superseded_certificates"] = result.get("superseded_certificates", []) + superseded
                result["changes"].append("retired superseded certificates")
    result["changed"] = bool(result["changes"]) or changed
    return result


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


def _archive_identity(spec, thing_name):
    """Move a replaced identity's controller files aside (``pki/retired/``), the key destroyed."""
    directory = device_dir(spec.pki_dir, thing_name)
    if not os.path.isdir(directory):
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    archive = os.path.join(spec.pki_dir, "retired", f"{thing_name}-{stamp}")
    key_path = os.path.join(directory, KEY_FILE)
    if os.path.exists(key_path):
        os.remove(key_path)
    _makedirs_private(os.path.dirname(archive))
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
    local = _read_optional(os.path.join(directory, CERTIFICATE_FILE))
    if local is not None:
        try:
            ids.add(_x509.certificate_id(_x509.load_certificate(local, what="device certificate")))
        except IoTFleetError:
            pass   # a damaged file names no certificate: the thing's principals still do
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
    result["changed"] = bool(result["retired_certificates"] or result["thing_deleted"] or result["archived_to"])
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


def ensure_fleet(client, spec, workers=8, check_mode=False, progress=None):
    """Run :func:`ensure_device` for every device in a thread pool; never stops at a failure.
    ``progress(result)``, when given, is called with each device's result as it finishes (serialised).

    Returns the module values: ``changed``, ``devices`` (one result per device, in input
    order), ``failed_devices``, ``quarantined_devices``. The caller fails the module when
    ``failed_devices`` is set. In registration ``jitp`` ``client`` is not used (None is fine).
    """
    if spec.policy_name:
        validate_policy_name(spec.policy_name)
    snapshot = None
    if spec.registration == "api" and len(spec.devices) >= BULK_READ_MIN_DEVICES:
        snapshot = RegistrySnapshot(client, spec)   # a few pages instead of three reads per device
    result = _per_device(spec, workers, lambda d: ensure_device(client, spec, d, check_mode=check_mode,
                                                                snapshot=snapshot), progress=progress)
    result["quarantined_devices"] = [r["host"] for r in result["devices"] if r.get("quarantined")]
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
