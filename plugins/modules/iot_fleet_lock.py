#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: iot_fleet_lock
version_added: 1.0.0
short_description: One writer at a time - an expiring lease lock kept in AWS IoT
description:
  - Takes, holds or releases a lease lock that serialises the runs writing to one fleet's AWS IoT registry
    (cron and an operator, two admins, AWX slices on execution nodes with no shared disk). The lock lives in
    AWS IoT itself, no other service is needed - the static thing group C(iotfleet-lock-<name>), whose
    attributes C(owner), C(acquired_at) and C(expires_at) say who holds it until when.
  - Every write carries the version just read (UpdateThingGroup C(expectedVersion)); AWS refuses a stale
    one, so of two runs that see the lock free only one takes it. The other reads again and waits.
  - "V(present) takes the lock, or extends it when O(owner) holds it already (the lease then runs
    O(ttl) seconds from now). A lock another owner holds is waited for, polling with backoff (1 s doubling
    to 15 s, waking when the lease expires), for up to O(wait_timeout) seconds. When the module runs on the
    controller each poll shows a line C(iot_fleet_lock: waiting for the fleet lock ...) that names the holder,
    since when it holds the lock, when its lease expires and how long this run has waited. At
    O(wait_timeout) the task fails, naming the holder and the expiry, having written nothing."
  - A lease expires O(ttl) seconds after it was taken or extended, so a run killed while holding it blocks
    the others for O(ttl) at most; the next run then takes it over and says from whom (RV(took_over)).
  - V(absent) releases the lock if O(owner) holds it (version-checked); a lock held by another owner, or
    free, is left alone, so releasing is idempotent. The thing group stays.
  - The task never reports a change (C(changed=false)), whether it takes, extends or releases the lock -
    the lock is bookkeeping, not fleet state, so a rerun of a playbook that takes and releases it still ends
    with C(changed=0). What it did is in RV(acquired), RV(released), RV(took_over) and RV(msg).
author:
  - iotfleet.aws developers (@iotfleet)
options:
  name:
    description:
      - The name of the lock; the thing group is C(iotfleet-lock-<name>) (at most 128 characters from
        C([a-zA-Z0-9:_-])). Runs that must not write at the same time use the same name.
    type: str
    default: fleet
  state:
    description:
      - V(present) takes the lock (waiting for it) or extends it; V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Who holds the lock, stored as a thing group attribute (1-800 characters from
        C([a-zA-Z0-9_.,@/:#=[]-]), no spaces).
      - By default this run, C(<controller host name>:<pid>:<start time>) of the ansible-playbook process
        the module runs under, the same for every task of one run. Off Linux (no C(/proc)) the default
        differs from task to task; pass the RV(owner) the taking task returned to the releasing task (the
        collection's playbooks do so always).
    type: str
  ttl:
    description:
      - Seconds the lease lasts after it is taken or extended (1 to 604800). Choose it longer than the
        longest stretch of writes between two extensions, and short enough that a killed run does not block
        the fleet for long.
    type: int
    default: 900
  wait_timeout:
    description:
      - Seconds to wait for a lock another owner holds before failing. V(0) fails at once.
    type: int
    default: 600
  force:
    description:
      - With V(present), take the lock whoever holds it; with V(absent), release it whoever holds it. Only for a
        holder that is known to be gone (the way out before its lease expires), never in a playbook's normal
        run.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details:
      - Reads only; says whether the lock would be taken (RV(acquired)), or for whom it would wait (RV(held_by));
        it neither waits nor fails in check mode.
  diff_mode:
    support: full
    details:
      - The diff shows the lock's owner and expiry before and after.
  idempotent:
    support: full
    details:
      - The task never reports a change. Taking the lock again by its owner extends the lease.
notes:
  - The lease's times are the controller's clock (UTC). Controllers whose clocks differ by more than a small part
    of O(ttl) see a lease expire at different moments.
  - AWS IoT allows one thing group per lock name; the thing group stays after the release (with no
    attributes) and can be deleted with M(iotfleet.aws.iot_thing_group) when the lock is no longer used.
extends_documentation_fragment:
  - iotfleet.aws._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Take the fleet lock (wait up to 30 minutes for another run)
  iotfleet.aws.iot_fleet_lock:
    ttl: 900
    wait_timeout: 1800
  register: fleet_lock

- name: Extend the lease before a long stretch of writes
  iotfleet.aws.iot_fleet_lock:
    owner: "{{ fleet_lock.owner }}"

- name: Release it (only if this run still holds it)
  iotfleet.aws.iot_fleet_lock:
    owner: "{{ fleet_lock.owner }}"
    state: absent

- name: Take over from a run known to be dead, before its lease expires
  iotfleet.aws.iot_fleet_lock:
    force: true
"""

RETURN = r"""
lock_name:
  description: The thing group that holds the lock.
  returned: always
  type: str
  sample: iotfleet-lock-fleet
owner:
  description: The owner this task took, held or released the lock for (pass it to a later task).
  returned: always
  type: str
  sample: ctl-1.example.com:48213:20261207T100000Z
acquired:
  description: Whether the lock is now held by RV(owner) (in check mode, whether it would be).
  returned: when O(state=present)
  type: bool
  sample: true
acquired_at:
  description: When the lease was taken or extended (UTC).
  returned: when RV(acquired) is true
  type: str
  sample: "2026-12-07T10:00:00Z"
expires_at:
  description: When the lease expires unless extended (UTC); null when not acquired.
  returned: when O(state=present)
  type: str
  sample: "2026-12-07T10:15:00Z"
ttl:
  description: The lease's length in seconds.
  returned: when O(state=present)
  type: int
  sample: 900
waited:
  description: Seconds this task waited for another owner's lease.
  returned: when O(state=present)
  type: float
  sample: 42.0
held_by:
  description:
    - The other owner's lease, when it is not this owner's (in check mode with O(state=present); with
      O(state=absent) when the lock is left alone), else null.
  returned: always
  type: dict
  sample: {"owner": "ctl-2:3911:20261207T094500Z", "acquired_at": "2026-12-07T09:45:00Z",
           "expires_at": "2026-12-07T10:00:00Z", "expires_in": 412}
took_over:
  description: The expired (or, with O(force), live) lease of another owner this task took the lock from; null otherwise.
  returned: when O(state=present)
  type: dict
  sample: {"owner": "ctl-2:3911:20261207T094500Z", "acquired_at": "2026-12-07T09:45:00Z",
           "expires_at": "2026-12-07T10:00:00Z", "expires_in": 0}
released:
  description: Whether this task released the lock.
  returned: when O(state=absent)
  type: bool
  sample: true
released_from:
  description: The other owner's lease a forced release removed; null otherwise.
  returned: when O(state=absent) and the lock was released
  type: dict
msg:
  description: What the task did, in one sentence.
  returned: always
  type: str
  sample: Acquired iotfleet-lock-fleet until 2026-12-07T10:15:00Z after waiting 42 s.
"""

from ansible_collections.iotfleet.aws.plugins.module_utils._lock import run_fleet_lock
from ansible_collections.iotfleet.aws.plugins.module_utils._module import IoTModule


def main():
    argument_spec = dict(
        name=dict(type="str", default="fleet"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        owner=dict(type="str"),
        ttl=dict(type="int", default=900),
        wait_timeout=dict(type="int", default=600),
        force=dict(type="bool", default=False),
    )
    module = IoTModule(argument_spec=argument_spec, supports_check_mode=True)
    module.run_resource(run_fleet_lock)


if __name__ == "__main__":
    main()
