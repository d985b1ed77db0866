# -*- coding: utf-8 -*-
"""The fleet lock (module_utils/_lock.py) against the stand-in's control plane (the ``moto`` fixture:
moto plus AWS's refusal of a stale ``expectedVersion`` and of a second CreateThingGroup with other
attributes, lab/iotcore/control.py). Time is a fake clock whose ``sleep`` advances it: no real waits.
"""

import threading

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _lock
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import error_code
from support.recorders import CountingClient, NoCalls
from support.unit import run_in_threads

GROUP = "iotfleet-lock-fleet"
T0 = 1_800_000_000.0   # 2027-01-15T08:00:00Z


class Clock:
    """time.time and time.sleep of one test: ``sleep`` advances the time and runs ``on_sleep`` (what the
    other run does meanwhile)."""

    def __init__(self, now=T0, on_sleep=None):
        self.now = now
        self.sleeps = []
        self.on_sleep = on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


def acquire(client, owner, clock, **kwargs):
    kwargs.setdefault("wait_timeout", 0)
    return _lock.acquire_lock(client, owner=owner, clock=clock, sleep=clock.sleep, **kwargs)


def release(client, owner, clock=None, **kwargs):
    return _lock.release_lock(client, owner=owner, clock=clock or Clock(), **kwargs)


def stored(boto3_iot):
    described = boto3_iot.describe_thing_group(thingGroupName=GROUP)
    return described["version"], _lock.lease_of(described)


# --- pure helpers ------------------------------------------------------------------------------


def test_times_and_names():
    assert _lock.format_time(T0) == "2027-01-15T08:00:00Z"
    assert _lock.parse_time("2027-01-15T08:00:00Z") == T0
    assert _lock.parse_time("soon") is None and _lock.parse_time(None) is None
    assert _lock.lock_group_name("fleet") == GROUP
    assert [_lock.duration(s) for s in (0.4, 59, 61, 3725)] == ["0 s", "59 s", "1 min 01 s", "1 h 02 min"]
    for bad in ("", "a b", "x" * 115):
        with pytest.raises(IoTFleetError):
            _lock.lock_group_name(bad)


def test_bad_input_is_refused_before_any_call():
    clock = Clock()
    for kwargs, fragment in ((dict(owner="me and you"), "no spaces"), (dict(owner="a", ttl=0), "ttl"),
                             (dict(owner="a", wait_timeout=-1), "wait_timeout"), (dict(owner="a", name="a/b"), "lock name")):
        with pytest.raises(IoTFleetError, match=fragment):
            _lock.acquire_lock(NoCalls(), clock=clock, sleep=clock.sleep, **kwargs)


def test_default_owner_is_the_run(monkeypatch):
    """host:pid:start of the outermost ansible process above the module (its workers are forks of it,
    with the same command line), so every task of a run computes the same owner."""
    chain = {
        100: (99, ["/usr/bin/python3", "/tmp/AnsiballZ_iot_fleet_lock.py"], 5000),
        99: (98, ["/bin/sh", "-c", "python3 ..."], 4900),
        98: (97, ["/usr/bin/python3", "/usr/bin/ansible-playbook", "provision.yml"], 4800),   # the task's worker
        97: (40, ["/usr/bin/python3", "/usr/bin/ansible-playbook", "provision.yml"], 100),    # the run
        40: (30, ["bash"], 50),
        30: (1, ["/usr/bin/python3", "/usr/bin/ansible-playbook", "outer.yml"], 10),   # above a shell: not this run
        1: (0, ["/sbin/init"], 1),
    }
    monkeypatch.setattr(_lock, "_proc_ppid_cmdline", chain.get)
    monkeypatch.setattr(_lock, "_boot_time", lambda: int(T0))
    monkeypatch.setattr(_lock.os, "sysconf", lambda name: 100)
    monkeypatch.setattr(_lock.socket, "gethostname", lambda: "ctl 1.example.com")
    assert _lock.run_process(100) == (97, T0 + 1.0)
    monkeypatch.setattr(_lock.os, "getppid", lambda: 100)
    owner = _lock.default_owner()
    assert owner == "ctl_1.example.com:97:20270115T080001Z"
    assert _lock.validate_owner(owner) == owner
    # off Linux (no /proc): the module's parent and the clock
    monkeypatch.setattr(_lock, "_proc_ppid_cmdline", lambda pid: None)
    assert _lock.default_owner(clock=lambda: T0) == "ctl_1.example.com:100:20270115T080000Z"


def test_default_owner_on_this_machine_is_stable():
    assert _lock.default_owner() == _lock.default_owner()


# --- acquire and release -------------------------------------------------------------------------


