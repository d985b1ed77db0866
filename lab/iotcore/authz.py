"""The stand-in's data-plane decisions: who may connect, publish, subscribe and receive.

The broker (Mosquitto with plugin/iotcore_auth.c) asks over a Unix socket; the answers come from
the control plane's registry, read live, as AWS IoT Core decides:
- CONNECT: the presented certificate (id = SHA-256 of its DER) must be registered and ACTIVE, its
  CA (if any) registered and ACTIVE; then the certificate's policies must allow ``iot:Connect`` on
  ``client/<client id>``. An unregistered certificate issued by a registered ACTIVE CA with
  auto-registration on runs the CA's JITP template (or is registered PENDING_ACTIVATION when the CA
  has no template) and is refused: the device reconnects, as on AWS.
- PUBLISH (``topic/``; a refusal disconnects the client, as AWS does), SUBSCRIBE (``topicfilter/``;
  a refusal is a SUBACK failure code) and Receive (``topic/``; a refused message is not delivered),
  by the same policies: the certificate's, and for the thing bound to the connection those of its
  static thing groups and their ancestors.
Policy variables: iot:ClientId, iot:Connection.Thing.ThingName / ThingTypeName / Attributes[...] /
IsAttached (only when the client id is the name of a thing attached to the certificate),
iot:Certificate.Subject.* . A change in the registry applies to decisions made after it (the
per-connection context is rebuilt when the registry's generation moved).
"""
from __future__ import annotations

import hashlib
import logging
import os
import socketserver
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

import policy as policy_eval
import templates
from control import ControlPlane, DEFAULT_ACCOUNT, template_for_ca

log = logging.getLogger("iotcore.authz")

SUBJECT_KEYS = {
    "CommonName": NameOID.COMMON_NAME, "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME, "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER, "StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "Locality": NameOID.LOCALITY_NAME, "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
}
REPLY_MAX = 500   # bytes of a connect reply line (the plugin reads up to 511)
ACCESS = {1: ("iot:Receive", "topic"), 2: ("iot:Publish", "topic"), 4: ("iot:Subscribe", "topicfilter")}


@dataclass
class Connection:
    cert_id: str
    client_id: str
    cert: x509.Certificate
    generation: int = -1
    policies: list = field(default_factory=list)
    context: dict = field(default_factory=dict)


