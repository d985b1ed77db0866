# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-doc renders every plugin of the collection, with the shared doc fragments merged in
(plugins/doc_fragments/_attributes.py, _options.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
PLUGINS = {
    "module": sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_")),
    "filter": ["thing_name", "jitp_template", "pki_dir", "fleet_devices", "certificate_cn"],
    "inventory": ["iot_things"],
}


def _docs(plugin_type):
    names = [f"iotfleet.aws.{name}" for name in PLUGINS[plugin_type]]
    proc = subprocess.run([ANSIBLE_DOC, "--json", "-t", plugin_type, *names], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def modules():
    return _docs("module")


@pytest.mark.parametrize("plugin_type", ["filter", "inventory"])
def test_every_plugin_renders(plugin_type):
    docs = _docs(plugin_type)
    assert sorted(docs) == sorted(f"iotfleet.aws.{name}" for name in PLUGINS[plugin_type])
    for doc in docs.values():
        assert doc["doc"]["short_description"] and doc["doc"]["options"]


def test_every_module_renders(modules):
    assert len(PLUGINS["module"]) >= 16 and sorted(modules) == sorted(f"iotfleet.aws.{m}" for m in PLUGINS["module"])
    for name, doc in modules.items():
        assert doc["doc"]["short_description"], name
        assert "check_mode" in doc["doc"]["attributes"], name   # the _attributes fragment
        assert doc["examples"] and doc["return"] is not None, name


@pytest.mark.parametrize("module, option, type_", [
    ("iot_certificate", "certificate_content", "str"),
    ("iot_certificate", "certificate", "path"),
    ("iot_certificate", "ca_certificate_content", "str"),
    ("iot_ca_certificate", "ca_certificate_content", "str"),
    ("iot_ca_certificate", "ca_private_key_content", "str"),
    ("iot_ca_certificate", "ca_private_key_passphrase", "str"),
    ("iot_fleet", "ca_private_key_passphrase", "str"),
    ("iot_fleet", "ca_private_key_content", "str"),
    ("iot_fleet", "next_ca_private_key_content", "str"),
    ("iot_thing", "attributes", "dict"),
    ("iot_thing", "purge_attributes", "bool"),
    ("iot_thing_group", "purge_attributes", "bool"),
    ("iot_fleet", "pki_dir", "path"),
    ("iot_fleet", "retire_certificates", "str"),
    ("iot_fleet", "workers", "int"),
    ("iot_fleet_drift", "pki_dir", "path"),
    ("iot_fleet_drift", "ca_certificate", "path"),
    ("iot_fleet_drift", "managed_thing_group", "str"),
    ("iot_fleet_drift", "retire_certificates", "str"),
    ("iot_fleet_lock", "ttl", "int"),
    ("iot_fleet_lock", "wait_timeout", "int"),
])
def test_shared_option_blocks_are_merged(modules, module, option, type_):
    opts = modules[f"iotfleet.aws.{module}"]["doc"]["options"]
    assert opts[option]["type"] == type_ and opts[option]["description"]


def test_a_module_keeps_its_own_words_for_a_shared_option(modules):
    cert = modules["iotfleet.aws.iot_certificate"]["doc"]["options"]["ca_certificate"]["description"]
    assert any("registered without" in line for line in cert)
    assert modules["iotfleet.aws.iot_thing"]["doc"]["options"]["purge_attributes"]["default"] is False


def test_the_fleet_modules_share_the_fleet_block(modules):
    """iot_fleet and iot_fleet_drift take the fleet's CA / PKI / retirement options from _options.fleet,
    each keeping its own words where it has them."""
    fleet, drift = (modules[f"iotfleet.aws.{m}"]["doc"]["options"] for m in ("iot_fleet", "iot_fleet_drift"))
    for option in ("pki_dir", "managed_thing_group", "retire_certificates", "workers"):
        keys = ("type", "default", "choices", "required")
        assert {k: fleet[option].get(k) for k in keys} == {k: drift[option].get(k) for k in keys}, option
    assert drift["pki_dir"]["required"] is True and drift["retire_certificates"]["choices"] == ["delete", "revoke"]
    assert drift["ca_certificate"]["required"] is True and not fleet["ca_certificate"].get("required")
    assert any("signs device certificates" in line for line in fleet["ca_certificate"]["description"])
    assert "certificates are checked" in str(drift["ca_certificate"]["description"])


def test_status_is_documented_upper_case_with_lower_case_accepted(modules):
    for module in ("iot_certificate", "iot_ca_certificate"):
        status = modules[f"iotfleet.aws.{module}"]["doc"]["options"]["status"]
        assert status["default"] == "ACTIVE"
        assert [c for c in status["choices"] if c.isupper()] == [c.upper() for c in status["choices"] if c.islower()]
        assert any("Lower case is accepted" in line for line in status["description"])


def test_the_fleet_lock_says_it_never_reports_a_change(modules):
    doc = modules["iotfleet.aws.iot_fleet_lock"]["doc"]
    assert any("never reports a change" in line for line in doc["description"])
    assert doc["options"]["ttl"]["default"] == 900 and doc["options"]["name"]["default"] == "fleet"
    assert "iotfleet.aws.iot" in doc["attributes"]["action_group"]["membership"]
