# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The module base class: AnsibleAWSModule with this collection's client and one exit path."""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError


class IoTModule(AnsibleAWSModule):
    """AnsibleAWSModule plus :meth:`iot_client` and :meth:`run`."""

    def iot_client(self, limiter=None, retry=None):
        return IoTClient.from_module(self, limiter=limiter, retry=retry)

    def run(self, func, *args, **kwargs):
        """Call ``func`` and exit with its result; the collection's errors fail the module.

        ``func`` returns a dict (module return values) or an object with ``to_result(diff)``.
        """
        try:
            result = func(*args, **kwargs)
        except IoTFleetError as e:
            self.fail_json(msg=e.message, **e.kwargs)
        except IoTAWSError as e:
            self.fail_json_aws_error(e)
        if hasattr(result, "to_result"):
            result = result.to_result(diff=self._diff)
        self.exit_json(**result)