def test_acquire_and_release(iot_client, boto3_iot):
    clock = Clock()
    counted = CountingClient(iot_client)
    held = acquire(counted, "run-a", clock, ttl=600)
    assert held.changed is False   # bookkeeping, not fleet state
    assert held.values["acquired"] is True and held.values["lock_name"] == GROUP
    assert held.values["expires_at"] == "2027-01-15T08:10:00Z" and held.values["waited"] == 0
    assert counted.writes() == ["create_thing_group"]
    version, lease = stored(boto3_iot)
    assert lease == {"owner": "run-a", "acquired_at": "2027-01-15T08:00:00Z", "expires_at": "2027-01-15T08:10:00Z"}

    gone = release(iot_client, "run-a")
    assert gone.changed is False and gone.values["released"] is True
    assert stored(boto3_iot) == (version + 1, None)
    again = release(iot_client, "run-a")   # idempotent
    assert again.values["released"] is False and stored(boto3_iot)[0] == version + 1

    # the group stays; the next acquire updates it with the version it read
    assert acquire(iot_client, "run-b", clock).values["acquired"] is True
    assert stored(boto3_iot) == (version + 2, dict(lease, owner="run-b", expires_at="2027-01-15T08:15:00Z"))


def test_the_owner_extends_its_lease(iot_client, boto3_iot):
    clock = Clock()
    acquire(iot_client, "run-a", clock, ttl=60)
    clock.now += 50
    held = acquire(iot_client, "run-a", clock, ttl=60)
    assert held.values["acquired"] is True and held.values["took_over"] is None
    assert held.values["expires_at"] == _lock.format_time(T0 + 110) == stored(boto3_iot)[1]["expires_at"]


def test_another_owner_waits_and_gets_it_after_the_release(iot_client, boto3_iot):
    acquire(iot_client, "run-a", Clock(), ttl=900)
    records = []
    # run-a finishes while run-b sleeps its third pause
    clock = Clock(on_sleep=lambda n: n == 3 and release(iot_client, "run-a"))
    held = acquire(iot_client, "run-b", clock, ttl=900, wait_timeout=600, on_wait=records.append)
    assert held.values["acquired"] is True and held.values["took_over"] is None
    assert clock.sleeps == [1.0, 2.0, 4.0]   # backoff
    assert held.values["waited"] == 7.0 and "after waiting 7 s" in held.values["msg"]
    assert [r["holder"] for r in records] == ["run-a"] * 3
    assert [r["waited"] for r in records] == [0, 1, 3] and [r["expires_in"] for r in records] == [900, 899, 897]
    line = _lock.describe_wait(records[-1])
    assert "held by run-a since 2027-01-15T08:00:00Z" in line and "in 14 min 57 s" in line and "waited 3 s of 10 min" in line
    assert stored(boto3_iot)[1]["owner"] == "run-b"


def test_an_expired_lease_is_taken_over(iot_client, boto3_iot):
    acquire(iot_client, "run-killed", Clock(), ttl=60)
    clock = Clock(now=T0 + 60)
    held = acquire(iot_client, "run-b", clock)
    assert held.values["acquired"] is True and clock.sleeps == []
    assert held.values["took_over"]["owner"] == "run-killed"
    assert "took it over from run-killed, whose lease expired 2027-01-15T08:01:00Z" in held.values["msg"]
    assert stored(boto3_iot)[1]["owner"] == "run-b"


def test_a_waiting_run_wakes_when_the_lease_expires(iot_client, boto3_iot):
    acquire(iot_client, "run-killed", Clock(), ttl=20)
    clock = Clock(now=T0 + 5)
    held = acquire(iot_client, "run-b", clock, wait_timeout=600)
    assert held.values["acquired"] is True and held.values["took_over"]["owner"] == "run-killed"
    # 1 + 2 + 4 + 8 = 15 s after T0+5 is the expiry: the last pause ends there, not 15 s later
    assert clock.sleeps[:3] == [1.0, 2.0, 4.0] and clock.now - (T0 + 20) < 0.1


def test_giving_up_names_the_holder_and_writes_nothing(iot_client, boto3_iot):
    acquire(iot_client, "ctl-1:4242:20270115T080000Z", Clock(), ttl=900)
    version = stored(boto3_iot)[0]
    clock = Clock(now=T0 + 100)
    counted = CountingClient(iot_client)
    with pytest.raises(IoTFleetError) as e:
        acquire(counted, "run-b", clock, wait_timeout=120)
    message = e.value.message
    assert "held by ctl-1:4242:20270115T080000Z since 2027-01-15T08:00:00Z" in message
    assert "expires 2027-01-15T08:15:00Z" in message and "Gave up after waiting 2 min 00 s (wait_timeout 120 s)" in message
    assert "Nothing was written" in message
    assert e.value.kwargs["held_by"]["owner"] == "ctl-1:4242:20270115T080000Z"
    assert counted.writes() == [] and stored(boto3_iot)[0] == version
    assert clock.now == T0 + 220 and max(clock.sleeps) == 15.0   # the backoff is capped, the deadline kept


def test_wait_timeout_zero_fails_at_once(iot_client):
    acquire(iot_client, "run-a", Clock())
    clock = Clock()
    with pytest.raises(IoTFleetError, match="held by run-a"):
        acquire(iot_client, "run-b", clock, wait_timeout=0)
    assert clock.sleeps == []


