"""The stand-in's control plane: moto's IoT backend, plus what AWS checks and moto does not.

A WSGI middleware in front of moto's server. Each request is matched to its IoT operation through
botocore's model (api.py); an operation this module implements is answered here, on moto's own
backend objects (one registry for both planes), every other one goes to moto unchanged.

What is added or corrected (see ../shared/LAB-FACTS.md, "Does NOT check" and "Differs"):
- CA registration: the verification certificate's CN must be the account's registration code
  (stable per account) and it must be signed by the CA key (DEFAULT mode; SNI_ONLY needs none);
  the CA must be a CA; ARNs are ``cacert/``; certificate mode and auto-registration status are
  kept and described; ``list_ca_certificates``; a CA is deleted only when INACTIVE.
- Device certificates: valid PEM, issued (signature checked) by a registered CA that is ACTIVE,
  within validity; default status INACTIVE; REVOKED is final; ``caCertificateId`` described.
- ``create_thing`` on an existing name with other settings is a conflict; thing names checked.
- A stable data endpoint (``describe_endpoint``), the name the lab's devices resolve to the broker.
- Provisioning templates with versions, and ``register_thing`` (templates.py, also used by JITP).
- ``set_default_policy_version`` with an unknown version is refused (moto leaves no default).
- DetachThingPrincipal propagates asynchronously: deleting the certificate within ``detach_delay``
  seconds (2 s; AWS says "several seconds") is a DeleteConflictException, as on AWS.
- Thing types: ``DeprecateThingType`` records ``deprecationDate`` (moto reports none; undoing the
  deprecation removes it, a second deprecation keeps the first date). ``DeleteThingType`` (moto
  deletes at once, deprecated or not, things or not) is an InvalidRequestException unless the type
  is deprecated, no thing has it (AWS's API reference) and it has been deprecated for
  ``thing_type_delete_delay`` seconds (300 as on AWS, with AWS's message "Cannot delete thing type
  : NAME. Please wait for 5 minutes after deprecation and then retry"; the tests lower the delay).
- Thing groups (moto: names unchecked, HTTP 500 on a missing parent, no dynamic groups at all):
  names checked; a missing parent is a ResourceNotFoundException; an existing name with another
  parent is a conflict (with other properties too: moto's own check). ``expectedVersion`` of the
  update and delete calls: any version but the current one is a VersionConflictException (moto lets
  0 through, and ignores it on DeleteThingGroup); attribute names and values must match the API's
  patterns (no spaces, at most 800 characters; moto stores anything). Dynamic groups (``Create/Update/DeleteDynamicThingGroup``) are moto
  thing-group objects with a ``dynamic`` dict (queryString, indexName, queryVersion), so
  ``ListThingGroups`` and ``DescribeThingGroup`` show them (with ``status`` ACTIVE). As the
  developer guide says, and AWS answers: creating one needs fleet indexing on (moto's
  ``UpdateIndexingConfiguration``; ``thingIndexingMode`` OFF is an InvalidRequestException), the
  index is ``AWS_Things`` and the query version ``2017-09-30``, at most 100 per account
  (LimitExceededException), a query moto's matcher cannot parse is an InvalidQueryException; a
  dynamic group cannot be a parent, cannot get things added (AddThingToThingGroup,
  UpdateThingGroupsForThing) nor policies attached, and is updated and deleted with the dynamic
  calls only (the static calls on it, and the dynamic calls on a static group, are refused).
  Membership: ``ListThingsInThingGroup`` of a dynamic group evaluates its query when asked, with
  moto's matcher (``thingName:``, ``thingTypeName:`` with ``*``/``?``, ``thingGroupNames:``,
  ``attributes.NAME:VALUE`` exact, AND/OR/NOT and parentheses; no ranges, shadows or
  connectivity); AWS evaluates asynchronously (status BUILDING/REBUILDING), the stand-in at once.
  ``ListThingGroupsForThing`` lists static groups only (dynamic membership is not stored).
- AddThingToThingGroup / UpdateThingGroupsForThing: a thing is in at most 10 static groups, and
  in at most one group of a hierarchy (no two groups with the same root), as the developer guide
  says; refused with InvalidRequestException before any write.
- Wording: where AWS's exact message is not documented, the message is the lab's (the code and
  HTTP status are AWS's).
Every write bumps ``generation``: the data plane re-reads the registry after a change.

Keyed lookups (``index_backend``): moto finds a thing by name, a certificate by id or ARN, the
attachments of a principal, of a thing or of a policy, and the certificates of a CA by scanning
every object, so its cost per call grows with the registry (AWS's does not). Each moto registry
dict is replaced by a ``_Registry`` that keeps secondary indexes on every set and delete, and
the moto methods that scanned use them: O(1) per lookup, O(result) per list.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from api import ApiError, Router, to_wire  # noqa: E402  (lab/iotcore on sys.path)

DEFAULT_ACCOUNT = "123456789012"
THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
ATTRIBUTE_NAME_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#-]{1,128}$")        # botocore's AttributeName
ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}$")   # botocore's AttributeValue
MAX_GROUPS_PER_THING = 10
MAX_DYNAMIC_GROUPS = 100
INDEX_NAME = "AWS_Things"
QUERY_VERSION = "2017-09-30"
THING_TYPE_DELETE_DELAY = 300.0
CERT_STATUSES = {"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def load_pem(pem: str | None, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate((pem or "").encode())
    except ValueError:
        raise ApiError("CertificateValidationException", f"The {what} is not a valid PEM certificate") from None


def cert_id(cert: x509.Certificate) -> str:
    """AWS's certificate id: SHA-256 of the DER."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and friends
        return False


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


