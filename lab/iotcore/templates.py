"""Provisioning templates, evaluated as AWS IoT does for JITP and RegisterThing.

A template has Parameters (with Default), optional Mappings and Conditions, and Resources of the
types AWS::IoT::Thing, AWS::IoT::Certificate and AWS::IoT::Policy. Intrinsic functions: Ref,
Fn::Join, Fn::Select, Fn::Split, Fn::Sub, Fn::FindInMap, Fn::If, Fn::Equals, Fn::Not, Fn::And,
Fn::Or. The certificate is attached to the thing and the policy to the certificate.

For JITP the parameters come from the device certificate (AWS::IoT::Certificate::CommonName,
::Country, ::Organization, ::OrganizationalUnit, ::DistinguishedNameQualifier, ::StateName,
::Locality, ::SerialNumber, ::Id); the certificate is registered PENDING_ACTIVATION, then given
the template's status.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from api import ApiError
from control import THING_NAME_RE, cert_id, find_thing

SUBJECT_PARAMETERS = {
    "CommonName": NameOID.COMMON_NAME, "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME, "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER, "StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "Locality": NameOID.LOCALITY_NAME, "SerialNumber": NameOID.SERIAL_NUMBER,
}


def certificate_parameters(cert: x509.Certificate, cid: str) -> dict[str, str]:
    params = {"AWS::IoT::Certificate::Id": cid}
    for name, oid in SUBJECT_PARAMETERS.items():
        values = cert.subject.get_attributes_for_oid(oid)
        if values:
            params[f"AWS::IoT::Certificate::{name}"] = values[0].value
    return params


class _Eval:
    def __init__(self, doc: dict, params: dict[str, Any]):
        self.doc = doc
        self.params = params
        self.conditions: dict[str, bool] = {}

    def value(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                if arg not in self.params:
                    raise ApiError("InvalidRequestException", f"Template parameter {arg} has no value")
                return self.params[arg]
            if fn == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if fn == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if fn == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: str({**self.params, **extra}.get(m.group(1), m.group(0))), text)
            if fn == "Fn::FindInMap":
                name, k1, k2 = self.value(arg)
                return self.doc.get("Mappings", {})[name][k1][k2]
            if fn == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if fn in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self.boolean(v)
        return {k: self.value(x) for k, x in v.items()}

    def boolean(self, v: Any) -> bool:
        (fn, arg), = v.items()
        if fn == "Fn::Equals":
            a, b = self.value(arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.boolean(arg[0])
        if fn == "Fn::And":
            return all(self.boolean(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.boolean(x) for x in arg)
        if fn == "Condition":
            return self.condition(arg)
        raise ApiError("InvalidRequestException", f"Unsupported condition function {fn}")

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.boolean(self.doc.get("Conditions", {})[name])
        return self.conditions[name]


def apply(control, backend, body: str | dict, supplied: dict[str, str], *,
          certificate: x509.Certificate | None = None, cert_pem: str | None = None) -> tuple[dict, str | None]:
    """Run a template against the registry: (resourceArns, certificatePem). Raises ApiError.

    All or nothing, as AWS applies a template: every resource is evaluated and checked first
    (parameters, certificate registrable, thing name, thing type and groups, policy) and the
    registry is written only when all of them are valid, so a failing template leaves no ACTIVE
    certificate or half-provisioned thing behind.
    """
    try:
        doc = json.loads(body) if isinstance(body, str) else body
    except (TypeError, ValueError):
        raise ApiError("InvalidRequestException", "The template body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise ApiError("InvalidRequestException", "The template body has no Resources")
    params = {name: spec["Default"] for name, spec in (doc.get("Parameters") or {}).items()
              if isinstance(spec, dict) and "Default" in spec}
    params.update(supplied)
    ev = _Eval(doc, params)
    resources = {k: r for k, r in doc["Resources"].items()
                 if "Condition" not in r or ev.condition(r["Condition"])}
    by_type: dict[str, list] = {}
    for logical, res in resources.items():
        kind = res.get("Type")
        if kind not in ("AWS::IoT::Certificate", "AWS::IoT::Thing", "AWS::IoT::Policy"):
            raise ApiError("InvalidRequestException", f"{logical}: unsupported resource type {kind}")
        by_type.setdefault(kind, []).append((logical, res, ev.value(res.get("Properties") or {})))
    for kind, found in by_type.items():
        if len(found) > 1:
            raise ApiError("InvalidRequestException", f"A template has at most one {kind} resource")

    # ---- plan: evaluate and check everything, write nothing
    cert_plan = None          # ("existing", obj, status) | ("register", pem, ca_pem, status)
    for logical, _res, props in by_type.get("AWS::IoT::Certificate", []):
        status = props.get("Status", "ACTIVE")
        if status not in ("ACTIVE", "INACTIVE"):
            raise ApiError("InvalidRequestException", f"{logical}: Status must be ACTIVE or INACTIVE, not {status}")
        if props.get("CertificateId"):
            obj = backend.certificates.get(props["CertificateId"])
            if obj is not None:
                cert_plan = ("existing", obj, status)
            elif certificate is not None and cert_pem and props["CertificateId"] == cert_id(certificate):
                control.check_registration(backend, cert_pem, None, "PENDING_ACTIVATION")   # JITP
                cert_plan = ("register", cert_pem, None, status)
            else:
                raise ApiError("InvalidRequestException", f"Certificate {props['CertificateId']} is not registered")
        elif props.get("CertificatePem"):
            pem = props["CertificatePem"]
            try:
                cid = cert_id(x509.load_pem_x509_certificate(pem.encode()))
            except ValueError:
                raise ApiError("InvalidRequestException", f"{logical}: CertificatePem is not a PEM certificate") from None
            if cid in backend.certificates:
                cert_plan = ("existing", backend.certificates[cid], status)
            else:
                control.check_registration(backend, pem, props.get("CACertificatePem"), status)
                cert_plan = ("register", pem, props.get("CACertificatePem"), status)
        elif props.get("CertificateSigningRequest"):
            raise ApiError("InvalidRequestException",
                           f"{logical}: CertificateSigningRequest is not modelled by the lab's stand-in")
        else:
            raise ApiError("InvalidRequestException",
                           f"{logical}: AWS::IoT::Certificate needs CertificateId or CertificatePem")
        if cert_plan[0] == "existing" and cert_plan[1].status == "REVOKED":
            raise ApiError("CertificateStateException", f"{logical}: the certificate is REVOKED", 406)

    thing_plan = None         # (name, existing FakeThing or None, props, override)
    for logical, res, props in by_type.get("AWS::IoT::Thing", []):
        name = props.get("ThingName")
        if not isinstance(name, str) or not THING_NAME_RE.match(name):
            raise ApiError("InvalidRequestException",
                           f"{logical}: ThingName {name!r} must match [a-zA-Z0-9:_-]{{1,128}}")
        override = res.get("OverrideSettings") or {}
        existing = find_thing(backend, name)
        if existing is not None and "FAIL" in override.values():
            raise ApiError("ResourceAlreadyExistsException", f"{logical}: thing {name} already exists", 409)
        if props.get("ThingTypeName"):
            _lookup(backend.describe_thing_type, props["ThingTypeName"], "thing type")
        for group in props.get("ThingGroups") or []:
            _lookup(backend.describe_thing_group, group, "thing group")
        thing_plan = (name, existing, props, override)

    policy_plan = None        # ("existing", FakePolicy) | ("create", name, document text)
    for logical, _res, props in by_type.get("AWS::IoT::Policy", []):
        if props.get("PolicyName"):
            policy_plan = ("existing", _lookup(backend.get_policy, props["PolicyName"], "policy"))
        elif props.get("PolicyDocument"):
            document = props["PolicyDocument"]
            text = document if isinstance(document, str) else json.dumps(document)
            try:
                json.loads(text)
            except ValueError:
                raise ApiError("MalformedPolicyException", f"{logical}: PolicyDocument is not JSON") from None
            name = hashlib.sha256(text.encode()).hexdigest()
            policy_plan = ("existing", backend.policies[name]) if name in backend.policies else ("create", name, text)
        else:
            raise ApiError("InvalidRequestException", f"{logical}: AWS::IoT::Policy needs PolicyName or PolicyDocument")

    # ---- write
    arns: dict[str, str] = {}
    cert_obj = None
    if cert_plan is not None:
        if cert_plan[0] == "existing":
            cert_obj, status = cert_plan[1], cert_plan[2]
        else:
            cert_obj = control.register(backend, cert_plan[1], cert_plan[2], "PENDING_ACTIVATION")
            status = cert_plan[3]
        cert_obj.status = status
        arns["certificate"] = cert_obj.arn

    thing = None
    if thing_plan is not None:
        name, thing, props, override = thing_plan
        attrs = {k: str(v) for k, v in (props.get("AttributePayload") or {}).items()}
        if thing is None:
            thing = backend.create_thing(name, props.get("ThingTypeName"), {"attributes": attrs})
        else:
            mode = override.get("AttributePayload", "DO_NOTHING")
            if mode == "MERGE":
                thing.attributes.update(attrs)
            elif mode == "REPLACE":
                thing.attributes = attrs
        for group in props.get("ThingGroups") or []:
            backend.add_thing_to_thing_group(thing_group_name=group, thing_group_arn=None,
                                             thing_name=name, thing_arn=None)
        arns["thing"] = thing.arn

    policy = None
    if policy_plan is not None:
        policy = policy_plan[1] if policy_plan[0] == "existing" else backend.create_policy(policy_plan[1], policy_plan[2])
        arns["policy"] = policy.arn

    if cert_obj is not None and thing is not None:
        backend.attach_thing_principal(thing.thing_name, cert_obj.arn)
    if cert_obj is not None and policy is not None:
        backend.attach_policy(policy.name, cert_obj.arn)
    control.generation += 1
    return arns, (cert_obj.certificate_pem if cert_obj is not None else None)


def _lookup(find, name: str, what: str):
    """A moto lookup whose not-found becomes AWS's ResourceNotFoundException (an ApiError)."""
    try:
        return find(name)
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - moto's ResourceNotFoundException and friends
        raise ApiError("ResourceNotFoundException", f"The {what} {name} does not exist", 404) from None