def test_check_mode_writes_nothing(iot_client, boto3_iot):
    clock = Clock()
    counted = CountingClient(iot_client)
    would = acquire(counted, "run-a", clock, check_mode=True)
    assert would.values["acquired"] is True and would.values["msg"].startswith("Would acquire")
    assert counted.writes() == [] and boto3_iot.list_thing_groups()["thingGroups"] == []
    acquire(iot_client, "run-a", clock)
    version = stored(boto3_iot)[0]
    # held by another: check mode says so, neither waits nor fails
    other = acquire(counted, "run-b", clock, check_mode=True, wait_timeout=600)
    assert other.values["acquired"] is False and other.values["held_by"]["owner"] == "run-a"
    assert clock.sleeps == [] and counted.writes() == []
    assert release(counted, "run-a", check_mode=True).values["released"] is True
    assert counted.writes() == [] and stored(boto3_iot)[0] == version


def test_release_leaves_another_owners_lease_alone_unless_forced(iot_client, boto3_iot):
    acquire(iot_client, "run-a", Clock())
    version = stored(boto3_iot)[0]
    left = release(iot_client, "run-b")
    assert left.values["released"] is False and left.values["held_by"]["owner"] == "run-a"
    assert "Left alone" in left.values["msg"] and stored(boto3_iot)[0] == version
    forced = release(iot_client, "run-b", force=True)
    assert forced.values["released"] is True and forced.values["released_from"]["owner"] == "run-a"
    assert stored(boto3_iot)[1] is None


def test_force_takes_over_a_live_lease(iot_client, boto3_iot):
    acquire(iot_client, "run-a", Clock())
    held = acquire(iot_client, "run-b", Clock(), force=True)
    assert held.values["took_over"]["owner"] == "run-a" and stored(boto3_iot)[1]["owner"] == "run-b"


# --- optimistic concurrency ----------------------------------------------------------------------


def test_a_stale_version_is_refused(iot_client, boto3_iot):
    acquire(iot_client, "run-a", Clock())
    stale = stored(boto3_iot)[0]
    release(iot_client, "run-a")
    with pytest.raises(IoTAWSError) as e:
        iot_client.call("update_thing_group", thingGroupName=GROUP, expectedVersion=stale,
                        thingGroupProperties={"attributePayload": {"attributes": {"owner": "late"}, "merge": True}})
    assert error_code(e.value) == "VersionConflictException"
    assert stored(boto3_iot) == (stale + 1, None)


class Interloper:
    """The client of a run that reads the lease, and before it writes another run takes the lease."""

    def __init__(self, client, other):
        self._client, self._other, self.fired = client, other, False

    def get(self, operation, **kwargs):
        return self._client.get(operation, **kwargs)

    def call(self, operation, **kwargs):
        if operation.startswith(("update_", "create_")) and not self.fired:
            self.fired = True
            self._other()
        return self._client.call(operation, **kwargs)


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_a_run_that_loses_the_race_between_read_and_write_reads_again(iot_client, boto3_iot, existing):
    if existing:
        acquire(iot_client, "run-x", Clock())
        release(iot_client, "run-x")
    client = Interloper(iot_client, lambda: acquire(iot_client, "run-a", Clock()))
    state, lease, _previous = _lock.try_acquire(client, GROUP, "run-b", 900, T0)
    assert (state, lease) == ("raced", None)
    assert stored(boto3_iot)[1]["owner"] == "run-a"
    client.fired = False
    with pytest.raises(IoTFleetError, match="held by run-a"):
        acquire(Interloper(iot_client, lambda: None), "run-b", Clock())


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_threads_racing_for_the_lock_exactly_one_wins(iot_client, boto3_iot, existing):
    if existing:
        acquire(iot_client, "run-x", Clock())
        release(iot_client, "run-x")
    count = 8
    barrier = threading.Barrier(count)
    winners = []

    def run(index):
        barrier.wait()
        winners.append(_lock.acquire_lock(iot_client, owner=f"run-{index}", wait_timeout=0).values["owner"])

    errors = run_in_threads(run, count)
    assert len(winners) == 1, winners
    assert len(errors) == count - 1 and all(isinstance(e, IoTFleetError) for e in errors), errors
    assert all(f"held by {winners[0]}" in e.message for e in errors)
    assert stored(boto3_iot)[1]["owner"] == winners[0]


def test_run_fleet_lock(iot_client, boto3_iot, tmp_path, monkeypatch):
    monkeypatch.setenv("IOTFLEET_PROGRESS_FILE", str(tmp_path / "progress"))
    held = _lock.run_fleet_lock(iot_client, state="present", name="site-1", owner="run-a", ttl=60, wait_timeout=0)
    assert held.values["lock_name"] == "iotfleet-lock-site-1"
    result = held.to_result(diff=True)
    assert result["changed"] is False and result["diff"]["after"]["owner"] == "run-a"
    gone = _lock.run_fleet_lock(iot_client, state="absent", name="site-1", owner="run-a")
    assert gone.values["released"] is True
