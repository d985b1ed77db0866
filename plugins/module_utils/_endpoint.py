# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""AWS IoT endpoints (read-only)."""


def describe_endpoints(client, endpoint_types):
    """Return module values: ``endpoint`` (the first type) and ``endpoints`` by type."""
    endpoints = {}
    for endpoint_type in endpoint_types:
        endpoints[endpoint_type] = client.call("describe_endpoint", endpointType=endpoint_type)["endpointAddress"]
    return dict(changed=False, endpoint=endpoints[endpoint_types[0]] if endpoint_types else None, endpoints=endpoints)
