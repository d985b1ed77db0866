# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""Device certificates registered with AWS IoT (RegisterCertificate / WithoutCA, status, delete).

Local checks come first (PEM parses, within validity, chains to the given CA by issuer name and
signature, REVOKED is final), then exactly one describe by the locally computed id and at most
one write per device: :func:`ensure_certificate` is what the batched fleet module calls from its
thread pool.
"""

import datetime
import time

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import CERTIFICATE_STATUSES
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import normalize_status as _normalize_status
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome

STATUSES = CERTIFICATE_STATUSES
DEFAULT_STATUS = "ACTIVE"
MAX_NAMED = 10


def normalize_status(status):
    """ACTIVE / INACTIVE / REVOKED (lower case accepted); None stays None."""
    return _normalize_status(status, STATUSES, "certificate")


def check_transition(certificate_id, current, desired):
    """Raise IoTFleetError for a transition AWS IoT does not allow (REVOKED is final)."""
    if current == "REVOKED" and desired is not None and desired != "REVOKED":
        raise IoTFleetError(
            f"The certificate {certificate_id} is REVOKED, which is final: it cannot become {desired}. "
            "Issue and register a new certificate instead."
        )


def validate_device_certificate(cert, ca_cert=None, now=None):
    """Local checks of a device certificate: within validity and, with a CA, issued by it."""
    _x509.check_validity(cert, now=now, what="certificate")
    if ca_cert is not None:
        _x509.check_validity(ca_cert, now=now, what="CA certificate")
        _x509.verify_issued_by(cert, ca_cert, what="certificate", ca_what="CA certificate")
    return cert


def _facts(certificate_id, status, ca_certificate_id):
    return dict(certificate_id=certificate_id, status=status, ca_certificate_id=ca_certificate_id)


def ensure_certificate(
    client,
    certificate_pem=None,
    ca_certificate_pem=None,
    status=DEFAULT_STATUS,
    check_mode=False,
    cert=None,
    ca_cert=None,
    certificate_id=None,
    now=None,
    predict_arn=False,
    known_new=False,
):
    """Make the device certificate registered with ``status`` (default ACTIVE for a new one).

    Give the certificate as ``certificate_pem`` or an already loaded ``cert`` (the fleet module
    passes objects); the CA as ``ca_certificate_pem`` or ``ca_cert`` (then the certificate must
    chain to it and is registered with it), or neither (registered without a CA). With only
    ``certificate_id`` an existing certificate's status is managed (it cannot be registered).
    ``status=None`` leaves an existing certificate's status alone. ``known_new``: the caller knows
    the certificate is not registered (it issued it in this run: its id, the SHA-256 of its DER, is
    new), so no describe is made; should it be registered after all, the refused registration is
    read back and converged.

    One describe, at most one write. Returns an Outcome with certificate_id, certificate_arn,
    status and ca_certificate_id. In check mode a certificate still to be registered has the
    ARN AWS will give it when ``predict_arn`` (see :func:`predicted_certificate_arn`), else None.
    """
    status = normalize_status(status)
    if cert is None and certificate_pem is not None:
        cert = _x509.load_certificate(certificate_pem, what="certificate")
    if ca_cert is None and ca_certificate_pem is not None:
        ca_cert = _x509.load_certificate(ca_certificate_pem, what="CA certificate")
    if cert is None and certificate_id is None:
        raise IoTFleetError("No certificate given (certificate PEM or certificate id).")
    if cert is not None:
        validate_device_certificate(cert, ca_cert, now=now)
        local_id = _x509.certificate_id(cert)
        if certificate_id is not None and certificate_id != local_id:
            raise IoTFleetError(f"The certificate's id is {local_id}, not the certificate_id {certificate_id} given.")
        certificate_id = local_id
    ca_id = _x509.certificate_id(ca_cert) if ca_cert is not None else None

    current = None if known_new else client.get("describe_certificate", certificateId=certificate_id)
    if current is None:
        if cert is None:
            raise IoTFleetError(
                f"The certificate {certificate_id} is not registered; give its PEM to register it."
            )
        new_status = status or DEFAULT_STATUS
        after = _facts(certificate_id, new_status, ca_id)
        values = dict(certificate_id=certificate_id, certificate_arn=None, status=new_status, ca_certificate_id=ca_id)
        if check_mode:
            if predict_arn:
                values["certificate_arn"] = predicted_certificate_arn(client, certificate_id)
            return Outcome(True, before={}, after=after, **values)
        try:
            if ca_cert is not None:
                response = client.call(
                    "register_certificate",
                    certificatePem=_x509.certificate_pem(cert),
                    caCertificatePem=_x509.certificate_pem(ca_cert),
                    status=new_status,
                )
            else:
                response = client.call(
                    "register_certificate_without_ca", certificatePem=_x509.certificate_pem(cert), status=new_status
                )
        except IoTAWSError as e:
            if error_code(e) != "ResourceAlreadyExistsException":
                raise
            # registered meanwhile (another run): continue with what is there now
            current = client.get("describe_certificate", certificateId=certificate_id)
            if current is None:
                raise
            return _converge_existing(client, certificate_id, current, status, ca_id, check_mode)
        values["certificate_arn"] = response.get("certificateArn")
        return Outcome(True, before={}, after=after, **values)
    return _converge_existing(client, certificate_id, current, status, ca_id, check_mode)


def predicted_certificate_arn(client, certificate_id):
    """The ARN AWS IoT gives a certificate it registers: ``arn:<partition>:iot:<region>:<account>:cert/<id>``,
    the id being the SHA-256 of the DER (known locally). The account costs one STS GetCallerIdentity
    per module run (the client's :meth:`IoTClient.arn_prefix`); None when the client cannot tell."""
    prefix = client.arn_prefix()
    return f"{prefix}cert/{certificate_id}" if prefix else None


def _converge_existing(client, certificate_id, current, status, ca_id, check_mode):
    description = current.get("certificateDescription") or {}
    current_status = description.get("status")
    check_transition(certificate_id, current_status, status)
    ca_id = description.get("caCertificateId") or ca_id
    before = _facts(certificate_id, current_status, ca_id)
    changed = status is not None and status != current_status
    after = _facts(certificate_id, status if changed else current_status, ca_id)
    if changed and not check_mode:
        client.call("update_certificate", certificateId=certificate_id, newStatus=status)
    return Outcome(
        changed,
        before=before,
        after=after,
        certificate_id=certificate_id,
        certificate_arn=description.get("certificateArn"),
        status=after["status"],
        ca_certificate_id=ca_id,
    )


def _named(items):
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def remove_certificate(client, certificate_pem=None, cert=None, certificate_id=None, force=False, check_mode=False):
    """Deregister a device certificate: INACTIVE, detach (only with ``force``), delete.

    Without ``force`` a certificate with attached policies or things is refused before any write,
    naming them. A REVOKED certificate stays REVOKED (AWS deletes it as is).
    """
    if cert is None and certificate_pem is not None:
        cert = _x509.load_certificate(certificate_pem, what="certificate")
    if cert is not None:
        certificate_id = _x509.certificate_id(cert)
    if certificate_id is None:
        raise IoTFleetError("No certificate given (certificate PEM or certificate id).")
    current = client.get("describe_certificate", certificateId=certificate_id)
    if current is None:
        return Outcome(False, before={}, after={}, certificate_id=certificate_id, certificate_arn=None, status=None,
                       ca_certificate_id=None, detached_policies=[], detached_things=[])
    description = current.get("certificateDescription") or {}
    arn = description["certificateArn"]
    current_status = description.get("status")
    ca_id = description.get("caCertificateId")
    policies = sorted(p["policyName"] for p in client.paginate("list_attached_policies", "policies", target=arn))
    things = sorted(client.paginate("list_principal_things", "things", principal=arn))
    if (policies or things) and not force:
        parts = []
        if policies:
            parts.append(f"policies {_named(policies)}")
        if things:
            parts.append(f"things {_named(things)}")
        raise IoTFleetError(
            f"The certificate {certificate_id} is still attached to {' and '.join(parts)}. "
            "Detach them first, or set force=true to detach them and delete the certificate.",
            attached_policies=policies,
            attached_things=things,
        )
    values = dict(certificate_id=certificate_id, certificate_arn=arn, status=None, ca_certificate_id=ca_id,
                  detached_policies=policies, detached_things=things)
    before = _facts(certificate_id, current_status, ca_id)
    if check_mode:
        return Outcome(True, before=before, after={}, **values)
    _deactivate_and_detach(client, certificate_id, arn, current_status, policies, things)
    _delete_after_detach(client, certificate_id, waited_for=things)
    return Outcome(True, before=before, after={}, **values)


def _deactivate_and_detach(client, certificate_id, arn, status, policies, things):
    """The retirement order AWS wants: INACTIVE (REVOKED stays), then detach policies and things."""
    if status == "ACTIVE":
        client.call("update_certificate", certificateId=certificate_id, newStatus="INACTIVE")
    for policy in policies:
        client.delete("detach_policy", policyName=policy, target=arn)
    for thing in things:
        client.delete("detach_thing_principal", thingName=thing, principal=arn)


def revoke_certificate(client, certificate_id, check_mode=False):
    """Retire a certificate but keep it registered for audit: INACTIVE, detached, REVOKED.

    Returns True when something changed (a REVOKED, detached certificate is left alone).
    """
    current = client.get("describe_certificate", certificateId=certificate_id)
    if current is None:
        return False
    description = current.get("certificateDescription") or {}
    arn, status = description["certificateArn"], description.get("status")
    policies = [p["policyName"] for p in client.paginate("list_attached_policies", "policies", target=arn)]
    things = client.paginate("list_principal_things", "things", principal=arn)
    if status == "REVOKED" and not policies and not things:
        return False
    if not check_mode:
        _deactivate_and_detach(client, certificate_id, arn, status, policies, things)
        if status != "REVOKED":
            client.call("update_certificate", certificateId=certificate_id, newStatus="REVOKED")
    return True


DETACH_WAIT_SECONDS = 60.0


def _delete_after_detach(client, certificate_id, waited_for, timeout=None, clock=time.monotonic, sleep=time.sleep):
    """Delete the certificate; DetachThingPrincipal is asynchronous on AWS ("may take several
    seconds to propagate"), so a DeleteConflictException right after it is retried, bounded."""
    timeout = DETACH_WAIT_SECONDS if timeout is None else timeout
    deadline, pause = clock() + timeout, 0.5
    while True:
        try:
            client.delete("delete_certificate", certificateId=certificate_id)
            return
        except IoTAWSError as e:
            if error_code(e) != "DeleteConflictException":
                raise
            if clock() >= deadline:
                raise IoTAWSError(
                    message=f"The certificate {certificate_id} was detached from "
                            f"{_named(waited_for) if waited_for else 'its things'} but AWS IoT still refused to "
                            f"delete it after {timeout:.0f} s (DetachThingPrincipal propagates asynchronously); "
                            "run again to finish",
                    exception=e.exception) from e
            sleep(min(pause, max(0.0, deadline - clock())))
            pause = min(pause * 2, 5.0)


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def _info_entry(item, pem=None, ca_certificate_id=None, include_pem=False):
    entry = dict(
        certificate_id=item.get("certificateId"),
        certificate_arn=item.get("certificateArn"),
        status=item.get("status"),
        creation_date=_iso(item.get("creationDate")),
        ca_certificate_id=item.get("caCertificateId") or ca_certificate_id,
    )
    if include_pem:
        entry["certificate_pem"] = pem
    return entry


def certificate_info(client, certificate_ids=None, ca_certificate_id=None, include_pem=False):
    """Module values: ``certificates`` (list of dicts), by ids, by CA, or all.

    By ids: one describe each; ids that are not registered are left out. By CA: one paginated
    list; every entry carries that CA's id. All: one paginated list; ListCertificates does not
    return the CA id, so ``ca_certificate_id`` is only filled in when the certificates are
    described anyway (``include_pem``). The PEM (public) is included on request; list calls do
    not return it, so that costs one describe per certificate.
    """
    certificates = []
    if certificate_ids:
        for cert_id in certificate_ids:
            current = client.get("describe_certificate", certificateId=cert_id)
            if current is None:
                continue
            description = current.get("certificateDescription") or {}
            certificates.append(_info_entry(description, description.get("certificatePem"), include_pem=include_pem))
        return dict(changed=False, certificates=certificates)
    if ca_certificate_id:
        items = client.paginate("list_certificates_by_ca", "certificates", caCertificateId=ca_certificate_id)
    else:
        items = client.paginate("list_certificates", "certificates")
    for item in items:
        pem, ca_id = None, ca_certificate_id
        if include_pem:
            current = client.get("describe_certificate", certificateId=item["certificateId"])
            if current is None:
                continue  # deleted meanwhile
            description = current.get("certificateDescription") or {}
            pem = description.get("certificatePem")
            ca_id = ca_id or description.get("caCertificateId")
        certificates.append(_info_entry(item, pem, ca_certificate_id=ca_id, include_pem=include_pem))
    return dict(changed=False, certificates=certificates)


def run_certificate(client, *, state="present", check_mode=False, certificate=None, certificate_content=None,
                    certificate_id=None, ca_certificate=None, ca_certificate_content=None, status=DEFAULT_STATUS,
                    force=False):
    """What ``iot_certificate`` does: load the inputs (paths or content), then ensure or remove."""
    cert = None
    if certificate is not None or certificate_content is not None:
        cert = _x509.load_certificate(certificate_content, path=certificate, what="certificate")
    if state == "absent":
        return remove_certificate(client, cert=cert, certificate_id=certificate_id, force=force, check_mode=check_mode)
    ca_cert = None
    if ca_certificate is not None or ca_certificate_content is not None:
        ca_cert = _x509.load_certificate(ca_certificate_content, path=ca_certificate, what="CA certificate")
    return ensure_certificate(client, status=status, check_mode=check_mode, cert=cert, ca_cert=ca_cert,
                              certificate_id=certificate_id, predict_arn=True)
