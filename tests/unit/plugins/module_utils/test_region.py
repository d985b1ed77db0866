# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A region AWS does not have (issue 19) fails before any call, naming it: checked against botocore's
partition data; with a custom endpoint_url only the region's format."""

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.iotfleet.aws.plugins.module_utils._client import known_regions
from ansible_collections.iotfleet.aws.plugins.module_utils._client import region_problem


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"])
def test_regions_of_every_partition_pass(region):
    assert region in known_regions()
    assert region_problem(region) is None


def test_a_region_aws_does_not_have_is_named_with_a_hint():
    problem = region_problem("us-est-1")
    assert "'us-est-1'" in problem and "not an AWS region with AWS IoT" in problem
    assert "'us-east-1'" in problem                       # did you mean
    assert "Nothing was called" in problem


def test_custom_endpoint_checks_only_the_format():
    assert region_problem("us-est-1", endpoint_url="http://127.0.0.1:5000") is None
    assert region_problem("us-lab-1", endpoint_url="http://127.0.0.1:5000") is None
    problem = region_problem("US East", endpoint_url="http://127.0.0.1:5000")
    assert "'US East'" in problem and "not an AWS region name" in problem
    assert region_problem(None) is None                   # no region: amazon.aws says so itself


def test_a_module_fails_before_any_call(monkeypatch, capsys):
    import botocore.endpoint

    def no_call(*args, **kwargs):
        raise AssertionError("an HTTP request was made")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", no_call)
    from ansible_collections.iotfleet.aws.plugins.modules import iot_endpoint_info

    with patch_module_args({"region": "us-est-1", "access_key": "AKIDEXAMPLE", "secret_key": "secret"}):
        with pytest.raises(SystemExit):
            iot_endpoint_info.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "'us-est-1'" in result["msg"], result


def test_the_message_names_the_service_the_region_lacks():
    # the KMS client of a CA key in KMS (iotfleet_ca_backend kms) is checked the same way, named as KMS
    problem = region_problem("us-est-1", service="kms", known=("us-east-1",))
    assert "not an AWS region with AWS KMS (did you mean 'us-east-1'?)" in problem
