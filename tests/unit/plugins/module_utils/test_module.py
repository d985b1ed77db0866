# -*- coding: utf-8 -*-
"""The module base: AWS sees iotfleet.aws in the user agent, at galaxy.yml's version."""

import os

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
