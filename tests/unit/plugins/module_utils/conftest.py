# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the batched fleet tests (test_fleet*.py): the fleet CA and a stand-in account
ready for ``ensure_fleet`` (the CA registered, the device policy made, every call counted)."""

import collections

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from support.unit import POLICY
from support.iotcore import register_ca_certificate
from support.recorders import ApiCallCounter

FleetAccount = collections.namedtuple("FleetAccount", "client counter ca_cert ca_key pki")


@pytest.fixture(scope="session")
def fleet_ca():
    """The fleet CA (certificate, key), made once per test process."""
    return _x509.create_ca("Fleet CA")


@pytest.fixture
def fleet_account(boto3_iot, fleet_ca, tmp_path):
    """The fleet CA registered and the policy ``support.unit.POLICY`` made in an empty stand-in
    account; an IoTClient with quick retries whose AWS calls an ApiCallCounter counts (botocore
    event hooks); ``pki``: ``<tmp_path>/pki``."""
    ca_cert, ca_key = fleet_ca
    register_ca_certificate(boto3_iot, ca_cert, ca_key)
    boto3_iot.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    counter = ApiCallCounter().attach(boto3_iot)
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=6, delay=0.01, max_delay=0.05))
    return FleetAccount(client, counter, ca_cert, ca_key, str(tmp_path / "pki"))
