# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""Progress of a long batched run (iot_fleet), shown to the operator while the module runs.

A module cannot print while it runs: Ansible reads its output when it exits. So the iot_fleet
action plugin (on the controller) names a file in the module's environment (``PROGRESS_ENV``) when
the module runs on the controller, the module appends one JSON line per batch of finished devices
(:class:`ProgressWriter`, called by ``ensure_fleet`` per device), and the action plugin displays each
new line as it appears (:func:`read_new`, :func:`describe`). No AWS call is made for it, nothing is
written under the fleet's pki dir, and no device data beyond counts is written. iot_fleet_lock uses the
same file for the lines of a run that waits for the fleet lock (:func:`record_writer_from_environment`).
"""

import json
import os
import time

PROGRESS_ENV = "IOTFLEET_PROGRESS_FILE"


class ProgressWriter:
    """``writer(result)`` per finished device (the caller serialises the calls); every ``every``
    devices, and at the last one, appends ``{"done", "total", "changed", "failed", "elapsed"}``."""

    def __init__(self, path, total, every):
        self.path, self.total, self.every = path, total, max(1, int(every))
        self.done = self.changed = self.failed = 0
        self.start = time.monotonic()

    @classmethod
    def from_environment(cls, total, every):
        """The writer the action plugin asked for, or None (no file named, progress off, one batch or less)."""
        path = os.environ.get(PROGRESS_ENV)
        if not path or every <= 0 or total <= every:
            return None
        return cls(path, total, every)

    def __call__(self, result):
        self.done += 1
        self.changed += bool(result.get("changed"))
        self.failed += bool(result.get("failed"))
        if self.done % self.every and self.done != self.total:
            return
        line = json.dumps(dict(done=self.done, total=self.total, changed=self.changed, failed=self.failed,
                               elapsed=round(time.monotonic() - self.start, 1)))
        try:
            with open(self.path, "a") as handle:
                handle.write(line + "\n")
        except OSError:
            pass  # progress is a courtesy: never fail the fleet for it


def record_writer_from_environment():
    """``write(record)``: appends one JSON line per call to the file the action plugin named (a module
    that waits, iot_fleet_lock); None when no file is named. Never fails the module."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return None

    def write(record):
        try:
            with open(path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError:
            pass  # progress is a courtesy

    return write


def read_new(path, offset):
    """The complete lines appended to ``path`` since ``offset``: ``(records, new offset)``."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records, offset + end


def describe(record):
    """One line for the operator: ``1500/10000 devices (15 %), 3 changed, 0 failed, 41 s, 36.6/s``."""
    done, total, elapsed = record["done"], record["total"], record["elapsed"]
    rate = f", {done / elapsed:.1f}/s" if elapsed > 0 else ""
    return (f"{done}/{total} devices ({100 * done // max(total, 1)} %), {record['changed']} changed, "
            f"{record['failed']} failed, {elapsed:.0f} s{rate}")
