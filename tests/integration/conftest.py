# -*- coding: utf-8 -*-
"""The whole AWS IoT Core stand-in (control plane and broker) for the data-plane tests: one per
test module (and xdist worker), its registry emptied before each test. A module may set
STANDIN_SERVER_NAMES to choose the names in the broker's certificate besides the endpoint."""

import pytest

from support.iotcore import IoTCore


@pytest.fixture(scope="module")
def standin(tmp_path_factory, request):
    names = getattr(request.module, "STANDIN_SERVER_NAMES", None)
    with IoTCore(tmp_path_factory.mktemp("iotcore"), server_names=names) as core:
        yield core


@pytest.fixture
def core(standin):
    standin.reset()
    return standin
