# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.


class ModuleDocFragment:
    # Standard documentation fragment
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
  action_group:
    description: Use C(group/iotfleet.aws.iot) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - iotfleet.aws.iot
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
"""

    # device-side modules (device_csr, device_bundle): list it BEFORE iotfleet.aws._attributes, so
    # that its action_group (no membership) is the one kept when the two are merged
    DEVICE_MODULE = r"""
options: {}
attributes:
  action_group:
    description: A device-side module, not an AWS one; it is not in the C(iotfleet.aws.iot) group.
    support: none
    membership: []
"""
