# -*- coding: utf-8 -*-
"""Progress lines of a batched run (module_utils/_progress.py): the module's writer, the action
plugin's reader, and ensure_fleet calling the writer once per device."""

import json

from ansible_collections.iotfleet.aws.plugins.module_utils import _progress
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import FleetSpec
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import ensure_fleet
from ansible_collections.iotfleet.aws.plugins.module_utils._fleet import validate_devices


def test_writer_every_batch_and_the_last(tmp_path):
    path = tmp_path / "progress"
    writer = _progress.ProgressWriter(str(path), total=7, every=3)
    for i in range(7):
        writer({"changed": i % 2 == 0, "failed": i == 6})
    records, offset = _progress.read_new(str(path), 0)
    assert [(r["done"], r["total"], r["changed"], r["failed"]) for r in records] == [
        (3, 7, 2, 0), (6, 7, 3, 0), (7, 7, 4, 1)]
    assert offset == path.stat().st_size
    assert _progress.read_new(str(path), offset) == ([], offset)


def test_reader_leaves_a_partial_line_for_later(tmp_path):
    path = tmp_path / "progress"
    path.write_text(json.dumps({"done": 1}) + "\n" + '{"done": ')
    records, offset = _progress.read_new(str(path), 0)
    assert records == [{"done": 1}] and offset == len(json.dumps({"done": 1})) + 1
    assert _progress.read_new(str(tmp_path / "missing"), 5) == ([], 5)


def test_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(_progress.PROGRESS_ENV, raising=False)
    assert _progress.ProgressWriter.from_environment(1000, 500) is None
    monkeypatch.setenv(_progress.PROGRESS_ENV, str(tmp_path / "p"))
    assert _progress.ProgressWriter.from_environment(1000, 0) is None
    assert _progress.ProgressWriter.from_environment(500, 500) is None   # one batch: silent
    assert _progress.ProgressWriter.from_environment(1000, 500).every == 500


def test_describe():
    line = _progress.describe({"done": 1500, "total": 10000, "changed": 3, "failed": 1, "elapsed": 40.0})
    assert line == "1500/10000 devices (15 %), 3 changed, 1 failed, 40 s, 37.5/s"
    assert "/s" not in _progress.describe({"done": 1, "total": 2, "changed": 0, "failed": 0, "elapsed": 0})


def test_ensure_fleet_reports_every_device(tmp_path):
    """jitp: no AWS client needed; the callback sees each of the devices exactly once."""
    from ansible_collections.iotfleet.aws.plugins.module_utils import _x509

    ca_cert, ca_key = _x509.create_ca("progress CA")
    devices = validate_devices([dict(thing_name=f"pi-{i}") for i in range(9)])
    spec = FleetSpec(devices, ca_cert, ca_key, str(tmp_path / "pki"), registration="jitp")
    seen = []
    result = ensure_fleet(None, spec, workers=3, progress=seen.append)
    assert sorted(r["thing_name"] for r in seen) == sorted(d["thing_name"] for d in result["devices"])
    assert len(seen) == 9
