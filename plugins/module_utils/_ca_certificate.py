# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The fleet CA registered with AWS IoT (RegisterCACertificate and friends).

All input is checked locally before any AWS call: the PEM parses, the certificate is a CA and
within its validity, the private key matches it, the registration config is valid JSON. The
certificate id is computed locally (SHA-256 of the DER), so one describe tells whether the CA is
registered. In DEFAULT mode registration proves possession of the CA key with a verification
certificate (CN = AWS's registration code, signed by the CA key) minted in memory; the CA key
never leaves the process and never appears in results or diffs.
"""

import re

from ansible_collections.iotfleet.aws.plugins.module_utils import _kms
from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import CA_CERTIFICATE_STATUSES
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import normalize_status as _normalize_status
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import dump_json
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import load_json_document

CERTIFICATE_MODES = {"default": "DEFAULT", "sni_only": "SNI_ONLY"}
CA_STATUSES = CA_CERTIFICATE_STATUSES
# user option name -> AWS RegistrationConfig key
REGISTRATION_KEYS = {"template_body": "templateBody", "template_name": "templateName", "role_arn": "roleArn"}
# how many ids an error message names before "and N more"
MAX_NAMED = 10


def normalize_status(status):
    """ACTIVE / INACTIVE (lower case accepted); None stays None."""
    return _normalize_status(status, CA_STATUSES, "CA certificate")


def normalize_mode(mode):
    value = CERTIFICATE_MODES.get(str(mode).lower()) if mode is not None else "DEFAULT"
    if value is None:
        raise IoTFleetError(f"Invalid certificate_mode {mode!r}: use default or sni_only.")
    return value


def normalize_registration_config(config):
    """User registration_config (snake_case, template_body dict or JSON) -> AWS shape, or None.

    Only keys the user set (not None) are returned; ``templateBody`` becomes canonical JSON text.
    """
    if config is None:
        return None
    if not isinstance(config, dict):
        raise IoTFleetError(f"registration_config must be a dict, got {type(config).__name__}.")
    unknown = sorted(set(config) - set(REGISTRATION_KEYS))
    if unknown:
        raise IoTFleetError(
            f"Unknown registration_config keys {unknown}: use {sorted(REGISTRATION_KEYS)}."
        )
    result = {}
    for option, key in REGISTRATION_KEYS.items():
        value = config.get(option)
        if value is None:
            continue
        if option == "template_body":
            body = load_json_document(value, what="registration_config.template_body")
            if not isinstance(body, dict):
                raise IoTFleetError("registration_config.template_body must be a JSON object.")
            value = dump_json(body)
        elif not isinstance(value, str):
            raise IoTFleetError(f"registration_config.{option} must be a string.")
        result[key] = value
    return result


def _canonical_registration_config(config):
    """An AWS RegistrationConfig (as described) in comparable form: templateBody parsed."""
    result = {}
    for key, value in (config or {}).items():
        if value is None or value == "":
            continue
        if key == "templateBody":
            try:
                value = dump_json(load_json_document(value, what="current template body"))
            except IoTFleetError:
                pass  # compare the raw text then
        result[key] = value
    return result


def registration_config_changes(desired, current):
    """The RegistrationConfig to send (current merged with desired), or None if nothing differs.

    Keys the user did not declare keep their current value.
    """
    if desired is None:
        return None
    current = _canonical_registration_config(current)
    if all(current.get(k) == v for k, v in desired.items()):
        return None
    merged = dict(current)
    merged.update(desired)
    return merged


def _facts(certificate_id, mode, status, auto, registration_config):
    facts = dict(certificate_id=certificate_id, certificate_mode=mode, status=status)
    if auto is not None:
        facts["auto_registration_status"] = auto
    if registration_config is not None:
        facts["registration_config"] = _public_registration_config(registration_config)
    return facts


def _public_registration_config(config):
    """RegistrationConfig as returned to the user: snake_case, template_body as a dict."""
    if not config:
        return {}
    result = {}
    for option, key in REGISTRATION_KEYS.items():
        value = config.get(key)
        if value is None or value == "":
            continue
        if option == "template_body":
            try:
                value = load_json_document(value)
            except IoTFleetError:
                pass
        result[option] = value
    return result


def load_ca(ca_certificate=None, ca_certificate_path=None, ca_private_key=None, ca_private_key_path=None,
            passphrase=None, now=None, need_key=False):
    """Load and check the CA locally: ``(cert, key or None)``; IoTFleetError on any problem."""
    cert = _x509.load_certificate(ca_certificate, path=ca_certificate_path, what="CA certificate")
    if not _x509.is_ca(cert):
        raise IoTFleetError(
            f"The CA certificate is not a CA: it has no basicConstraints CA=true ({_x509.describe(cert)})."
        )
    _x509.check_validity(cert, now=now, what="CA certificate")
    key = None
    if ca_private_key is not None or ca_private_key_path is not None:
        key = _x509.load_private_key(ca_private_key, path=ca_private_key_path, what="CA private key",
                                     passphrase=passphrase)
        if not _x509.key_matches_certificate(key, cert):
            raise IoTFleetError(
                f"The CA private key does not match the CA certificate ({_x509.describe(cert)})."
            )
    elif need_key:
        raise IoTFleetError("The CA private key is required.")
    return cert, key


def _named(ids):
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def ensure_ca_certificate(
    client,
    ca_cert,
    ca_key=None,
    certificate_mode="default",
    status="active",
    allow_auto_registration=None,
    registration_config=None,
    check_mode=False,
    now=None,
):
    """Register the CA (or bring its status / auto-registration / registration config in line).

    ``ca_cert``/``ca_key``: loaded and checked objects (see :func:`load_ca`; PEM text works too).
    ``ca_key`` is required only when the CA must be registered in DEFAULT mode. Unset options
    (None) are left as they are on an existing CA.
    """
    mode = normalize_mode(certificate_mode)
    status = normalize_status(status)
    desired_config = normalize_registration_config(registration_config)
    if allow_auto_registration is not None and not isinstance(allow_auto_registration, bool):
        raise IoTFleetError("allow_auto_registration must be a boolean.")
    ca_cert, ca_key = load_ca(ca_cert, ca_private_key=ca_key, now=now)
    cert_id = _x509.certificate_id(ca_cert)
    ca_pem = _x509.certificate_pem(ca_cert)
    desired_auto = None if allow_auto_registration is None else ("ENABLE" if allow_auto_registration else "DISABLE")

    current = client.get("describe_ca_certificate", certificateId=cert_id)
    if current is None:
        if mode == "DEFAULT" and ca_key is None:
            raise IoTFleetError(
                "The CA private key (ca_private_key, ca_private_key_content or ca_kms_key) is required to register a CA "
                "in certificate_mode=default: AWS IoT wants a verification certificate signed by it."
            )
        status = status or "ACTIVE"
        after = _facts(cert_id, mode, status, desired_auto or "DISABLE", desired_config or {})
        values = dict(certificate_id=cert_id, certificate_arn=None, status=status,
                      auto_registration_status=after["auto_registration_status"],
                      registration_config=after["registration_config"], certificate_mode=mode)
        if check_mode:
            return Outcome(True, before={}, after=after, **values)
        kwargs = dict(caCertificate=ca_pem, setAsActive=status == "ACTIVE", certificateMode=mode)
        if allow_auto_registration is not None:
            kwargs["allowAutoRegistration"] = allow_auto_registration
        if desired_config:
            kwargs["registrationConfig"] = desired_config
        if mode == "DEFAULT":
            code = client.call("get_registration_code")["registrationCode"]
            verification = _x509.verification_certificate(ca_cert, ca_key, code, now=now)
            kwargs["verificationCertificate"] = _x509.certificate_pem(verification)
        response = client.call("register_ca_certificate", **kwargs)
        values["certificate_arn"] = response.get("certificateArn")
        return Outcome(True, before={}, after=after, **values)

    description = current.get("certificateDescription") or {}
    current_mode = description.get("certificateMode")
    if current_mode and current_mode != mode:
        raise IoTFleetError(
            f"The CA {cert_id} is registered with certificate_mode {current_mode.lower()}, not {mode.lower()}: "
            "the mode cannot be changed; remove the CA (state=absent) and register it again."
        )
    current_status = description.get("status")
    # autoRegistrationStatus is always described by AWS; when a server does not report it
    # (moto), it cannot be compared and is left alone rather than rewritten on every run.
    current_auto = description.get("autoRegistrationStatus")
    current_config = current.get("registrationConfig") or {}

    update = {}
    if status is not None and status != current_status:
        update["newStatus"] = status
    if desired_auto is not None and current_auto is not None and desired_auto != current_auto:
        update["newAutoRegistrationStatus"] = desired_auto
    new_config = registration_config_changes(desired_config, current_config)
    if new_config is not None:
        update["registrationConfig"] = new_config

    before = _facts(cert_id, current_mode or mode, current_status, current_auto,
                    _canonical_registration_config(current_config))
    after_config = new_config if new_config is not None else _canonical_registration_config(current_config)
    after = _facts(cert_id, current_mode or mode, update.get("newStatus", current_status),
                   update.get("newAutoRegistrationStatus", current_auto), after_config)
    values = dict(
        certificate_id=cert_id,
        certificate_arn=description.get("certificateArn"),
        status=after["status"],
        auto_registration_status=after.get("auto_registration_status"),
        registration_config=after["registration_config"],
        certificate_mode=after["certificate_mode"],
    )
    if update and not check_mode:
        client.call("update_ca_certificate", certificateId=cert_id, **update)
    return Outcome(bool(update), before=before, after=after, **values)


def remove_ca_certificate(client, ca_cert, force=False, check_mode=False):
    """Deregister the CA: INACTIVE, then delete.

    Refused while ACTIVE device certificates are registered under the CA, unless ``force``:
    then those device certificates are set INACTIVE first (they are not deleted; devices using
    them can no longer connect). Returns ``deactivated_certificates`` (ids).
    """
    if not hasattr(ca_cert, "public_bytes"):
        ca_cert = _x509.load_certificate(ca_cert, what="CA certificate")
    cert_id = _x509.certificate_id(ca_cert)
    current = client.get("describe_ca_certificate", certificateId=cert_id)
    if current is None:
        return Outcome(False, before={}, after={}, certificate_id=cert_id, certificate_arn=None, status=None,
                       deactivated_certificates=[])
    description = current.get("certificateDescription") or {}
    before = _facts(cert_id, description.get("certificateMode") or "DEFAULT", description.get("status"),
                    description.get("autoRegistrationStatus"),
                    _canonical_registration_config(current.get("registrationConfig")))
    devices = client.paginate("list_certificates_by_ca", "certificates", caCertificateId=cert_id)
    active = sorted(c["certificateId"] for c in devices if c.get("status") == "ACTIVE")
    if active and not force:
        raise IoTFleetError(
            f"The CA {cert_id} still has {len(active)} ACTIVE device certificate(s) registered: {_named(active)}. "
            "Deactivate or remove them first, or set force=true to set them INACTIVE and remove the CA.",
            active_certificates=active,
        )
    values = dict(certificate_id=cert_id, certificate_arn=description.get("certificateArn"), status=None,
                  deactivated_certificates=active)
    if check_mode:
        return Outcome(True, before=before, after={}, **values)
    for device_id in active:
        client.call("update_certificate", certificateId=device_id, newStatus="INACTIVE")
    if description.get("status") == "ACTIVE":
        client.call("update_ca_certificate", certificateId=cert_id, newStatus="INACTIVE")
    client.delete("delete_ca_certificate", certificateId=cert_id)
    return Outcome(True, before=before, after={}, **values)


def run_ca_certificate(client, *, state="present", check_mode=False, ca_certificate=None,
                       ca_certificate_content=None, ca_private_key=None, ca_private_key_content=None,
                       ca_private_key_passphrase=None, certificate_mode=None, status=None,
                       allow_auto_registration=None, registration_config=None, force=False, ca_kms_key=None,
                       make_kms_client=None):
    """What ``iot_ca_certificate`` does: load the inputs (paths or content), then ensure or remove.
    ``ca_kms_key``: the CA key is that AWS KMS key (signed through the client ``make_kms_client()`` makes, only then)
    instead of a key file or content."""
    if state == "absent":
        # an expired CA, or one whose key is gone, must still be removable: parse only
        cert = _x509.load_certificate(ca_certificate_content, path=ca_certificate, what="CA certificate")
        return remove_ca_certificate(client, cert, force=force, check_mode=check_mode)
    # everything the options say is checked before the first call
    normalize_mode(certificate_mode)
    normalize_status(status)
    normalize_registration_config(registration_config)
    ca_signing_key = _kms.signing_key(make_kms_client(), ca_kms_key) if ca_kms_key else None
    cert, key = load_ca(
        ca_certificate_content,
        ca_certificate_path=ca_certificate,
        ca_private_key=ca_signing_key if ca_signing_key is not None else ca_private_key_content,
        ca_private_key_path=None if ca_signing_key is not None else ca_private_key,
        passphrase=ca_private_key_passphrase,
    )
    return ensure_ca_certificate(
        client,
        cert,
        key,
        certificate_mode=certificate_mode,
        status=status,
        allow_auto_registration=allow_auto_registration,
        registration_config=registration_config,
        check_mode=check_mode,
    )


# A rotation's next CA is named ``<common name[:43]> <UTC time>`` (the ca role): one fleet, several subjects.
ROTATION_PREFIX_LENGTH = 43
_ROTATION_TIME_SUFFIX = re.compile(r" \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def ca_base_name(cn):
    """A fleet CA's name without the creation time a CA rotation appends to its CN."""
    return _ROTATION_TIME_SUFFIX.sub("", cn or "")


def is_fleet_ca_name(cn, fleet_common_name):
    """Whether a CA's subject CN is the fleet CA's: ``fleet_common_name`` itself, or a rotation's
    next CA (``<fleet_common_name[:43]> <time>``). The one rule the ca role finds the fleet CA in AWS
    by and drift names a foreign fleet-like CA by."""
    if not cn or not fleet_common_name:
        return False
    return cn == fleet_common_name or cn.startswith(fleet_common_name[:ROTATION_PREFIX_LENGTH] + " ")


def _ca_entry(description):
    pem = description.get("certificatePem")
    entry = dict(certificate_id=description.get("certificateId"), certificate_arn=description.get("certificateArn"),
                 status=description.get("status"), certificate_mode=description.get("certificateMode"),
                 auto_registration_status=description.get("autoRegistrationStatus"),
                 creation_date=description.get("creationDate"), common_name=None, not_after=None,
                 certificate_pem=pem)
    if pem:
        try:
            cert = _x509.load_certificate(pem, what="registered CA certificate")
            entry["common_name"] = _x509.common_name(cert)
            entry["not_after"] = _x509.not_valid_after(cert).isoformat()
        except IoTFleetError:
            pass
    if hasattr(entry["creation_date"], "isoformat"):
        entry["creation_date"] = entry["creation_date"].isoformat()
    return entry


def ca_certificate_info(client, common_name=None, certificate_ids=None, statuses=None):
    """The CA certificates registered in the account and region (oldest first), each described
    (its PEM included: it is public); narrowed to the fleet CA's name (:func:`is_fleet_ca_name`),
    to ``certificate_ids`` and to ``statuses``. One ListCACertificates pass, then one
    DescribeCACertificate per CA kept by id and status."""
    wanted = {s.upper() for s in statuses} if statuses else None
    if certificate_ids:
        listed = [dict(certificateId=i) for i in certificate_ids]
    else:
        listed = client.paginate("list_ca_certificates", "certificates", pageSize=250, ascendingOrder=True)
    result = []
    for item in listed:
        if wanted and item.get("status") and item["status"] not in wanted:
            continue
        current = client.get("describe_ca_certificate", certificateId=item["certificateId"])
        if current is None:
            continue
        entry = _ca_entry(current.get("certificateDescription") or {})
        if wanted and entry["status"] not in wanted:
            continue
        if common_name and not is_fleet_ca_name(entry["common_name"], common_name):
            continue
        result.append(entry)
    result.sort(key=lambda e: (str(e["creation_date"] or ""), e["certificate_id"] or ""))
    return dict(changed=False, ca_certificates=result)
