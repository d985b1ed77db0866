# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for iotfleet.aws.iot_fleet: runs the module as usual and, while it runs on the
controller, displays a progress line per batch of devices (O(progress_every)). A CA key file encrypted
with Ansible Vault is decrypted here and passed as the module's no_log content option
(plugin_utils/_vault_keys.py).

The module appends one JSON line per batch to a file this plugin names in the module's environment
(module_utils/_progress.py); this plugin runs the module in a thread and shows each new line. The
module runs ONCE for the whole fleet (one registry snapshot, one rate limiter), as without progress.
"""

import os
import tempfile
import threading

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.iotfleet.aws.plugins.module_utils._progress import PROGRESS_ENV
from ansible_collections.iotfleet.aws.plugins.module_utils._progress import describe
from ansible_collections.iotfleet.aws.plugins.module_utils._progress import read_new
from ansible_collections.iotfleet.aws.plugins.plugin_utils._vault_keys import task_key_args

display = Display()

# how often the file is looked at while the module runs (a bounded wait on the module's thread)
POLL_SECONDS = 1.0
# CA key files encrypted with Ansible Vault: decrypted here, passed as the module's no_log content options
KEY_OPTIONS = {"ca_private_key": "ca_private_key_content", "next_ca_private_key": "next_ca_private_key_content"}


class ActionModule(ActionBase):
    _progress_path = None
    _label = "iot_fleet"   # the prefix of each progress line (iot_fleet_lock's action plugin reuses this one)

    def _describe(self, record):
        return describe(record)

    def _wants_progress(self):
        args = self._task.args
        every = args.get("progress_every", 500)
        devices = args.get("devices")
        try:
            every = int(every)
        except (TypeError, ValueError):
            return False  # the module refuses it with its own message
        return (every > 0 and isinstance(devices, list) and len(devices) > every
                and not self._task.async_val and self._connection.transport == "local")

    def _compute_environment_string(self, raw_environment_out=None):
        if self._progress_path is None:
            return super()._compute_environment_string(raw_environment_out)
        environment = {}
        super()._compute_environment_string(environment)
        environment[PROGRESS_ENV] = self._progress_path
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return self._connection._shell.env_prefix(**environment)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        args = task_key_args(self, result, KEY_OPTIONS)
        if args is None:
            return result
        if not self._wants_progress():
            result.update(self._execute_module(module_args=args, task_vars=task_vars, wrap_async=wrap_async))
            return result

        handle, self._progress_path = tempfile.mkstemp(prefix="iotfleet-progress-", dir=C.DEFAULT_LOCAL_TMP)
        os.close(handle)
        outcome = {}

        def execute():
            try:
                outcome["result"] = self._execute_module(module_args=args, task_vars=task_vars)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the plugin's own thread below
                outcome["error"] = exc

        runner = threading.Thread(target=execute, name=f"iotfleet-{self._label}", daemon=True)
        offset = 0
        try:
            runner.start()
            while runner.is_alive():
                runner.join(POLL_SECONDS)
                records, offset = read_new(self._progress_path, offset)
                for record in records:
                    display.display(f"{self._label}: {self._describe(record)}")
        finally:
            runner.join()
            try:
                os.unlink(self._progress_path)
            except OSError:
                pass
            self._progress_path = None
        if "error" in outcome:
            raise outcome["error"]
        result.update(outcome["result"])
        return result
