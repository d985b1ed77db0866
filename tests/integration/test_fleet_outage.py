# -*- coding: utf-8 -*-
"""A 30 s outage of the AWS endpoint in the middle of a fleet registration fails no device.

The batched registration (ensure_fleet, as iot_fleet runs it) talks to the stand-in's API through a
forwarder that the test closes (every connection cut, new ones refused) 1 s into the run and opens
again 30 s later. Only loopback; bounded in count (40 devices) and time.
"""

import threading
import time

import boto3
import pytest
from botocore.config import Config

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec, ensure_fleet, validate_devices
from support.iotcore import CREDENTIALS, REGION, register_ca_certificate
from support.proxy import Forwarder

pytestmark = pytest.mark.integration
DEVICES = 40
OUTAGE = 30.0


def test_a_30s_outage_during_registration_fails_no_device(moto, boto3_iot, tmp_path):
    ca_cert, ca_key = _x509.create_ca("Outage fleet CA")
    register_ca_certificate(boto3_iot, ca_cert, ca_key)
    boto3_iot.create_policy(policyName="fleet", policyDocument='{"Version": "2012-10-17", "Statement": []}')

    proxy = Forwarder(moto.api_port)
    proxy.open()
    raw = boto3.client("iot", region_name=REGION, endpoint_url=proxy.url, **CREDENTIALS,
                       config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
    client = IoTClient(raw, limiter=RateLimiter({"RegisterCertificate": 10.0, "CreateThing": 15.0}))
    devices = validate_devices([dict(thing_name=f"pi-{i}") for i in range(DEVICES)])
    spec = FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), policy_name="fleet")

    outage = {}

    def start():
        outage["start"] = time.monotonic()
        proxy.close()
        threading.Timer(OUTAGE, end).start()

    def end():
        outage["end"] = time.monotonic()
        proxy.open()

    threading.Timer(1.0, start).start()
    try:
        started = time.monotonic()
        result = ensure_fleet(client, spec, workers=8)
        finished = time.monotonic()
    finally:
        proxy.close()
    assert outage.get("end", 0) - outage.get("start", 0) >= OUTAGE - 0.5   # the outage really happened
    assert finished - started >= OUTAGE, "the run ended before the endpoint came back"
    assert result["failed_devices"] == [], [d.get("msg") for d in result["devices"] if d["failed"]][:3]
    things = {t["thingName"] for t in boto3_iot.list_things()["things"]}
    assert things == {f"pi-{i}" for i in range(DEVICES)}
    for device in result["devices"]:
        principals = boto3_iot.list_thing_principals(thingName=device["thing_name"])["principals"]
        assert principals == [device["certificate_arn"]]
