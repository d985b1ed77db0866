# -*- coding: utf-8 -*-
"""An outage of the AWS endpoint is waited out (bounded), not turned into failed devices.

Against the stand-in's API behind a forwarder the test opens and closes (tests/support/proxy.py).
"""

import threading
import time

import boto3
import botocore
import pytest
from botocore.config import Config

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError, IoTClient, _connection_failure
from support.iotcore import CREDENTIALS, REGION
from support.procs import free_port
from support.proxy import Forwarder


def _client(url, outage_seconds):
    raw = boto3.client("iot", region_name=REGION, endpoint_url=url,
                       config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5), **CREDENTIALS)
    return IoTClient(raw, outage_seconds=outage_seconds)


def test_an_outage_shorter_than_the_bound_is_waited_out(moto):
    proxy = Forwarder(moto.api_port)
    ends = threading.Timer(2.0, proxy.open)   # the endpoint comes back after 2 s
    ends.start()
    try:
        started = time.monotonic()
        client = _client(proxy.url, outage_seconds=30)
        client.call("create_thing", thingName="survivor")
        assert time.monotonic() - started >= 1.5
        assert client.call("describe_thing", thingName="survivor")["thingName"] == "survivor"
    finally:
        ends.cancel()
        proxy.close()


def test_an_outage_longer_than_the_bound_fails_saying_so():
    closed = free_port()   # nothing listens: connection refused at once
    started = time.monotonic()
    with pytest.raises(IoTAWSError, match=r"unreachable for 1 s \(outage_seconds\)"):
        _client(f"http://127.0.0.1:{closed}", outage_seconds=1).call("list_things")
    assert 0.9 <= time.monotonic() - started < 10


def test_connection_errors_are_transient_answers_are_not():
    refused = botocore.exceptions.EndpointConnectionError(endpoint_url="http://x")
    lost = botocore.exceptions.ReadTimeoutError(endpoint_url="http://x")
    answered = botocore.exceptions.ClientError({"Error": {"Code": "InvalidRequestException"}}, "CreateThing")
    assert _connection_failure(refused, "register_certificate") and _connection_failure(lost, "describe_certificate")
    assert _connection_failure(lost, "register_certificate")   # the ensure functions converge on a repeat
    assert not _connection_failure(answered, "create_thing")