class ControlPlane:
    """moto's IoT backend with AWS's checks. ``lock`` serialises the registry for both planes."""

    def __init__(self, endpoint_prefix: str, seed: str, on_ca_change: Callable[[], None] | None = None,
                 detach_delay: float = 2.0, thing_type_delete_delay: float = THING_TYPE_DELETE_DELAY):
        from moto.iot.models import iot_backends

        self.backends = iot_backends
        self.endpoint_prefix = endpoint_prefix
        self.seed = seed
        self.on_ca_change = on_ca_change or (lambda: None)
        self.lock = threading.RLock()
        self.generation = 0
        self.router = Router()
        self.templates: dict[tuple[str, str], dict[str, dict]] = {}
        self.ca_extra: dict[str, dict] = {}   # CA id -> mode, auto-registration status, dates
        # DetachThingPrincipal is asynchronous on AWS: a certificate detached less than detach_delay
        # seconds ago cannot be deleted yet (DeleteConflictException), as AWS answers
        self.detach_delay = detach_delay
        self.detached: dict[str, float] = {}   # certificate ARN -> monotonic time of its last detach
        # DeleteThingType: AWS deletes a type only 5 minutes after its deprecation
        self.thing_type_delete_delay = thing_type_delete_delay

    # ------------------------------------------------------------------ registry access
    def backend(self, region: str, account: str = DEFAULT_ACCOUNT):
        return index_backend(self.backends[account][region])

    def registration_code(self, region: str, account: str = DEFAULT_ACCOUNT) -> str:
        return hashlib.sha256(f"{self.seed}:{account}:{region}".encode()).hexdigest()

    def endpoint(self, endpoint_type: str, region: str) -> str:
        names = {
            "iot:Data": f"{self.endpoint_prefix}.iot.{region}.amazonaws.com",
            "iot:Data-ATS": f"{self.endpoint_prefix}-ats.iot.{region}.amazonaws.com",
            "iot:CredentialProvider": f"{self.endpoint_prefix}.credentials.iot.{region}.amazonaws.com",
            "iot:Jobs": f"{self.endpoint_prefix}.jobs.iot.{region}.amazonaws.com",
        }
        if endpoint_type not in names:
            raise ApiError("InvalidRequestException", f"Endpoint type {endpoint_type} not recognized.")
        return names[endpoint_type]

    def find_ca(self, backend, cert: x509.Certificate):
        """The registered CA (moto object) that issued cert, or None."""
        for ca in backend.ca_certificates.values():
            ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
            if ca_cert.subject == cert.issuer and issued_by(cert, ca_cert):
                return ca
        return None

    def ca_facts(self, ca) -> dict:
        return self.ca_extra.setdefault(ca.certificate_id, {
            "mode": "DEFAULT", "auto": "DISABLE", "created": now(), "modified": now()})

    # ------------------------------------------------------------------ WSGI
    def wsgi(self, moto_app):
        def app(environ, start_response):
            method = environ["REQUEST_METHOD"]
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            op, path_params = self.router.match(method, environ.get("PATH_INFO", ""))
            handler = getattr(self, "op_" + _snake(op.name), None) if op is not None else None
            with self.lock:
                if method != "GET":
                    self.generation += 1
                if handler is None:
                    import io
                    self.backend(_region(environ))   # moto's own operations use the indexes too
                    environ["wsgi.input"] = io.BytesIO(body)
                    return moto_app(environ, start_response)
                region = _region(environ)
                try:
                    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
                    params = Router.parse(op, path_params, environ.get("QUERY_STRING", ""), body, headers)
                    result = handler(self.backend(region), region, params)
                    status, payload, headers = "200 OK", to_wire(result or {}), []
                except ApiError as e:
                    status = f"{e.status} {e.code}"
                    payload = {"message": e.message}
                    headers = [("x-amzn-ErrorType", e.code)]
                except Exception as e:  # moto's own exceptions carry code and description
                    code = getattr(e, "error_type", None)
                    if code is None:
                        raise
                    status = f"{getattr(e, 'code', 400)} {code}"
                    payload = {"message": getattr(e, "message", str(e))}
                    headers = [("x-amzn-ErrorType", code)]
            data = json.dumps(payload).encode()
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(data))), *headers])
            return [data]
        return app

    # ------------------------------------------------------------------ endpoint, code
    def op_describe_endpoint(self, backend, region, p):
        return {"endpointAddress": self.endpoint(p.get("endpointType") or "iot:Data", region)}

    def op_get_registration_code(self, backend, region, p):
        return {"registrationCode": self.registration_code(region)}

    # ------------------------------------------------------------------ CA certificates
    def op_register_ca_certificate(self, backend, region, p):
        ca = load_pem(p.get("caCertificate"), "CA certificate")
        if not is_ca(ca):
            raise ApiError("CertificateValidationException", "The CA certificate is not a CA (basicConstraints CA:TRUE)")
        mode = p.get("certificateMode") or "DEFAULT"
        if mode not in ("DEFAULT", "SNI_ONLY"):
            raise ApiError("InvalidRequestException", f"Unknown certificateMode {mode}")
        cid = cert_id(ca)
        if cid in backend.ca_certificates:
            raise ApiError("ResourceAlreadyExistsException", "The certificate is already provisioned or registered", 409)
        if mode == "DEFAULT":
            if not p.get("verificationCertificate"):
                raise ApiError("InvalidRequestException", "verificationCertificate is required in DEFAULT mode")
            ver = load_pem(p["verificationCertificate"], "verification certificate")
            cns = [a.value for a in ver.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
            if cns != [self.registration_code(region)]:
                raise ApiError("RegistrationCodeValidationException",
                               "The verification certificate's common name is not this account's registration code")
            if not issued_by(ver, ca):
                raise ApiError("CertificateValidationException",
                               "The verification certificate is not signed by the CA certificate's key")
        obj = backend.register_ca_certificate(p["caCertificate"], bool(p.get("setAsActive")),
                                              p.get("registrationConfig") or {})
        obj.arn = obj.arn.replace(":cert/", ":cacert/")
        facts = self.ca_facts(obj)
        facts.update(mode=mode, auto="ENABLE" if p.get("allowAutoRegistration") else "DISABLE")
        self.on_ca_change()
        return {"certificateId": obj.certificate_id, "certificateArn": obj.arn}

    def _ca(self, backend, cid):
        if cid not in backend.ca_certificates:
            raise ApiError("ResourceNotFoundException", f"The CA certificate {cid} does not exist", 404)
        return backend.ca_certificates[cid]

    def op_describe_ca_certificate(self, backend, region, p):
        ca = self._ca(backend, p["certificateId"])
        facts = self.ca_facts(ca)
        cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        config = {k: v for k, v in (ca.registration_config or {}).items() if v}
        return {
            "certificateDescription": {
                "certificateArn": ca.arn, "certificateId": ca.certificate_id, "status": ca.status,
                "certificatePem": ca.certificate_pem, "ownedBy": backend.account_id,
                "creationDate": facts["created"], "lastModifiedDate": facts["modified"],
                "autoRegistrationStatus": facts["auto"], "certificateMode": facts["mode"],
                "customerVersion": 1, "generationId": ca.certificate_id[:36],
                "validity": {"notBefore": cert.not_valid_before_utc, "notAfter": cert.not_valid_after_utc},
            },
            "registrationConfig": config,
        }

    def op_update_ca_certificate(self, backend, region, p):
        ca = self._ca(backend, p["certificateId"])
        facts = self.ca_facts(ca)
        if p.get("newStatus"):
            if p["newStatus"] not in ("ACTIVE", "INACTIVE"):
                raise ApiError("InvalidRequestException", f"Invalid CA status {p['newStatus']}")
            ca.status = p["newStatus"]
        if p.get("newAutoRegistrationStatus"):
            facts["auto"] = p["newAutoRegistrationStatus"]
        if p.get("removeAutoRegistration"):
            ca.registration_config = {}
        elif p.get("registrationConfig") is not None:
            ca.registration_config = p["registrationConfig"]
        facts["modified"] = now()
        self.on_ca_change()
        return {}

    def op_delete_ca_certificate(self, backend, region, p):
        ca = self._ca(backend, p["certificateId"])
        if ca.status == "ACTIVE":
            raise ApiError("CertificateStateException", "The CA certificate must be INACTIVE before it is deleted", 406)
        del backend.ca_certificates[ca.certificate_id]
        self.ca_extra.pop(ca.certificate_id, None)
        self.on_ca_change()
        return {}

    def op_list_ca_certificates(self, backend, region, p):
        cas = sorted(backend.ca_certificates.values(), key=lambda c: self.ca_facts(c)["created"],
                     reverse=not p.get("ascendingOrder", False))
        return {"certificates": [{"certificateArn": c.arn, "certificateId": c.certificate_id, "status": c.status,
                                  "creationDate": self.ca_facts(c)["created"]} for c in cas]}

    # ------------------------------------------------------------------ device certificates
    def check_registration(self, backend, pem: str, ca_pem: str | None, status: str):
        """AWS's checks of a device certificate registration, without writing: (certificate, CA)."""
        cert = load_pem(pem, "certificate")
        if ca_pem:
            cid = cert_id(load_pem(ca_pem, "CA certificate"))
            ca = backend.ca_certificates.get(cid)
            if ca is None:
                raise ApiError("CertificateValidationException", "The CA certificate is not registered in this account")
        else:
            ca = self.find_ca(backend, cert)
            if ca is None:
                raise ApiError("CertificateValidationException",
                               "The certificate's issuer is not a CA registered in this account")
        if not issued_by(cert, x509.load_pem_x509_certificate(ca.certificate_pem.encode())):
            raise ApiError("CertificateValidationException", "The certificate is not signed by the CA certificate")
        if ca.status != "ACTIVE":
            raise ApiError("CertificateStateException", f"The CA certificate {ca.certificate_id} is {ca.status}", 406)
        if not cert.not_valid_before_utc <= now() <= cert.not_valid_after_utc:
            raise ApiError("CertificateValidationException", "The certificate is not within its validity period")
        if status not in CERT_STATUSES:
            raise ApiError("InvalidRequestException", f"Invalid certificate status {status}")
        if cert_id(cert) in backend.certificates:
            raise ApiError("ResourceAlreadyExistsException", "The certificate is already provisioned or registered", 409)
        return cert, ca

    def register(self, backend, pem: str, ca_pem: str | None, status: str):
        """Register a device certificate after AWS's checks; the moto object."""
        cert, ca = self.check_registration(backend, pem, ca_pem, status)
        obj = backend.register_certificate(pem, None, False, status)
        obj.ca_certificate_id = ca.certificate_id
        backend.certificates[obj.certificate_id] = obj   # indexed again, now under its CA
        obj.validity_not_before, obj.validity_not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        return obj

    def op_register_certificate(self, backend, region, p):
        status = "ACTIVE" if p.get("setAsActive") else (p.get("status") or "INACTIVE")
        obj = self.register(backend, p.get("certificatePem"), p.get("caCertificatePem"), status)
        return {"certificateId": obj.certificate_id, "certificateArn": obj.arn}

    def _cert(self, backend, cid):
        if cid not in backend.certificates:
            raise ApiError("ResourceNotFoundException", f"The certificate {cid} does not exist", 404)
        return backend.certificates[cid]

    def op_describe_certificate(self, backend, region, p):
        c = self._cert(backend, p["certificateId"])
        d = c.to_description_dict()
        d.update(caCertificateId=c.ca_certificate_id, certificateMode="DEFAULT", customerVersion=1,
                 generationId=c.certificate_id[:36])
        return {"certificateDescription": d}

    def op_update_certificate(self, backend, region, p):
        c = self._cert(backend, p["certificateId"])
        new = p.get("newStatus")
        if new not in CERT_STATUSES or new in ("PENDING_TRANSFER", "PENDING_ACTIVATION"):
            raise ApiError("InvalidRequestException", f"Invalid certificate status {new}")
        if c.status == "REVOKED" and new != "REVOKED":
            raise ApiError("CertificateStateException", "The certificate is REVOKED: that status is final", 406)
        c.status = new
        c.last_modified_date = now()
        return {}

    def op_detach_thing_principal(self, backend, region, p):
        backend.detach_thing_principal(p["thingName"], p["principal"])
        self.detached[p["principal"]] = time.monotonic()
        return {}

    def op_delete_certificate(self, backend, region, p):
        c = self._cert(backend, p["certificateId"])
        if time.monotonic() - self.detached.get(c.arn, float("-inf")) < self.detach_delay:
            raise ApiError("DeleteConflictException",
                           f"The certificate {c.certificate_id} is still attached to a thing (a detach is propagating)", 409)
        backend.delete_certificate(c.certificate_id, bool(p.get("forceDelete")))
        self.detached.pop(c.arn, None)
        return {}

    # ------------------------------------------------------------------ things, policies
    def op_create_thing(self, backend, region, p):
        name = p.get("thingName") or ""
        if not THING_NAME_RE.match(name):
            raise ApiError("InvalidRequestException", f"Thing name {name!r} must match [a-zA-Z0-9:_-]{{1,128}}")
        existing = find_thing(backend, name)
        attrs = (p.get("attributePayload") or {}).get("attributes") or {}
        if existing is not None:
            same = (existing.attributes == attrs
                    and (existing.thing_type.thing_type_name if existing.thing_type else None) == p.get("thingTypeName")
                    and existing.billing_group_name == p.get("billingGroupName"))
            if not same:
                raise ApiError("ResourceAlreadyExistsException",
                               f"Thing {name} already exists in account with different attributes", 409)
            thing = existing
        else:
            thing = backend.create_thing(name, p.get("thingTypeName"), p.get("attributePayload"),
                                         p.get("billingGroupName"))
        return {"thingName": thing.thing_name, "thingArn": thing.arn, "thingId": thing.thing_id}

    def op_set_default_policy_version(self, backend, region, p):
        policy = backend.get_policy(p["policyName"])
        if p["policyVersionId"] not in [v.version_id for v in policy.versions]:
            raise ApiError("ResourceNotFoundException", f"Policy version {p['policyVersionId']} not found", 404)
        backend.set_default_policy_version(p["policyName"], p["policyVersionId"])
        return {}

    def op_attach_policy(self, backend, region, p):
        group = next((g for g in backend.thing_groups.values() if g.arn == p.get("target")), None)
        if group is not None and _dynamic(group):
            raise ApiError("InvalidRequestException",
                           f"Cannot attach a policy to dynamic thing group {group.thing_group_name}: dynamic thing "
                           "groups can't have policies applied to them")
        backend.attach_policy(p["policyName"], p["target"])
        return {}

    # ------------------------------------------------------------------ thing types
    def op_deprecate_thing_type(self, backend, region, p):
        t = backend.deprecate_thing_type(p["thingTypeName"], bool(p.get("undoDeprecate")))
        if t.metadata["deprecated"]:
            t.metadata.setdefault("deprecationDate", now())
        else:
            t.metadata.pop("deprecationDate", None)
        return {}

    def op_delete_thing_type(self, backend, region, p):
        name = p["thingTypeName"]
        t = backend.describe_thing_type(name)   # moto's ResourceNotFoundException
        if not t.metadata.get("deprecated"):
            raise ApiError("InvalidRequestException",
                           f"Cannot delete thing type : {name}. Deprecate it first, wait for "
                           f"{_duration(self.thing_type_delete_delay)} after deprecation and then retry")
        things = sorted(th.thing_name for th in backend.things.values()
                        if th.thing_type is not None and th.thing_type.thing_type_name == name)
        if things:
            raise ApiError("InvalidRequestException",
                           f"Cannot delete thing type : {name}. It still has things associated with it "
                           f"({', '.join(things[:10])}): change their thing type first")
        since = now() - t.metadata.get("deprecationDate", now())
        if since.total_seconds() < self.thing_type_delete_delay:
            raise ApiError("InvalidRequestException",
                           f"Cannot delete thing type : {name}. Please wait for "
                           f"{_duration(self.thing_type_delete_delay)} after deprecation and then retry")
        backend.delete_thing_type(name)
        return {}

    # ------------------------------------------------------------------ thing groups
    @staticmethod
    def _find_group(backend, name):
        return next((g for g in backend.thing_groups.values() if g.thing_group_name == name), None)

    def _group(self, backend, name):
        group = self._find_group(backend, name)
        if group is None:
            raise ApiError("ResourceNotFoundException", f"Thing group {name} does not exist", 404)
        return group

    @staticmethod
    def _check_group_name(name):
        if not THING_NAME_RE.match(name or ""):
            raise ApiError("InvalidRequestException", f"Thing group name {name!r} must match [a-zA-Z0-9:_-]{{1,128}}")

    @staticmethod
    def _check_group_properties(p):
        """AWS validates attribute names and values against the API's patterns (moto stores anything)."""
        attributes = ((p.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("attributes") or {}
        for name, value in attributes.items():
            if not ATTRIBUTE_NAME_RE.match(name or ""):
                raise ApiError("InvalidRequestException", f"Attribute name {name!r} must match [a-zA-Z0-9_.,@/:#-]{{1,128}}")
            if not isinstance(value, str) or not ATTRIBUTE_VALUE_RE.match(value):
                raise ApiError("InvalidRequestException",
                               f"Attribute value {value!r} of {name!r} must match [a-zA-Z0-9_.,@/:#=\\[\\]-]{{0,800}}")

    @staticmethod
    def _check_version(group, p):
        """``expectedVersion`` (optimistic concurrency): any version but the group's current one is a
        VersionConflictException, 0 included (moto skips a falsy one: versions start at 1, AWS refuses it),
        also on DeleteThingGroup (moto ignores it there)."""
        expected = p.get("expectedVersion")
        if expected is not None and int(expected) != group.version:
            raise ApiError("VersionConflictException", f"The version for thing group {group.thing_group_name} does "
                           f"not match the expected version (it is {group.version}, not {expected})", 409)

    def op_describe_thing_group(self, backend, region, p):
        group = self._group(backend, p["thingGroupName"])
        out = group.to_dict()
        if _dynamic(group):
            out.update(_dynamic(group), status="ACTIVE")
        return out

    def op_create_thing_group(self, backend, region, p):
        name, parent = p.get("thingGroupName"), p.get("parentGroupName")
        self._check_group_name(name)
        self._check_group_properties(p)
        existing = self._find_group(backend, name)
        if existing is not None and _dynamic(existing):
            raise ApiError("ResourceAlreadyExistsException", f"Thing Group {name} already exists as a dynamic thing group", 409)
        if parent:
            parent_group = self._find_group(backend, parent)
            if parent_group is None:
                raise ApiError("ResourceNotFoundException", f"Parent thing group {parent} does not exist", 404)
            if _dynamic(parent_group):
                raise ApiError("InvalidRequestException", f"Thing group {parent} is a dynamic thing group: dynamic "
                               "thing groups can't be part of a hierarchy")
        if existing is not None and (existing.parent_group_name or None) != (parent or None):
            raise ApiError("ResourceAlreadyExistsException",
                           f"Thing Group {name} already exists in current account with a different parent", 409)
        name, arn, group_id = backend.create_thing_group(name, parent, p.get("thingGroupProperties") or {})
        return {"thingGroupName": name, "thingGroupArn": arn, "thingGroupId": group_id}

    def op_update_thing_group(self, backend, region, p):
        group = self._group(backend, p["thingGroupName"])
        if _dynamic(group):
            raise ApiError("InvalidRequestException", f"Thing group {group.thing_group_name} is a dynamic thing group: "
                           "update it with UpdateDynamicThingGroup")
        self._check_group_properties(p)
        self._check_version(group, p)
        return {"version": backend.update_thing_group(group.thing_group_name, p.get("thingGroupProperties") or {},
                                                      None)}

    def op_delete_thing_group(self, backend, region, p):
        group = self._find_group(backend, p["thingGroupName"])
        if group is not None and _dynamic(group):
            raise ApiError("InvalidRequestException", f"Thing group {group.thing_group_name} is a dynamic thing group: "
                           "delete it with DeleteDynamicThingGroup")
        if group is not None:
            self._check_version(group, p)
        backend.delete_thing_group(p["thingGroupName"])   # refuses while child groups exist
        return {}

    def _check_query(self, backend, region, p) -> dict:
        """The dynamic settings of a create or update (None: not given), after AWS's checks."""
        out = {}
        if p.get("indexName") is not None:
            if p["indexName"] != INDEX_NAME:
                raise ApiError("ResourceNotFoundException", f"Index {p['indexName']} does not exist "
                               f"(the one index is {INDEX_NAME})", 404)
            out["indexName"] = p["indexName"]
        if p.get("queryVersion") is not None:
            if p["queryVersion"] != QUERY_VERSION:
                raise ApiError("InvalidRequestException", f"Query version {p['queryVersion']} is not supported "
                               f"(the one version is {QUERY_VERSION})")
            out["queryVersion"] = p["queryVersion"]
        if p.get("queryString") is not None:
            from moto.iot.models import FakeThing
            probe = FakeThing("query-check", None, {}, backend.account_id, region)
            try:
                if not p["queryString"].strip():
                    raise ValueError("empty")
                probe.matches(p["queryString"])
            except Exception:  # noqa: BLE001 - moto's InvalidRequestException, or empty
                raise ApiError("InvalidQueryException", f"The query {p['queryString']!r} is invalid") from None
            out["queryString"] = p["queryString"]
        return out

    def op_create_dynamic_thing_group(self, backend, region, p):
        name = p.get("thingGroupName")
        self._check_group_name(name)
        self._check_group_properties(p)
        mode = backend.indexing_configuration.configuration.thingIndexingConfiguration.thingIndexingMode
        if mode == "OFF":
            raise ApiError("InvalidRequestException", "Thing indexing is not enabled: dynamic thing groups need fleet "
                           "indexing (UpdateIndexingConfiguration with thingIndexingMode REGISTRY or more)")
        query = {"indexName": INDEX_NAME, "queryVersion": QUERY_VERSION, **self._check_query(backend, region, p)}
        properties = p.get("thingGroupProperties") or {}
        existing = self._find_group(backend, name)
        if existing is not None:
            if _dynamic(existing) == query and existing.thing_group_properties == properties:
                group = existing   # the same group again: AWS answers it, as for CreateThingGroup
            else:
                raise ApiError("ResourceAlreadyExistsException", f"Thing Group {name} already exists in current account "
                               "with different properties", 409)
        else:
            if sum(1 for g in backend.thing_groups.values() if _dynamic(g)) >= MAX_DYNAMIC_GROUPS:
                raise ApiError("LimitExceededException", f"At most {MAX_DYNAMIC_GROUPS} dynamic thing groups per account", 410)
            backend.create_thing_group(name, None, properties)
            group = self._find_group(backend, name)
            group.dynamic = query
        return {"thingGroupName": name, "thingGroupArn": group.arn, "thingGroupId": group.thing_group_id, **query}

    def _dynamic_group(self, backend, name):
        group = self._group(backend, name)
        if not _dynamic(group):
            raise ApiError("InvalidRequestException", f"Thing group {name} is a static thing group, not a dynamic one")
        return group

    def op_update_dynamic_thing_group(self, backend, region, p):
        group = self._dynamic_group(backend, p["thingGroupName"])
        query = self._check_query(backend, region, p)
        self._check_group_properties(p)
        self._check_version(group, p)
        version = backend.update_thing_group(group.thing_group_name, p.get("thingGroupProperties") or {}, None)
        group.dynamic = {**group.dynamic, **query}
        return {"version": version}

    def op_delete_dynamic_thing_group(self, backend, region, p):
        group = self._find_group(backend, p["thingGroupName"])
        if group is None:
            return {}   # as DeleteThingGroup: a group that does not exist is deleted already
        group = self._dynamic_group(backend, p["thingGroupName"])
        self._check_version(group, p)
        del backend.thing_groups[group.arn]
        return {}

    def op_list_things_in_thing_group(self, backend, region, p):
        group = self._group(backend, p["thingGroupName"])
        if _dynamic(group):
            things = [t for t in backend.things.values() if t.matches(group.dynamic["queryString"])]
        elif p.get("recursive"):
            groups = [group, *backend.list_thing_groups(group.thing_group_name, None, True)]
            things = list({t.arn: t for g in groups for t in g.things.values()}.values())
        else:
            things = list(group.things.values())
        return {"things": [t.thing_name for t in things]}

    @staticmethod
    def _root(group) -> str:
        path = group.metadata.get("rootToParentThingGroups") or []
        return path[0]["groupName"] if path else group.thing_group_name

    def _check_additions(self, backend, thing, groups, removed=()):
        """AWS's refusals of adding thing to groups (moto objects), before any write."""
        current = [g for g in backend.thing_groups.values()
                   if thing.arn in g.things and g.thing_group_name not in removed]
        for group in groups:
            if _dynamic(group):
                raise ApiError("InvalidRequestException", f"Cannot add thing {thing.thing_name} to dynamic thing group "
                               f"{group.thing_group_name}: its members are the things its query matches")
            if group in current:
                continue
            same = [g.thing_group_name for g in current if self._root(g) == self._root(group)]
            if same:
                raise ApiError("InvalidRequestException", f"Thing {thing.thing_name} is already in thing group {same[0]} "
                               f"of the hierarchy of {self._root(group)}: a thing can be in only one group of a hierarchy")
            if len(current) >= MAX_GROUPS_PER_THING:
                raise ApiError("InvalidRequestException", f"Thing {thing.thing_name} is already in "
                               f"{MAX_GROUPS_PER_THING} thing groups, the most AWS IoT allows")
            current.append(group)

    def op_add_thing_to_thing_group(self, backend, region, p):
        group = backend._identify_thing_group(p.get("thingGroupName"), p.get("thingGroupArn"))
        thing = backend._identify_thing(p.get("thingName"), p.get("thingArn"))
        self._check_additions(backend, thing, [group])
        backend.add_thing_to_thing_group(group.thing_group_name, None, thing.thing_name, None)
        return {}

    def op_update_thing_groups_for_thing(self, backend, region, p):
        thing = backend.describe_thing(p["thingName"])
        remove = [self._group(backend, n) for n in p.get("thingGroupsToRemove") or []]
        add = [self._group(backend, n) for n in p.get("thingGroupsToAdd") or []]
        self._check_additions(backend, thing, add, removed={g.thing_group_name for g in remove})
        for group in remove:
            backend.remove_thing_from_thing_group(group.thing_group_name, None, thing.thing_name, None)
        for group in add:
            backend.add_thing_to_thing_group(group.thing_group_name, None, thing.thing_name, None)
        return {}

    # ------------------------------------------------------------------ provisioning templates
    def _templates(self, backend) -> dict[str, dict]:
        return self.templates.setdefault((backend.account_id, backend.region_name), {})

    def _template(self, backend, name):
        t = self._templates(backend).get(name)
        if t is None:
            raise ApiError("ResourceNotFoundException", f"The provisioning template {name} does not exist", 404)
        return t

    @staticmethod
    def _check_body(body: str) -> None:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            raise ApiError("InvalidRequestException", "The template body is not valid JSON") from None
        if not isinstance(doc, dict) or "Resources" not in doc:
            raise ApiError("InvalidRequestException", "The template body has no Resources")

    def op_create_provisioning_template(self, backend, region, p):
        name = p["templateName"]
        if name in self._templates(backend):
            raise ApiError("ResourceAlreadyExistsException", f"The provisioning template {name} already exists", 409)
        self._check_body(p.get("templateBody"))
        kind = p.get("type") or "FLEET_PROVISIONING"
        if kind == "JITP" and p.get("preProvisioningHook"):
            raise ApiError("InvalidRequestException", "A JITP template cannot have a pre-provisioning hook")
        t = {"templateName": name, "templateArn": f"arn:aws:iot:{region}:{backend.account_id}:provisioningtemplate/{name}",
             "description": p.get("description") or "", "enabled": bool(p.get("enabled", False)),
             "provisioningRoleArn": p.get("provisioningRoleArn"), "preProvisioningHook": p.get("preProvisioningHook"),
             "type": kind, "creationDate": now(), "lastModifiedDate": now(), "next": 2, "defaultVersionId": 1,
             "versions": {1: {"versionId": 1, "templateBody": p["templateBody"], "creationDate": now()}}}
        self._templates(backend)[name] = t
        return {"templateArn": t["templateArn"], "templateName": name, "defaultVersionId": 1}

    def op_describe_provisioning_template(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        out = {k: v for k, v in t.items() if k not in ("versions", "next")}
        out["templateBody"] = t["versions"][t["defaultVersionId"]]["templateBody"]
        return out

    def op_list_provisioning_templates(self, backend, region, p):
        keys = ("templateArn", "templateName", "description", "creationDate", "lastModifiedDate", "enabled", "type")
        return {"templates": [{k: t[k] for k in keys} for t in self._templates(backend).values()]}

    def op_update_provisioning_template(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        for key in ("description", "enabled", "provisioningRoleArn", "preProvisioningHook"):
            if key in p:
                t[key] = p[key]
        if p.get("removePreProvisioningHook"):
            t["preProvisioningHook"] = None
        if "defaultVersionId" in p:
            if int(p["defaultVersionId"]) not in t["versions"]:
                raise ApiError("ResourceNotFoundException", f"Version {p['defaultVersionId']} not found", 404)
            t["defaultVersionId"] = int(p["defaultVersionId"])
        t["lastModifiedDate"] = now()
        return {}

    def op_delete_provisioning_template(self, backend, region, p):
        self._template(backend, p["templateName"])
        del self._templates(backend)[p["templateName"]]
        return {}

    def op_create_provisioning_template_version(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        self._check_body(p.get("templateBody"))
        if len(t["versions"]) >= 5:
            raise ApiError("VersionsLimitExceededException", "A template has at most 5 versions", 409)
        vid = t["next"]
        t["next"] += 1
        t["versions"][vid] = {"versionId": vid, "templateBody": p["templateBody"], "creationDate": now()}
        if p.get("setAsDefault"):
            t["defaultVersionId"] = vid
        t["lastModifiedDate"] = now()
        return {"templateArn": t["templateArn"], "templateName": t["templateName"], "versionId": vid,
                "isDefaultVersion": t["defaultVersionId"] == vid}

    def _version_row(self, t, v, body=False):
        row = {"versionId": v["versionId"], "creationDate": v["creationDate"],
               "isDefaultVersion": v["versionId"] == t["defaultVersionId"]}
        if body:
            row["templateBody"] = v["templateBody"]
        return row

    def op_list_provisioning_template_versions(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        return {"versions": [self._version_row(t, v) for v in t["versions"].values()]}

    def op_describe_provisioning_template_version(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        v = t["versions"].get(int(p["versionId"]))
        if v is None:
            raise ApiError("ResourceNotFoundException", f"Version {p['versionId']} not found", 404)
        return self._version_row(t, v, body=True)

    def op_delete_provisioning_template_version(self, backend, region, p):
        t = self._template(backend, p["templateName"])
        vid = int(p["versionId"])
        if vid not in t["versions"]:
            raise ApiError("ResourceNotFoundException", f"Version {vid} not found", 404)
        if vid == t["defaultVersionId"]:
            raise ApiError("DeleteConflictException", "The default version cannot be deleted", 409)
        del t["versions"][vid]
        return {}

    def op_register_thing(self, backend, region, p):
        import templates
        arns, pem = templates.apply(self, backend, p.get("templateBody"), p.get("parameters") or {})
        return {"certificatePem": pem, "resourceArns": arns}


class _Registry(dict):
    """A moto registry dict (key -> object) that keeps secondary indexes: ``keys`` maps an index
    name (``indexers``) to a function (key, object) -> index value. Every set and delete updates them (moto only
    sets and deletes items); ``lookup`` returns the {key: object} of one index value, in insertion
    order, as the scans it replaces did."""

    def __init__(self, items: dict, **indexers: Callable[[Any, Any], Any]):
        super().__init__()
        self.indexers = indexers
        self.index: dict[str, dict[Any, dict]] = {name: {} for name in indexers}
        self.placed: dict[Any, dict[str, Any]] = {}   # key -> the index values it is filed under
        for key, value in items.items():
            self[key] = value

    def __setitem__(self, key, value):
        if key in self:
            self._unfile(key)
        super().__setitem__(key, value)
        self.placed[key] = {name: fn(key, value) for name, fn in self.indexers.items()}
        for name, at in self.placed[key].items():
            self.index[name].setdefault(at, {})[key] = value

    def __delitem__(self, key):
        self._unfile(key)
        super().__delitem__(key)

    def _unfile(self, key):
        for name, at in self.placed.pop(key, {}).items():
            bucket = self.index[name].get(at)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.index[name][at]

    def lookup(self, name: str, at) -> dict:
        return self.index[name].get(at) or {}

    def _refuse(self, *args, **kwargs):
        raise TypeError("an indexed moto registry is changed by item only (set, del)")

    pop = popitem = update = setdefault = clear = _refuse   # type: ignore[assignment]


def index_backend(backend):
    """Index a moto IoT backend's registries (once; moto's reset makes new backends) and answer
    its scanning lookups from the indexes. Returns the backend."""
    if isinstance(backend.things, _Registry):
        return backend
    from moto.iot.exceptions import DeleteConflictException, ResourceNotFoundException

    backend.things = _Registry(backend.things, name=lambda k, t: t.thing_name)
    backend.certificates = _Registry(backend.certificates, arn=lambda k, c: c.arn,
                                     ca=lambda k, c: getattr(c, "ca_certificate_id", None))
    backend.principal_things = _Registry(backend.principal_things, principal=lambda k, v: k[0],
                                         thing=lambda k, v: k[1])
    backend.principal_policies = _Registry(backend.principal_policies, principal=lambda k, v: k[0],
                                           policy=lambda k, v: k[1])
    scanning_get_principal = backend._get_principal

    def describe_thing(thing_name):
        thing = find_thing(backend, thing_name)
        if thing is None:
            raise ResourceNotFoundException()
        return thing

    def describe_certificate(certificate_id):
        if certificate_id not in backend.certificates:
            raise ResourceNotFoundException()
        return backend.certificates[certificate_id]

    def get_principal(principal_arn):
        if ":cert/" in principal_arn:
            certs = backend.certificates.lookup("arn", principal_arn)
            if not certs:
                raise ResourceNotFoundException()
            return next(iter(certs.values()))
        return scanning_get_principal(principal_arn)   # thing groups (keyed by ARN), Cognito

    def list_thing_principals(thing_name):
        if find_thing(backend, thing_name) is None:
            raise ResourceNotFoundException(f"Failed to list principals for thing {thing_name} because the thing "
                                            "does not exist in your account")
        return [k[0] for k in backend.principal_things.lookup("thing", thing_name)]

    def policies_of(principal_arn):
        return [v[1] for v in backend.principal_policies.lookup("principal", principal_arn).values()]

    def validation_delete(cert, force_delete=False):
        if cert.status == "ACTIVE":
            from moto.iot.exceptions import CertificateStateException
            raise CertificateStateException("Certificate must be deactivated (not ACTIVE) before deletion.",
                                            cert.certificate_id)
        if backend.principal_things.lookup("principal", cert.arn):
            raise DeleteConflictException(f"Things must be detached before deletion (arn: {cert.arn})")
        if backend.principal_policies.lookup("principal", cert.arn) and not force_delete:
            raise DeleteConflictException(f"Certificate policies must be detached before deletion (arn: {cert.arn})")

    backend.describe_thing = describe_thing
    backend.describe_certificate = describe_certificate
    backend._get_principal = get_principal
    backend._validation_delete = validation_delete
    backend.list_thing_principals = backend.list_thing_principals_v2 = list_thing_principals
    backend.list_principal_things = backend.list_principal_things_v2 = (
        lambda principal_arn: [k[1] for k in backend.principal_things.lookup("principal", principal_arn)])
    backend.list_attached_policies = lambda target: policies_of(target)
    backend.list_principal_policies = policies_of
    backend.list_policy_principals = (
        lambda policy_name: [k[0] for k in backend.principal_policies.lookup("policy", policy_name)])
    backend.list_certificates_by_ca = (
        lambda ca_certificate_id: list(backend.certificates.lookup("ca", ca_certificate_id).values()))
    return backend


def find_thing(backend, name):
    """The thing (moto object) of that name, or None: one keyed lookup once the backend is indexed."""
    if isinstance(backend.things, _Registry):
        return next(iter(backend.things.lookup("name", name).values()), None)
    return next((t for t in backend.things.values() if t.thing_name == name), None)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.replace("CACertificate", "CaCertificate")).lower()


def _dynamic(group) -> dict | None:
    """The dynamic settings of a thing group (moto object), None for a static group."""
    return getattr(group, "dynamic", None)


def _duration(seconds: float) -> str:
    """AWS's "5 minutes" for the default delay, else the lowered one in seconds."""
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _region(environ) -> str:
    m = re.search(r"Credential=[^/]+/\d+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else "us-east-1"


def template_for_ca(control: ControlPlane, backend, ca) -> dict[str, Any] | None:
    """The JITP template body of a CA (its registrationConfig: templateBody or templateName)."""
    config = ca.registration_config or {}
    body = config.get("templateBody")
    if not body and config.get("templateName"):
        t = control._templates(backend).get(config["templateName"])
        body = t and t["versions"][t["defaultVersionId"]]["templateBody"]
    return body or None
