# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: count remote module runs per host (what a Pi Zero pays ~1.5 s for).

A task result counts when it ran on the host itself: not skipped, not delegated, and not an
action that runs on the controller only (set_fact, assert, debug, fail, meta, include_*,
argument validation). Writes {"host": {"runs": N, "raw": R, "seconds": S, "tasks": [...]}} as JSON to
$IOTFLEET_REMOTE_RUNS_FILE at the end of the playbook; ``raw`` counts the runs among ``runs`` that were
``raw`` tasks (a shell command, no Python module: ~1/8 of a module run on a Pi Zero).
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: remote_runs
type: aggregate
short_description: Count remote module runs per host (test helper)
description: Counts module runs that executed on each host and writes them as JSON.
requirements:
  - enable in ANSIBLE_CALLBACKS_ENABLED
"""

LOCAL_ACTIONS = {
    "set_fact", "assert", "debug", "fail", "meta", "include_role", "import_role", "include_tasks",
    "import_tasks", "include_vars", "validate_argument_spec", "add_host", "group_by", "pause",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "remote_runs"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = {}
        self.started = {}

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.monotonic()

    def _record(self, result):
        task = result._task
        action = task.action.rsplit(".", 1)[-1]
        if action in LOCAL_ACTIONS or result._result.get("skipped"):
            return
        if task.delegate_to or result._result.get("_ansible_delegated_vars"):
            return
        host = result._host.get_name()
        entry = self.counts.setdefault(host, {"runs": 0, "raw": 0, "seconds": 0.0, "tasks": []})
        entry["runs"] += 1
        entry["raw"] += int(action == "raw")
        entry["tasks"].append(task.get_name())
        start = self.started.pop((host, task._uuid), None)
        if start is not None:
            entry["seconds"] = round(entry["seconds"] + time.monotonic() - start, 2)

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("IOTFLEET_REMOTE_RUNS_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(self.counts, f, indent=2, sort_keys=True)
