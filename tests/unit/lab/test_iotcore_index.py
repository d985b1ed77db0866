# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in's keyed lookups (lab/iotcore/control.py ``index_backend``): on a moto IoT backend
whose registries are indexed, every lookup moto made by scanning answers what the scan answers
(moto's own methods, called on the same backend, are the reference), through sets, re-sets and
deletes; and it answers without iterating over the registry at all."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lab" / "iotcore"))

import control  # noqa: E402  (lab/iotcore/control.py)
from moto.iot.exceptions import ResourceNotFoundException  # noqa: E402
from moto.iot.models import IoTBackend  # noqa: E402

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509  # noqa: E402

ACCOUNT, REGION = "000000000042", "eu-west-1"


def _pem(ca, ca_key, cn):
    return _x509.certificate_pem(_x509.issue_certificate(ca, ca_key, cn, _x509.generate_private_key("ec").public_key()))


@pytest.fixture
def registry():
    """An indexed moto backend with 2 CAs, 6 things, 6 certificates, attachments, one deleted thing."""
    backend = control.index_backend(IoTBackend(REGION, ACCOUNT))
    cas = [_x509.create_ca(f"idx-ca-{i}") for i in range(2)]
    backend.create_policy("p1", '{"Version": "2012-10-17", "Statement": []}')
    backend.create_policy("p2", '{"Version": "2012-10-17", "Statement": []}')
    certs = []
    for i in range(6):
        ca_cert, ca_key = cas[i % 2]
        backend.create_thing(f"t{i}", None, {"attributes": {"n": str(i)}})
        cert = backend.register_certificate_without_ca(_pem(ca_cert, ca_key, f"t{i}"), "ACTIVE")
        cert.ca_certificate_id = f"ca-{i % 2}"
        backend.certificates[cert.certificate_id] = cert   # filed again under its CA, as control.register does
        backend.attach_thing_principal(f"t{i}", cert.arn)
        backend.attach_policy("p1" if i < 4 else "p2", cert.arn)
        certs.append(cert)
    backend.attach_thing_principal("t1", certs[0].arn)   # a certificate on two things
    backend.detach_thing_principal("t5", certs[5].arn)
    backend.detach_policy("p2", certs[5].arn)
    certs[5].status = "INACTIVE"
    backend.delete_certificate(certs[5].certificate_id, False)
    backend.delete_thing("t5")
    backend.create_thing("t5", None, {})   # the name again: a new thing object
    return backend, certs


def test_indexed_lookups_answer_what_moto_scans_answer(registry):
    backend, certs = registry
    for name in ("t0", "t1", "t4", "t5"):
        assert backend.describe_thing(name) is IoTBackend.describe_thing(backend, name)
        assert backend.list_thing_principals(name) == IoTBackend.list_thing_principals(backend, name)
    for cert in certs[:5]:
        assert backend.describe_certificate(cert.certificate_id) is IoTBackend.describe_certificate(backend, cert.certificate_id)
        assert backend._get_principal(cert.arn) is IoTBackend._get_principal(backend, cert.arn)
        assert backend.list_principal_things(cert.arn) == IoTBackend.list_principal_things(backend, cert.arn)
        assert backend.list_attached_policies(cert.arn) == IoTBackend.list_attached_policies(backend, cert.arn)
        assert backend.list_principal_policies(cert.arn) == IoTBackend.list_principal_policies(backend, cert.arn)
    for policy in ("p1", "p2"):
        assert backend.list_targets_for_policy(policy) == IoTBackend.list_policy_principals(backend, policy)
    for ca in ("ca-0", "ca-1", "ca-none"):
        assert backend.list_certificates_by_ca(ca) == IoTBackend.list_certificates_by_ca(backend, ca)
    assert backend.list_principal_things(certs[0].arn) == ["t0", "t1"]
    assert backend.list_certificates_by_ca("ca-1") == [certs[1], certs[3]]   # certs[5] deleted
    assert backend.list_thing_principals("t5") == []
    for missing in (lambda: backend.describe_thing("nope"), lambda: backend.describe_certificate("0" * 64),
                    lambda: backend._get_principal(certs[5].arn), lambda: backend.list_thing_principals("nope")):
        with pytest.raises(ResourceNotFoundException):
            missing()


def test_refusals_kept_deleting_an_attached_certificate(registry):
    backend, certs = registry
    certs[0].status = "INACTIVE"
    with pytest.raises(Exception, match="Things must be detached"):
        backend.delete_certificate(certs[0].certificate_id, False)
    backend.detach_thing_principal("t0", certs[0].arn)
    backend.detach_thing_principal("t1", certs[0].arn)
    with pytest.raises(Exception, match="policies must be detached"):
        backend.delete_certificate(certs[0].certificate_id, False)
    backend.detach_policy("p1", certs[0].arn)
    backend.delete_certificate(certs[0].certificate_id, False)
    assert certs[0].certificate_id not in backend.certificates
    assert backend.list_certificates_by_ca("ca-0") == [certs[2], certs[4]]


def test_lookups_do_not_iterate_the_registry(registry, monkeypatch):
    """The keyed lookups never walk a registry (a scan is what made the cost per call grow with it)."""
    backend, certs = registry

    def walked(*_args):
        raise AssertionError("a registry was iterated")

    for method in ("values", "items", "keys", "__iter__"):
        monkeypatch.setattr(control._Registry, method, walked)
    assert backend.describe_thing("t3").thing_name == "t3"
    assert backend.describe_certificate(certs[3].certificate_id) is certs[3]
    assert backend._get_principal(certs[3].arn) is certs[3]
    assert backend.list_principal_things(certs[3].arn) == ["t3"]
    assert backend.list_thing_principals("t3") == [certs[3].arn]
    assert [p.name for p in backend.list_attached_policies(certs[3].arn)] == ["p1"]
    assert len(backend.list_targets_for_policy("p1")) == 4
    assert backend.list_certificates_by_ca("ca-1") == [certs[1], certs[3]]
    assert control.find_thing(backend, "t4") is backend.things[backend.describe_thing("t4").arn]


def test_a_registry_is_changed_by_item_only():
    reg = control._Registry({}, first=lambda k, v: v[0])
    reg["a"] = "x1"
    reg["b"] = "x2"
    reg["a"] = "y1"   # re-set: filed under its new value only
    assert reg.lookup("first", "x") == {"b": "x2"} and reg.lookup("first", "y") == {"a": "y1"}
    del reg["b"]
    assert reg.lookup("first", "x") == {} and reg.index["first"] == {"y": {"a": "y1"}}
    for call in (lambda: reg.pop("a"), lambda: reg.update(c="z"), lambda: reg.setdefault("c", "z"), reg.clear):
        with pytest.raises(TypeError):
            call()
