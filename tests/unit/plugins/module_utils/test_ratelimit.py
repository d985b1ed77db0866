# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared rate limiter (token bucket per AWS operation) and the throttling retries.

Most tests drive the limiter with a fake clock. One test uses real threads and real time and
checks the achieved rate against the cap from above only (never how fast the machine is). The
retry tests use botocore's Stubber: moto never answers ThrottlingException.
"""

import threading
import time

import pytest
from botocore.stub import Stubber

from ansible_collections.iotfleet.aws.plugins.module_utils._client import DEFAULT_RATE_LIMITS
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTClient
from ansible_collections.iotfleet.aws.plugins.module_utils._client import RateLimiter
from ansible_collections.iotfleet.aws.plugins.module_utils._client import retry_decorator
from support.unit import run_in_threads


class FakeClock:
    """A clock whose sleep advances it (optionally by more than asked: a late wake-up)."""

    def __init__(self, oversleep=0.0):
        self.now = 1000.0
        self.oversleep = oversleep
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds + self.oversleep


def limiter(rates, burst=1.0, clock=None):
    clock = clock or FakeClock()
    return RateLimiter(rates, burst=burst, clock=clock, sleep=clock.sleep), clock


def test_smooth_rate_reservations_are_one_interval_apart():
    rl, _clock = limiter({"CreateThing": 10})
    waits = [rl.reserve("CreateThing") for _i in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_bucket_starts_full_and_allows_burst_then_the_rate():
    rl, _clock = limiter({"CreateThing": 10}, burst=3)
    waits = [rl.reserve("CreateThing") for _i in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_idle_time_refills_but_never_beyond_burst():
    rl, clock = limiter({"AttachPolicy": 10}, burst=2)
    for _i in range(4):
        rl.acquire("AttachPolicy")
    clock.now += 60.0  # a long idle: the bucket is full again, with 2 tokens, not 600
    waits = [rl.reserve("AttachPolicy") for _i in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2])


def test_partial_refill():
    rl, clock = limiter({"AttachPolicy": 10})
    rl.acquire("AttachPolicy")
    clock.now += 0.04
    assert rl.reserve("AttachPolicy") == pytest.approx(0.06)


def test_late_wakeups_do_not_lower_the_long_run_rate():
    """Slots are absolute: 5 ms of oversleep per request does not add up to 100 x 5 ms."""
    clock = FakeClock(oversleep=0.005)
    rl, _clock = limiter({"RegisterCertificate": 10}, clock=clock)
    start = clock.now
    for _i in range(101):
        rl.acquire("RegisterCertificate")
    assert clock.now - start == pytest.approx(10.0, abs=0.02)


def test_operations_are_independent_and_unlisted_ones_not_paced():
    rl, _clock = limiter({"CreateThing": 1, "AttachPolicy": 1})
    assert rl.reserve("CreateThing") == 0.0
    assert rl.reserve("AttachPolicy") == 0.0
    assert rl.reserve("CreateThing") == pytest.approx(1.0)
    assert all(rl.reserve("ListThings") == 0.0 for _i in range(100))
    assert "ListThings" not in rl.stats()


def test_zero_rate_lifts_the_limit_and_bad_values_are_refused():
    rl, _clock = limiter({"CreateThing": 0})
    assert rl.rates == {}
    assert rl.reserve("CreateThing") == 0.0
    with pytest.raises(ValueError, match="negative"):
        RateLimiter({"CreateThing": -1})
    with pytest.raises(ValueError, match="burst"):
        RateLimiter({"CreateThing": 1}, burst=0.5)


def test_stats_count_requests_and_waits():
    rl, _clock = limiter({"CreateThing": 10})
    for _i in range(3):
        rl.acquire("CreateThing")
    assert rl.stats() == {"CreateThing": {"requests": 3, "waited": pytest.approx(0.2)}}  # 0 + 0.1 + 0.1


def test_default_limits_cover_the_fleet_writes():
    for op in ("RegisterCertificate", "CreateThing", "AttachPolicy", "AttachThingPrincipal"):
        assert DEFAULT_RATE_LIMITS[op] > 0


def test_threads_share_one_schedule_fake_clock():
    """Many threads reserving at once get distinct slots, one interval apart (no slot given twice)."""
    rl, _clock = limiter({"CreateThing": 20})
    waits = []
    lock = threading.Lock()

    def work(_thread):
        for _i in range(25):
            w = rl.reserve("CreateThing")
            with lock:
                waits.append(w)

    assert run_in_threads(work, 8) == []
    assert sorted(waits) == pytest.approx([i * 0.05 for i in range(200)])


def test_threads_real_time_never_exceed_the_cap():
    """Real threads, real clock: the achieved rate stays at or under the cap (checked from above only)."""
    rate, total = 100.0, 40
    rl = RateLimiter({"CreateThing": rate})
    sent = []
    lock = threading.Lock()

    def work(_thread):
        for _i in range(total // 8):
            rl.acquire("CreateThing")
            with lock:
                sent.append(time.monotonic())

    assert run_in_threads(work, 8) == []
    sent.sort()
    assert len(sent) == total
    achieved = (total - 1) / (sent[-1] - sent[0])
    assert achieved <= rate * 1.02
    assert rl.stats()["CreateThing"]["requests"] == total


def test_attached_to_boto3_every_attempt_is_paced_once(boto3_iot):
    """The limiter sits on before-send; attaching twice does not pace twice."""
    rl, _clock = limiter({"DescribeThing": 10})
    client = IoTClient(boto3_iot, limiter=rl, retry=retry_decorator(retries=0, delay=0.01))
    rl.attach(boto3_iot)
    for _i in range(3):
        assert client.get("describe_thing", thingName="absent") is None
    assert rl.stats() == {"DescribeThing": {"requests": 3, "waited": pytest.approx(0.2)}}  # 0 + 0.1 + 0.1


def _throttle(stubber, operation, times):
    for _i in range(times):
        stubber.add_client_error(operation, service_error_code="ThrottlingException", service_message="Rate exceeded",
                                 http_status_code=400)


def test_throttling_is_retried_until_it_succeeds(boto3_iot):
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=5, delay=0.001, max_delay=0.01))
    with Stubber(boto3_iot) as stubber:
        _throttle(stubber, "create_thing", 3)
        stubber.add_response("create_thing", {"thingName": "pi1", "thingArn": "arn:aws:iot:x:1:thing/pi1"})
        assert client.call("create_thing", thingName="pi1")["thingName"] == "pi1"
        stubber.assert_no_pending_responses()


def test_throttling_beyond_the_retries_is_a_clear_error(boto3_iot):
    client = IoTClient(boto3_iot, retry=retry_decorator(retries=2, delay=0.001, max_delay=0.01))
    with Stubber(boto3_iot) as stubber:
        _throttle(stubber, "attach_policy", 3)
        with pytest.raises(IoTAWSError, match="attach policy"):
            client.call("attach_policy", policyName="p", target="arn:aws:iot:x:1:cert/abc")
