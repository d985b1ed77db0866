# -*- coding: utf-8 -*-
"""Lab tests need podman, qemu-arm binfmt and the Pi image (lab/host-setup.sh, lab/image.sh)."""

import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    missing = [tool for tool in ("podman", "mosquitto", "mosquitto_sub") if shutil.which(tool) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"lab tools missing: {', '.join(missing)} (run lab/host-setup.sh)")
    for item in items:
        if "molecule" in item.keywords:
            item.add_marker(skip)
