# -*- coding: utf-8 -*-
"""Shared pytest fixtures: a real AWS IoT API server over HTTP on a free loopback port: the lab's
AWS IoT Core stand-in, control plane only (moto's IoT backend plus the checks AWS makes and moto
skips, lab/iotcore/control.py), so module tests are refused what AWS refuses.

AWS deletes a thing type only 5 minutes after its deprecation; this server waits
THING_TYPE_DELETE_DELAY seconds instead (``moto.thing_type_delete_delay``): long enough that a
delete in the task right after the deprecation is refused even through ansible-playbook on a
loaded machine (tasks took up to ~5 s here), short enough to wait for.

Each pytest process (each xdist worker) starts its own server, so tests stay parallel-safe.
Only the process this fixture started is ever stopped.
"""

import json

import pytest

from support.iotcore import CREDENTIALS, REGION, IoTCore  # noqa: E402  (tests/ is on sys.path)

THING_TYPE_DELETE_DELAY = 15.0


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = IoTCore(
        tmp_path_factory.mktemp("iotcore-api"), broker=False, thing_type_delete_delay=THING_TYPE_DELETE_DELAY
    ).start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server):
    """A moto server with empty state for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def boto3_iot(moto):
    """A plain boto3 IoT client against the test's moto server (no retries: fail fast)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "iot",
        region_name=REGION,
        endpoint_url=moto.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **CREDENTIALS,
    )


@pytest.fixture
def iot_client(boto3_iot):
    """The collection's IoTClient layer over the test's moto server."""
    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, retry_decorator

    return IoTClient(boto3_iot, retry=retry_decorator(retries=1, delay=0.01))


def pretty(obj):
    return json.dumps(obj, indent=2, default=str)


@pytest.fixture
def stubbed():
    """The collection's IoTClient over botocore's Stubber, for calls no server here implements
    (dynamic thing groups, ...): ``(client, stubber)``; every queued answer must be used."""
    import boto3
    from botocore.config import Config
    from botocore.stub import Stubber

    from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient, retry_decorator

    raw = boto3.client("iot", region_name=REGION, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    stubber = Stubber(raw)
    with stubber:
        yield IoTClient(raw, retry=retry_decorator(retries=1, delay=0.01)), stubber
    stubber.assert_no_pending_responses()