class Authorizer:
    def __init__(self, control: ControlPlane, region: str, account: str = DEFAULT_ACCOUNT):
        self.control, self.region, self.account = control, region, account
        self.conns: dict[str, Connection] = {}
        self.events: list[tuple[str, str, str]] = []   # (what, client id, reason), for tests and logs

    @property
    def backend(self):
        return self.control.backend(self.region, self.account)

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:{kind}/{name}"

    def _refuse(self, what: str, client_id: str, reason: str) -> tuple[bool, str]:
        self.events.append((what, client_id, reason))
        log.info("refused %s of %r: %s", what, client_id, reason)
        return False, reason

    # ------------------------------------------------------------------ CONNECT
    def connect(self, conn: str, client_id: str, der: bytes) -> tuple[bool, str]:
        with self.control.lock:
            cid = hashlib.sha256(der).hexdigest()
            cert = x509.load_der_x509_certificate(der)
            backend = self.backend
            obj = backend.certificates.get(cid)
            if obj is None:
                return self._refuse("connect", client_id, self._unregistered(backend, cert, cid))
            problem = self._identity_problem(backend, obj)
            if problem:
                return self._refuse("connect", client_id, problem)
            c = Connection(cid, client_id, cert)
            self._refresh(c)
            d = policy_eval.evaluate(c.policies, "iot:Connect", self.arn("client", client_id), c.context)
            if not d.allowed:
                return self._refuse("connect", client_id, f"iot:Connect on client/{client_id}: {d.reason}")
            self.conns[conn] = c
            return True, ""

    def _unregistered(self, backend, cert: x509.Certificate, cid: str) -> str:
        ca = self.control.find_ca(backend, cert)
        if ca is None:
            return f"certificate {cid[:12]}… is not registered and its issuer is no registered CA"
        if ca.status != "ACTIVE":
            return f"certificate {cid[:12]}… is not registered (its CA {ca.certificate_id[:12]}… is {ca.status})"
        if self.control.ca_facts(ca)["auto"] != "ENABLE":
            return f"certificate {cid[:12]}… is not registered (CA auto-registration is off)"
        from cryptography.hazmat.primitives import serialization
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        body = template_for_ca(self.control, backend, ca)
        try:
            if body:
                templates.apply(self.control, backend, body, templates.certificate_parameters(cert, cid),
                                certificate=cert, cert_pem=pem)
                return f"certificate {cid[:12]}… just-in-time provisioned: reconnect"
            self.control.register(backend, pem, None, "PENDING_ACTIVATION")
            return f"certificate {cid[:12]}… auto-registered PENDING_ACTIVATION"
        except Exception as e:  # noqa: BLE001 - a failed template refuses the device, as on AWS
            return f"certificate {cid[:12]}…: JITP template failed: {e}"

    def _identity_problem(self, backend, obj) -> str:
        if obj.status != "ACTIVE":
            return f"certificate {obj.certificate_id[:12]}… is {obj.status}"
        if obj.ca_certificate_id:
            ca = backend.ca_certificates.get(obj.ca_certificate_id)
            if ca is None:
                return f"the certificate's CA {obj.ca_certificate_id[:12]}… is not registered"
            if ca.status != "ACTIVE":
                return f"the certificate's CA {obj.ca_certificate_id[:12]}… is {ca.status}"
        return ""

    def _refresh(self, c: Connection) -> None:
        """Policies and policy variables of a connection, from the registry as it is now."""
        backend = self.backend
        arn = backend.certificates[c.cert_id].arn
        # keyed lookups, not moto's list_* scans: a connect costs the same at 10 or 10,000 devices
        targets = [arn]
        ctx = {"iot:ClientId": c.client_id, "iot:Connection.Thing.IsAttached": "false"}
        for key, oid in SUBJECT_KEYS.items():
            values = c.cert.subject.get_attributes_for_oid(oid)
            if values:
                ctx[f"iot:Certificate.Subject.{key}"] = values[0].value
        attached = backend.principal_things.get((arn, c.client_id))
        thing = attached[1] if attached else None
        if thing is not None and backend.things.get(thing.arn) is thing:
            ctx["iot:Connection.Thing.ThingName"] = thing.thing_name
            ctx["iot:Connection.Thing.IsAttached"] = "true"
            if thing.thing_type:
                ctx["iot:Connection.Thing.ThingTypeName"] = thing.thing_type.thing_type_name
            for k, v in thing.attributes.items():
                ctx[f"iot:Connection.Thing.Attributes[{k}]"] = str(v)
            # the policies of the thing's static groups and of their ancestors apply too (AWS
            # evaluates them only for the thing bound to the connection: client id = thing name)
            targets += [g.arn for g in self._groups_of(backend, thing)]
        c.policies = [(name, p.document) for target in targets for name, p in backend.policies.items()
                      if (target, name) in backend.principal_policies]
        c.context = ctx
        c.generation = self.control.generation

    @staticmethod
    def _groups_of(backend, thing) -> list:
        """The static thing groups the thing is in, and their ancestors (policies are inherited)."""
        by_name = {g.thing_group_name: g for g in backend.thing_groups.values()}
        found, queue = {}, [g for g in backend.thing_groups.values() if thing.arn in g.things]
        while queue:
            group = queue.pop()
            if group.arn in found:
                continue
            found[group.arn] = group
            parent = by_name.get(group.parent_group_name) if group.parent_group_name else None
            if parent is not None:
                queue.append(parent)
        return list(found.values())

    # ------------------------------------------------------------------ PUBLISH / SUBSCRIBE / Receive
    def check(self, conn: str, access: int, topic: str) -> str:
        """'A' allow, 'D' deny, 'K' deny and disconnect (a publish AWS does not allow)."""
        with self.control.lock:
            c = self.conns.get(conn)
            if c is None or access not in ACCESS:
                return "D"
            action, kind = ACCESS[access]
            if c.generation != self.control.generation:
                backend = self.backend
                obj = backend.certificates.get(c.cert_id)
                problem = "certificate deleted" if obj is None else self._identity_problem(backend, obj)
                if problem:
                    self._refuse(action, c.client_id, problem)
                    return "K"
                self._refresh(c)
            d = policy_eval.evaluate(c.policies, action, self.arn(kind, topic), c.context)
            if d.allowed:
                return "A"
            self._refuse(action, c.client_id, f"{action} on {kind}/{topic}: {d.reason}")
            return "K" if access == 2 else "D"

    def disconnect(self, conn: str) -> None:
        with self.control.lock:
            self.conns.pop(conn, None)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        authz: Authorizer = self.server.authz
        for raw in self.rfile:
            parts = raw.decode(errors="replace").split()
            try:
                reply = self.answer(authz, parts)
            except Exception as e:  # noqa: BLE001 - fail closed, keep serving
                log.exception("authz request failed")
                reply = f"D internal error: {e}"
            self.wfile.write(self.line(parts, reply))

    @staticmethod
    def line(parts: list[str], reply: str) -> bytes:
        """One reply line that fits the plugin's buffer (fgets of 512 bytes for C, 64 for P and 16
        for X): a longer line would be read in pieces and every later answer would be off by one."""
        if not parts or parts[0] != "C":
            reply = reply[:1] or "D"
        data = reply.replace("\n", " ").encode()[:REPLY_MAX]
        return data.decode(errors="ignore").encode() + b"\n"

    @staticmethod
    def answer(authz: Authorizer, parts: list[str]) -> str:
        def unhex(s: str) -> bytes:
            return b"" if s == "-" else bytes.fromhex(s)
        if parts[0] == "C":
            ok, reason = authz.connect(parts[1], unhex(parts[3]).decode(errors="replace"), unhex(parts[4]))
            return "A" if ok else f"D {reason}"
        if parts[0] == "P":
            return authz.check(parts[1], int(parts[2]), unhex(parts[4]).decode(errors="replace"))
        if parts[0] == "X":
            authz.disconnect(parts[1])
            return "A"
        return "D unknown request"


class AuthzServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, authz: Authorizer):
        if os.path.exists(path):
            os.unlink(path)
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)
        self.authz = authz

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="iotcore-authz", daemon=True)
        t.start()
        return t
