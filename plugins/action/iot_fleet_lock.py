# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for iotfleet.aws.iot_fleet_lock: runs the module as usual and, while it waits for a lock
another run holds, displays a line per poll (for whom it waits, since when, how long the lease has left,
how long it has waited). The same mechanism as iot_fleet's progress lines (module_utils/_progress.py);
the module runs once.
"""

from ansible_collections.iotfleet.aws.plugins.action.iot_fleet import ActionModule as _ProgressActionModule
from ansible_collections.iotfleet.aws.plugins.module_utils._lock import describe_wait


class ActionModule(_ProgressActionModule):
    _label = "iot_fleet_lock"

    def _describe(self, record):
        return describe_wait(record)

    def _wants_progress(self):
        args = self._task.args
        return (args.get("state", "present") == "present" and not self._task.async_val
                and self._connection.transport == "local")
