# -*- coding: utf-8 -*-
"""The module base: AWS sees iotfleet.aws in the user agent, at galaxy.yml's version."""

import os
import types

import yaml

from ansible_collections.amazon.aws.plugins.module_utils.botocore import _get_user_agent_string
from ansible_collections.amazon.aws.plugins.module_utils.common import set_collection_info
from ansible_collections.iotfleet.aws.plugins.module_utils import _module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_version_is_galaxy_yml_version():
    with open(os.path.join(ROOT, "galaxy.yml")) as f:
        galaxy = yaml.safe_load(f)
    assert f"{galaxy['namespace']}.{galaxy['name']}" == _module.COLLECTION_NAME
    assert galaxy["version"] == _module.COLLECTION_VERSION


def test_a_module_sets_the_user_agent_to_this_collection(monkeypatch):
    set_collection_info(collection_name="amazon.aws", collection_version="11.0.0")
    monkeypatch.setattr(_module.AnsibleAWSModule, "__init__", lambda self, *a, **kw: None)
    _module.IoTModule(argument_spec={})
    assert _get_user_agent_string().endswith(" iotfleet.aws/1.0.0")


SINGLE_RESOURCE_MODULES = [
    "iot_ca_certificate", "iot_certificate", "iot_policy", "iot_policy_attachment", "iot_provisioning_template",
    "iot_thing", "iot_thing_group", "iot_thing_principal", "iot_thing_type", "iot_topic_rule", "iot_fleet_lock",
]


def test_single_resource_modules_have_one_entry_shape(monkeypatch):
    """Every single-resource module is ``module.run_resource(run_<resource>)`` and its
    ``run_<resource>(client, *, state, check_mode, <options>)`` takes exactly the module's options."""
    import importlib
    import inspect

    seen = {}

    def init(self, *args, **kwargs):
        self._resource_options = tuple(kwargs["argument_spec"])

    monkeypatch.setattr(_module.IoTModule, "__init__", init)
    monkeypatch.setattr(_module.IoTModule, "run_resource", lambda self, func, **extra: seen.update(func=func, options=self._resource_options + tuple(extra)))
    for name in SINGLE_RESOURCE_MODULES:
        seen.clear()
        importlib.import_module(f"ansible_collections.iotfleet.aws.plugins.modules.{name}").main()
        func, options = seen["func"], set(seen["options"])
        params = inspect.signature(func).parameters
        assert func.__name__.startswith("run_"), name
        positional = [p for p in params.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert [p.name for p in positional] == ["client"], name
        keyword = {p.name: p for p in params.values() if p.kind is p.KEYWORD_ONLY}
        assert {"state", "check_mode"} <= set(keyword), name
        assert "state" in options, name
        required = {n for n, p in keyword.items() if p.default is p.empty}
        assert required <= options, (name, required - options)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            assert options <= set(keyword), (name, options - set(keyword))


def test_run_resource_passes_only_the_module_options(monkeypatch):
    module = _module.IoTModule.__new__(_module.IoTModule)
    module._resource_options = ("name", "state")
    module._module = types.SimpleNamespace(   # what AnsibleAWSModule's params and check_mode read
        params={"name": "pi", "state": "present", "region": "us-east-1", "access_key": "secret"}, check_mode=True)
    calls = []
    monkeypatch.setattr(_module.IoTModule, "iot_client", lambda self: "client")
    monkeypatch.setattr(_module.IoTModule, "run", lambda self, func, *a, **kw: calls.append((func, a, kw)))
    module.run_resource(len)
    assert calls == [(len, ("client",), {"check_mode": True, "name": "pi", "state": "present"})]
