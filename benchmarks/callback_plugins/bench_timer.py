# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback (benchmarks/scale_bench.py, slice_bench.py): the wall time of every task and
when it started (epoch seconds), written as JSON to $BENCH_TIMER_FILE at the end of the run."""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Task wall times for the iotfleet.aws benchmarks
description: Writes C([{"task", "seconds", "status", "start"}]) to the file named by E(BENCH_TIMER_FILE).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks, self.current = [], None

    def _close(self, status):
        if self.current is not None:
            name, start, epoch = self.current
            self.tasks.append(dict(task=name, seconds=round(time.perf_counter() - start, 3), status=status,
                                   start=round(epoch, 3)))
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close("done")
        self.current = (task.get_name(), time.perf_counter(), time.time())

    def v2_runner_on_ok(self, result):
        self._close("ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._close("failed")

    def v2_runner_on_skipped(self, result):
        self._close("skipped")

    def v2_playbook_on_stats(self, stats):
        self._close("done")
        path = os.environ.get("BENCH_TIMER_FILE")
        if path:
            with open(path, "w") as handle:
                json.dump(self.tasks, handle)
