# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The module base class: AnsibleAWSModule with this collection's client and one exit path."""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info
from ansible_collections.amazon.aws.plugins.module_utils.common import set_collection_info
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_info
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import region_problem


COLLECTION_NAME = "iotfleet.aws"
COLLECTION_VERSION = "1.0.0"   # galaxy.yml's version (a unit test keeps them equal)


class IoTModule(AnsibleAWSModule):
    """AnsibleAWSModule plus :meth:`iot_client` and :meth:`run`. AWS sees this collection in the
    user agent (``APN/1.0 Ansible/<core> iotfleet.aws/<version>``), not amazon.aws."""

    def __init__(self, *args, **kwargs):
        set_collection_info(collection_name=COLLECTION_NAME, collection_version=COLLECTION_VERSION)
        # the module's own options (AnsibleAWSModule adds the AWS connection ones)
        self._resource_options = tuple(kwargs.get("argument_spec") or ())
        super().__init__(*args, **kwargs)

    def iot_client(self, limiter=None, retry=None):
        return self.aws_client("iot", limiter=limiter, retry=retry)

    def kms_client(self, limiter=None, retry=None):
        """AWS KMS through the same client layer (the fleet CA key in KMS: iotfleet_ca_backend kms)."""
        return self.aws_client("kms", limiter=limiter, retry=retry)

    def aws_client(self, service, limiter=None, retry=None):
        # a region AWS does not have (us-est-1) fails here, before any call, naming it
        region, endpoint_url, _params = get_aws_connection_info(self)
        problem = region_problem(region, endpoint_url, service=service)
        if problem:
            self.fail_json(msg=problem)
        # the account of a predicted ARN (check mode): amazon.aws's STS GetCallerIdentity (IAM GetUser
        # as a fallback), one call, made only when an ARN must be predicted
        client = IoTClient(self.client(service), retry=retry, limiter=limiter,
                           account_info=lambda: get_aws_account_info(self))
        self.__dict__.setdefault("_iot_clients", []).append(client)
        return client

    def _wrote(self):
        """True when a write reached AWS in this run: a failure after it still changed something."""
        return any(c.writes for c in self.__dict__.get("_iot_clients", []))

    def run_resource(self, func, **extra):
        """The one entry shape of the single-resource modules:
        ``func(client, *, state, check_mode, <the module's own options by name>, <extra>)`` (``extra``: what
        the options need besides the IoT client, e.g. the KMS client of a CA key in KMS)."""
        options = {name: self.params[name] for name in self._resource_options}
        self.run(func, self.iot_client(), check_mode=self.check_mode, **options, **extra)

    def run(self, func, *args, **kwargs):
        """Call ``func`` and exit with its result; the collection's errors fail the module.

        ``func`` returns a dict (module return values) or an object with ``to_result(diff)``.
        """
        try:
            result = func(*args, **kwargs)
        except IoTFleetError as e:
            self.fail_json(msg=e.message, **dict(e.kwargs, changed=self._wrote()))
        except IoTAWSError as e:
            if e.exception is not None:
                self.fail_json_aws(e.exception, msg=e.message, changed=self._wrote())
            self.fail_json(msg=e.message, changed=self._wrote())
        if hasattr(result, "to_result"):
            result = result.to_result(diff=self._diff)
        self.exit_json(**result)
