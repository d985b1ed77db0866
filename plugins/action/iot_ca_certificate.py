# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for iotfleet.aws.iot_ca_certificate: runs the module as usual; a CA key file encrypted with
Ansible Vault (O(ca_private_key)) is decrypted here, in ansible-playbook, and passed as the module's
O(ca_private_key_content) (no_log) - see plugin_utils/_vault_keys.py."""

from ansible.plugins.action import ActionBase

from ansible_collections.iotfleet.aws.plugins.plugin_utils._vault_keys import task_key_args

KEY_OPTIONS = {"ca_private_key": "ca_private_key_content"}


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = task_key_args(self, result, KEY_OPTIONS)
        if args is None:
            return result
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result.update(self._execute_module(module_args=args, task_vars=task_vars, wrap_async=wrap_async))
        return result
