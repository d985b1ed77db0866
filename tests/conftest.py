# -*- coding: utf-8 -*-
"""Shared pytest fixtures: a real AWS IoT API server over HTTP on a free loopback port: the lab's
AWS IoT Core stand-in, control plane only (moto's IoT backend plus the checks AWS makes and moto
skips, lab/iotcore/control.py), so module tests are refused what AWS refuses.

Each pytest process (each xdist worker) starts its own server, so tests stay parallel-safe.
Only the process this fixture started is ever stopped.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REGION = "us-east-1"
STAND_IN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab", "iotcore", "server.py")
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class MotoServer:
    def __init__(self, tmp_dir):
        self.port = None
        self.proc = None
        self.log = os.path.join(tmp_dir, "moto.log")

    def start(self):
        for _attempt in range(5):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, STAND_IN, "--state", os.path.dirname(self.log), "--api", f"127.0.0.1:{self.port}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_for_port(self.port, proc=self.proc)
                return self
            except RuntimeError:
                continue  # port taken between pick and bind: pick another
        raise RuntimeError(f"moto server did not start, see {self.log}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(str(tmp_path_factory.mktemp("moto"))).start()
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
