# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The fleet lock: one writer at a time, as a lease kept in AWS IoT itself (no other service).

The lease is a static thing group, ``iotfleet-lock-<name>``, whose attributes say who holds it:

* ``owner`` - the run that holds it (default: ``<controller host>:<pid>:<start time>`` of the
  ansible-playbook process, :func:`default_owner`);
* ``acquired_at`` and ``expires_at`` - UTC times, second resolution (``2026-12-07T10:00:00Z``).

Every write carries the version just read (``UpdateThingGroup`` ``expectedVersion``): of two runs
that read the same free lease only one write succeeds, AWS refuses the other with a
VersionConflictException, and the loser reads again and finds the lease held. The group is made
by the first run that needs it (``CreateThingGroup`` with its lease: a second creator's different
attributes are a ResourceAlreadyExistsException, so there too exactly one wins).

A lease expires: a run killed while holding it blocks the others for ``ttl`` seconds at most,
after which the next run takes it over (and says from whom). The holder extends it by acquiring
again (the same owner: ``expires_at`` moves to now + ttl). A release writes empty attributes, and
only while the lease is still this owner's (version-checked); releasing a lease one does not
hold, or a free one, does nothing. The group itself stays (one per lock name).

A run that finds the lease held waits, polling with backoff (1 s doubling to 15 s, never past the
lease's expiry nor past ``wait_timeout``), and reports on each poll for whom it waits, how long it
has waited and how long the lease has left. At ``wait_timeout`` it fails with the holder and the
expiry, having written nothing. Check mode reads only: it says whether the lease would be acquired.

Times are the controllers' clocks (UTC): controllers whose clocks differ by more than a small part
of ``ttl`` see a lease expire at different moments.
"""

import datetime
import os
import re
import socket
import time

from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from ansible_collections.iotfleet.aws.plugins.module_utils._progress import record_writer_from_environment
from ansible_collections.iotfleet.aws.plugins.module_utils._resource import Outcome
from ansible_collections.iotfleet.aws.plugins.module_utils._thing_group import validate_group_name

LOCK_GROUP_PREFIX = "iotfleet-lock-"
DEFAULT_NAME = "fleet"
DEFAULT_TTL = 900
DEFAULT_WAIT = 600
MAX_TTL = 7 * 24 * 3600
FIRST_PAUSE = 1.0
MAX_PAUSE = 15.0
MIN_PAUSE = 0.05
DESCRIPTION = "iotfleet.aws fleet lock: one writer at a time (attributes owner, acquired_at, expires_at)"
# a thing group attribute value (botocore's AttributeValue pattern)
OWNER_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]{1,800}$")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LEASE_KEYS = ("owner", "acquired_at", "expires_at")


# ---------------------------------------------------------------------------------------------
# names, owners, times (pure)


def lock_group_name(name):
    """The thing group that holds the lock ``name`` (validated as AWS does)."""
    if not isinstance(name, str) or not name:
        raise IoTFleetError("The lock name must be a non-empty string.")
    return validate_group_name(LOCK_GROUP_PREFIX + name, what="lock name (as thing group iotfleet-lock-<name>)")


def validate_owner(owner):
    if not isinstance(owner, str) or not OWNER_RE.match(owner):
        raise IoTFleetError(f"Invalid lock owner {owner!r}: it is stored as a thing group attribute, 1-800 characters "
                            r"from [a-zA-Z0-9_.,@/:#=[]-] (no spaces).")
    return owner


def format_time(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text):
    """Epoch seconds of a ``format_time`` text; None when missing or unreadable."""
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def duration(seconds):
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: for messages."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _proc_ppid_cmdline(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
        return int(fields[1]), cmdline, int(fields[19])   # ppid, argv, start time in clock ticks after boot
    except (OSError, IndexError, ValueError):
        return None


def _boot_time():
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _is_ansible(cmdline):
    return any(os.path.basename(arg) in ("ansible-playbook", "ansible") for arg in cmdline[:2])


def run_process(start_pid=None):
    """``(pid, start epoch)`` of the ansible-playbook (or ansible) process this module runs under: the
    outermost of the ansible processes above it (a task's worker is a fork of it, with the same command
    line), so every task of one run computes the same pair. None when /proc cannot tell (not Linux)."""
    pid = start_pid or os.getppid()
    chain = []
    for _unused in range(64):
        info = _proc_ppid_cmdline(pid)
        if info is None:
            break
        chain.append((pid, info))
        if info[0] in (0, pid):
            break
        pid = info[0]
    found = None
    for pid, (_ppid, cmdline, started) in chain:
        if _is_ansible(cmdline):
            found = (pid, started)
        elif found is not None:
            break
    if found is None:
        return None
    try:
        return found[0], _boot_time() + found[1] / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def default_owner(clock=time.time):
    """``<controller host>:<pid>:<start time>`` of this run (:func:`run_process`); off Linux the module's
    parent process and now (then pass the owner of the acquiring task to the release: playbooks do)."""
    host = re.sub(r"[^a-zA-Z0-9_.,@/:#=-]", "_", socket.gethostname() or "controller")[:200]
    found = run_process()
    pid, started = found if found is not None else (os.getppid(), clock())
    stamp = datetime.datetime.fromtimestamp(int(started), datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{host}:{pid}:{stamp}"


def lease_of(described):
    """The lease a ``describe_thing_group`` answer holds: ``{owner, acquired_at, expires_at}`` (None for
    a free lease: no group, or no owner; an empty attribute counts as absent, as moto keeps them)."""
    if described is None:
        return None
    attributes = ((described.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("attributes") or {}
    lease = {k: attributes.get(k) or None for k in LEASE_KEYS}
    return lease if lease["owner"] else None


def _holder(lease, now):
    """What the operator is told about a lease: owner, times and the seconds it has left."""
    expires = parse_time(lease.get("expires_at"))
    return dict(owner=lease["owner"], acquired_at=lease.get("acquired_at"), expires_at=lease.get("expires_at"),
                expires_in=None if expires is None else max(0, int(expires - now)))


def _expired(lease, now):
    """A lease whose expiry is past, or unreadable (a broken record would block every run for ever)."""
    expires = parse_time(lease.get("expires_at"))
    return expires is None or expires <= now


# ---------------------------------------------------------------------------------------------
# AWS calls


def describe_lock(client, group_name):
    return client.get("describe_thing_group", thingGroupName=group_name)


def _lease_attributes(owner, now, ttl):
    start = int(now)
    return dict(owner=owner, acquired_at=format_time(start), expires_at=format_time(start + ttl))


def _lost_race(exception):
    return error_code(exception) in ("VersionConflictException", "ResourceAlreadyExistsException")


def try_acquire(client, group_name, owner, ttl, now, check_mode=False, force=False):
    """One attempt. Returns ``(state, lease, previous)``: state ``acquired``, ``held`` (by ``previous``,
    another owner whose lease has not expired) or ``raced`` (another run wrote between our read and our
    write: read again). ``previous`` is the lease found (None when free)."""
    described = describe_lock(client, group_name)
    previous = lease_of(described)
    if previous is not None and previous["owner"] != owner and not force and not _expired(previous, now):
        return "held", None, previous
    lease = _lease_attributes(owner, now, ttl)
    if check_mode:
        return "acquired", lease, previous
    try:
        if described is None:
            client.call("create_thing_group", thingGroupName=group_name, thingGroupProperties=dict(
                thingGroupDescription=DESCRIPTION, attributePayload=dict(attributes=lease)))
        else:
            client.call("update_thing_group", thingGroupName=group_name, expectedVersion=described["version"],
                        thingGroupProperties=dict(attributePayload=dict(attributes=lease, merge=True)))
    except IoTAWSError as e:
        if _lost_race(e):
            return "raced", None, previous
        raise
    return "acquired", lease, previous


def acquire_lock(client, name=DEFAULT_NAME, owner=None, ttl=DEFAULT_TTL, wait_timeout=DEFAULT_WAIT, check_mode=False,
                 force=False, clock=time.time, sleep=time.sleep, on_wait=None):
    """Take (or, for its owner, extend) the lease; wait for another owner's with backoff up to
    ``wait_timeout`` seconds. ``on_wait(record)`` is called before each pause with the holder, the seconds
    waited and the seconds the lease has left. Never reports a change: the lock is bookkeeping."""
    group_name = lock_group_name(name)
    owner = validate_owner(owner if owner else default_owner(clock))
    if not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise IoTFleetError(f"ttl must be a number of seconds from 1 to {MAX_TTL}, got {ttl!r}.")
    if not isinstance(wait_timeout, (int, float)) or wait_timeout < 0:
        raise IoTFleetError(f"wait_timeout must be a number of seconds, 0 or more, got {wait_timeout!r}.")
    start = clock()
    deadline = start + wait_timeout
    pause = FIRST_PAUSE
    while True:
        now = clock()
        state, lease, previous = try_acquire(client, group_name, owner, ttl, now, check_mode=check_mode, force=force)
        if state == "raced":
            continue   # another run wrote between our read and our write: read again at once
        waited = round(clock() - start, 1)
        if state == "acquired":
            took_over = None
            if previous is not None and previous["owner"] != owner:
                took_over = _holder(previous, now)
            return _acquired_outcome(group_name, owner, ttl, lease, waited, took_over, check_mode)
        holder = _holder(previous, now)
        if check_mode:
            # check mode reads only: it neither waits nor fails (it writes nothing either)
            return Outcome(False, before=_facts(previous), after=_facts(previous), lock_name=group_name, owner=owner,
                           acquired=False, held_by=holder, waited=waited, ttl=ttl, expires_at=None, took_over=None,
                           msg=f"Would wait: {_held_text(group_name, holder)}.")
        if now >= deadline:
            raise IoTFleetError(
                f"Gave up after waiting {duration(now - start)} (wait_timeout {wait_timeout} s) for "
                f"{_held_text(group_name, holder)}. Nothing was written. Run again after that run ends or its lease "
                f"expires; if that run is gone for sure, take the lock over with force.",
                held_by=holder, waited=waited, lock_name=group_name, owner=owner)
        if on_wait is not None:
            on_wait(dict(lock=group_name, holder=holder["owner"], acquired_at=holder["acquired_at"],
                         expires_at=holder["expires_at"], expires_in=holder["expires_in"], waited=waited,
                         wait_timeout=wait_timeout))
        expires = parse_time(previous.get("expires_at"))
        wake = min(pause, deadline - now, (expires - now) + MIN_PAUSE if expires is not None else pause)
        sleep(max(MIN_PAUSE, wake))
        pause = min(pause * 2, MAX_PAUSE)


def release_lock(client, name=DEFAULT_NAME, owner=None, check_mode=False, force=False, clock=time.time):
    """Release the lease if ``owner`` holds it (any holder's with ``force``): empty attributes, written with
    the version just read. A lease held by another owner, or free, is left alone. Never reports a change."""
    group_name = lock_group_name(name)
    owner = validate_owner(owner if owner else default_owner(clock))
    while True:
        described = describe_lock(client, group_name)
        lease = lease_of(described)
        values = dict(lock_name=group_name, owner=owner, released=False, held_by=None)
        if lease is None:
            return Outcome(False, before={}, after={}, msg="The lock was free.", **values)
        if lease["owner"] != owner and not force:
            holder = _holder(lease, clock())
            values.update(held_by=holder, msg=f"Left alone: {_held_text(group_name, holder)}, not by {owner}.")
            return Outcome(False, before=_facts(lease), after=_facts(lease), **values)
        if not check_mode:
            try:
                client.call("update_thing_group", thingGroupName=group_name, expectedVersion=described["version"],
                            thingGroupProperties=dict(attributePayload=dict(
                                attributes={k: "" for k in LEASE_KEYS}, merge=True)))
            except IoTAWSError as e:
                if _lost_race(e):
                    continue   # it changed since we read it: read again (taken over after its expiry?)
                raise
        released_from = None if lease["owner"] == owner else _holder(lease, clock())
        values.update(released=True, released_from=released_from, msg=f"Released {group_name}.")
        return Outcome(False, before=_facts(lease), after={}, **values)


def _facts(lease):
    return dict(owner=lease["owner"], expires_at=lease.get("expires_at")) if lease else {}


def _held_text(group_name, holder):
    left = "unknown" if holder["expires_in"] is None else duration(holder["expires_in"])
    return (f"the fleet lock {group_name}, held by {holder['owner']} since {holder['acquired_at']} "
            f"(expires {holder['expires_at']}, in {left})")


def _acquired_outcome(group_name, owner, ttl, lease, waited, took_over, check_mode):
    verb = "Would acquire" if check_mode else "Acquired"
    msg = f"{verb} {group_name} until {lease['expires_at']}"
    if waited >= 1:
        msg += f" after waiting {duration(waited)}"
    if took_over is not None:
        msg += f"; took it over from {took_over['owner']}, whose lease expired {took_over['expires_at']}"
    return Outcome(False, before={}, after=_facts(lease), lock_name=group_name, owner=owner, acquired=True,
                   acquired_at=lease["acquired_at"], expires_at=lease["expires_at"], ttl=ttl, waited=waited,
                   held_by=None, took_over=took_over, msg=msg + ".")


def describe_wait(record):
    """One line for the operator while a run waits (the action plugin shows it)."""
    left = "unknown" if record.get("expires_in") is None else duration(record["expires_in"])
    return (f"waiting for the fleet lock {record['lock']}: held by {record['holder']} since {record['acquired_at']}, "
            f"expires {record['expires_at']} (in {left}); waited {duration(record['waited'])} of "
            f"{duration(record['wait_timeout'])}")


# ---------------------------------------------------------------------------------------------
# module entry point


def run_fleet_lock(client, *, state="present", check_mode=False, name=DEFAULT_NAME, owner=None, ttl=DEFAULT_TTL,
                   wait_timeout=DEFAULT_WAIT, force=False, on_wait=None):
    """What ``iot_fleet_lock`` does: :func:`acquire_lock` (present) or :func:`release_lock` (absent)."""
    if state == "absent":
        return release_lock(client, name=name, owner=owner, check_mode=check_mode, force=force)
    if on_wait is None:
        on_wait = record_writer_from_environment()   # the action plugin shows each line while the run waits
    return acquire_lock(client, name=name, owner=owner, ttl=ttl, wait_timeout=wait_timeout, check_mode=check_mode,
                        force=force, on_wait=on_wait)
