# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""The one AWS IoT client layer of the collection.

Every AWS IoT call of every module goes through :class:`IoTClient`:

* retries with jittered backoff (amazon.aws ``AWSRetry``), ``ThrottlingException`` included;
* an outage of the endpoint (connection refused, broken or timed out) is waited out with backoff for
  up to ``outage_seconds`` (default 90): AWSRetry retries error *responses*, botocore's own retries
  give up on a dead endpoint after ~12 s;
* an optional shared :class:`RateLimiter` that every HTTP attempt passes through
  (registered on botocore's ``before-send`` event, so retries are paced too);
* one error translation: boto errors become :class:`IoTAWSError`, and ``get()``/``delete()``
  turn ``ResourceNotFoundException`` into ``None``/``False`` so ``state: absent`` is
  idempotent for free.
"""

import difflib
import functools
import re
import threading
import time

try:
    import botocore
    import botocore.session
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# re-exported: the collection's own error lives in the dependency-free _errors
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError

RETRY_EXTRA_CODES = ["ThrottlingException", "ServiceUnavailableException", "InternalFailureException"]

# Published AWS IoT control-plane limits (requests per second, per account and region).
# Operations not listed are not paced. Users can override them (iot_fleet's rate_limits).
DEFAULT_RATE_LIMITS = {
    "RegisterCertificate": 10.0,
    "RegisterCertificateWithoutCA": 10.0,
    "RegisterCACertificate": 10.0,
    "UpdateCertificate": 10.0,
    "CreatePolicyVersion": 10.0,
    "CreateThing": 15.0,
    "UpdateThing": 15.0,
    "AttachPolicy": 15.0,
    "DetachPolicy": 15.0,
    "AttachThingPrincipal": 15.0,
    "DetachThingPrincipal": 15.0,
    "DescribeThing": 350.0,
    "DescribeCertificate": 350.0,
    # AWS KMS (iotfleet_ca_backend kms): the account's shared quota of ECC cryptographic operations, at the
    # time of writing ("Request quotas" in the AWS KMS developer guide)
    "Sign": 300.0,
}


# what an AWS region name looks like (us-east-1, us-gov-west-1, cn-north-1, eu-isoe-west-1): with a custom
# endpoint_url only this is checked (a stand-in, a VPC endpoint, LocalStack)
REGION_FORMAT = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")


@functools.lru_cache(maxsize=None)
def known_regions(service="iot"):
    """The regions of every AWS partition where botocore's endpoint data has ``service`` (one read, cached)."""
    session = botocore.session.Session()
    return tuple(sorted({region for partition in session.get_available_partitions()
                         for region in session.get_available_regions(service, partition_name=partition)}))


SERVICE_NAMES = {"iot": "AWS IoT", "kms": "AWS KMS"}


def region_problem(region, endpoint_url=None, service="iot", known=None):
    """Why ``region`` cannot be AWS IoT's (a sentence naming it), or None. Checked before any call: a region
    AWS does not have would otherwise fail as an endpoint that cannot be reached, after minutes of retries.

    Without ``endpoint_url`` the region must be one botocore's partition data knows for ``service``; with
    one (a custom endpoint) only its format is checked. ``None`` (no region) is left to amazon.aws."""
    if region is None:
        return None
    if not isinstance(region, str) or not REGION_FORMAT.match(region):
        return (f"The region {region!r} is not an AWS region name (like us-east-1 or eu-west-1): check the region "
                "option, AWS_REGION / AWS_DEFAULT_REGION or the profile's region. Nothing was called.")
    if endpoint_url:
        return None
    known = known_regions(service) if known is None else known
    if region in known:
        return None
    label = SERVICE_NAMES.get(service, service)
    close = difflib.get_close_matches(region, known, n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return (f"The region {region!r} is not an AWS region with {label}{hint}: check the region option, AWS_REGION / "
            f"AWS_DEFAULT_REGION or the profile's region. Nothing was called. (botocore "
            f"{getattr(botocore, '__version__', '?')} knows {label} in {len(known)} regions; a region newer than it "
            "needs a newer botocore, and a custom endpoint_url skips this check.)")


def merged_rate_limits(overrides, share=1.0):
    """The per-operation rates: the defaults, the user's overrides, times ``share`` (0 < share <= 1)."""
    if not 0 < share <= 1:
        raise IoTFleetError(f"rate_share must be greater than 0 and at most 1, got {share!r}.")
    rates = dict(DEFAULT_RATE_LIMITS)
    for operation, rate in (overrides or {}).items():
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise IoTFleetError(f"rate_limits.{operation} must be a number of requests per second, got {rate!r}.")
        if rate < 0:
            raise IoTFleetError(f"rate_limits.{operation} must not be negative.")
        rates[operation] = rate
    return {k: v * share for k, v in rates.items() if v}


class IoTAWSError(AnsibleAWSError):
    """A failed AWS IoT call (after retries)."""


# "not found" as each service says it: AWS IoT, and AWS KMS (the fleet CA key in a key service)
MISSING_CODES = ("ResourceNotFoundException", "NotFoundException")


def is_missing(exception):
    return (
        isinstance(exception, botocore.exceptions.ClientError)
        and exception.response.get("Error", {}).get("Code") in MISSING_CODES
    )


def error_code(exception):
    """The AWS error code of an :class:`IoTAWSError` (or a ClientError), else None."""
    inner = getattr(exception, "exception", exception)
    if isinstance(inner, botocore.exceptions.ClientError):
        return inner.response.get("Error", {}).get("Code")
    return None


class RateLimiter:
    """Token buckets, one per AWS operation, shared by every thread of a process.

    ``rates`` maps an operation name (``"CreateThing"``) to requests per second; an operation
    without a rate (or with 0) is not paced. ``burst`` is the bucket's size: how many requests
    may go at once after idling (1 keeps the rate smooth, as AWS meters it).

    A smooth token bucket in its "virtual scheduling" form (GCRA): every request reserves the
    next free slot of its operation under a lock and sleeps *outside* the lock until that slot,
    so threads never wait for each other's sleep, slots are absolute (a late wake-up does not
    push later requests back, so the long-run rate is exactly ``rate``) and no more than
    ``burst`` requests are ever sent within ``(burst - 1) / rate`` seconds.

    It is attached to botocore's ``before-send`` event, i.e. every HTTP attempt - retries of
    throttled calls included - passes through it.
    """

    def __init__(self, rates=None, burst=1.0, clock=time.monotonic, sleep=time.sleep):
        burst = float(burst)
        if burst < 1.0:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._rates = {}
        for operation, rate in (rates or {}).items():
            rate = float(rate)
            if rate < 0:
                raise ValueError(f"the rate of {operation} must not be negative, got {rate!r}")
            if rate:
                self._rates[operation] = rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = {}  # operation -> earliest time of its next request when the bucket is empty
        self._stats = {}  # operation -> [requests, seconds waited]

    @property
    def rates(self):
        return dict(self._rates)

    @property
    def burst(self):
        return self._burst

    def reserve(self, operation):
        """Reserve the next slot of ``operation``; returns the seconds to wait before sending."""
        rate = self._rates.get(operation)
        if not rate:
            return 0.0
        interval = 1.0 / rate
        with self._lock:
            now = self._clock()
            # The bucket starts full and holds `burst` tokens: a request may go `burst - 1` intervals
            # ahead of the smooth schedule, never more (idle time does not pile up credit).
            slot = max(self._next.get(operation, float("-inf")), now - (self._burst - 1.0) * interval)
            self._next[operation] = slot + interval
            wait = max(0.0, slot - now)
            stats = self._stats.setdefault(operation, [0, 0.0])
            stats[0] += 1
            stats[1] += wait
        return wait

    def acquire(self, operation):
        """Block until ``operation`` may be sent; returns the seconds waited."""
        wait = self.reserve(operation)
        if wait > 0:
            self._sleep(wait)
        return wait

    def stats(self):
        """``{operation: {"requests": n, "waited": seconds}}`` of the paced operations so far."""
        with self._lock:
            return {op: dict(requests=n, waited=round(w, 6)) for op, (n, w) in self._stats.items()}

    def _before_send(self, event_name=None, **kwargs):
        # event_name: "before-send.iot.CreateThing"
        self.acquire(event_name.rsplit(".", 1)[-1])

    def attach(self, boto3_client):
        """Pace every HTTP request of ``boto3_client`` (idempotent per client and limiter)."""
        boto3_client.meta.events.register(
            "before-send.iot", self._before_send, unique_id=f"iotfleet-rate-limiter-{id(self)}"
        )


def retry_decorator(retries=10, delay=0.5, max_delay=20.0):
    return AWSRetry.jittered_backoff(
        retries=retries, delay=delay, max_delay=max_delay, catch_extra_error_codes=RETRY_EXTRA_CODES
    )


DEFAULT_OUTAGE_SECONDS = 90.0
_READ_PREFIXES = ("describe_", "list_", "get_")


def _connection_failure(exception, operation):
    """True when the endpoint could not be reached or the connection broke: try again after a pause.

    The same errors botocore's standard retry mode treats as transient for every operation. A write
    whose response was lost may have happened: the ensure functions converge on a repeat
    (ResourceAlreadyExists re-reads, identical CreateThing, attachments are idempotent).
    """
    return isinstance(exception, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                                  botocore.exceptions.ConnectionClosedError, botocore.exceptions.ReadTimeoutError))


class IoTClient:
    """Calls AWS IoT through one boto3 client, retried, paced and with one error translation.

    Build it from a module with ``IoTModule.aws_client`` (``_module``), or from a plain boto3 client (tests,
    benchmarks). It is thread-safe as boto3 clients are.
    """

    def __init__(self, boto3_client, retry=None, limiter=None, outage_seconds=DEFAULT_OUTAGE_SECONDS,
                 clock=time.monotonic, sleep=time.sleep, account_info=None):
        self.raw = boto3_client
        # () -> (account id, partition), asked once and only when an ARN must be predicted (check mode)
        self._account_info = account_info
        self._arn_prefix = None
        self.outage_seconds = float(outage_seconds)
        self.writes = 0   # write calls that reached AWS (a failed task still reports changed)
        self._clock, self._sleep = clock, sleep
        self._retry = retry if retry is not None else retry_decorator()
        self._wrapped = {}
        self._lock = threading.Lock()
        self.limiter = limiter
        if limiter is not None:
            limiter.attach(boto3_client)

    def arn_prefix(self):
        """``arn:<partition>:iot:<region>:<account id>:`` of this client, for ARNs AWS has not made yet
        (check mode). The account comes from ``account_info`` (the module's STS GetCallerIdentity: one
        call per client, cached); None when the client has no such source."""
        if self._arn_prefix is None and self._account_info is not None:
            account, partition = self._account_info()
            self._arn_prefix = f"arn:{partition}:iot:{self.raw.meta.region_name}:{account}:"
        return self._arn_prefix

    def _method(self, operation):
        fn = self._wrapped.get(operation)
        if fn is None:
            with self._lock:
                fn = self._retry(getattr(self.raw, operation))
                self._wrapped[operation] = fn
        return fn

    def call(self, operation, **kwargs):
        """Call ``operation`` (boto3 snake_case name); raise IoTAWSError on failure."""
        deadline, pause = None, 0.5
        while True:
            try:
                result = self._method(operation)(**kwargs)
                if not operation.startswith(_READ_PREFIXES):
                    self.writes += 1
                return result
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                now = self._clock()
                if _connection_failure(e, operation):
                    deadline = deadline if deadline is not None else now + self.outage_seconds
                    if now < deadline:
                        self._sleep(min(pause, deadline - now))
                        pause = min(pause * 2, 10.0)
                        continue
                    message = (f"Failed to {operation.replace('_', ' ')}{_describe(kwargs)}: the AWS endpoint was "
                               f"unreachable for {self.outage_seconds:.0f} s (outage_seconds)")
                else:
                    message = f"Failed to {operation.replace('_', ' ')}{_describe(kwargs)}"
                raise IoTAWSError(message=message, exception=e) from e

    def get(self, operation, **kwargs):
        """Like :meth:`call`, but a missing resource returns None."""
        try:
            return self.call(operation, **kwargs)
        except IoTAWSError as e:
            if is_missing(e.exception):
                return None
            raise

    def delete(self, operation, **kwargs):
        """Like :meth:`call`, but a missing resource returns False (already gone); else True."""
        try:
            self.call(operation, **kwargs)
            return True
        except IoTAWSError as e:
            if is_missing(e.exception):
                return False
            raise

    def paginate(self, operation, result_key, max_pages=None, **kwargs):
        """All items of a paginated list call (retried page by page); missing → [].
        ``max_pages``: read at most that many pages; None when there are more (the listing is not complete)."""
        items = []
        marker_in, marker_out = _MARKERS.get(operation, ("nextToken", "nextToken"))
        pages = 0
        while True:
            if max_pages is not None and pages >= max_pages:
                return None
            page = self.get(operation, **kwargs)
            pages += 1
            if page is None:
                return items
            items.extend(page.get(result_key) or [])
            token = page.get(marker_out)
            if not token:
                return items
            kwargs[marker_in] = token


# list calls whose pagination uses a marker instead of nextToken
_MARKERS = {
    "list_policies": ("marker", "nextMarker"),
    "list_certificates": ("marker", "nextMarker"),
    "list_certificates_by_ca": ("marker", "nextMarker"),
    "list_ca_certificates": ("marker", "nextMarker"),
    "list_policy_principals": ("marker", "nextMarker"),
    "list_principal_policies": ("marker", "nextMarker"),
    "list_targets_for_policy": ("marker", "nextMarker"),
    "list_attached_policies": ("marker", "nextMarker"),
}

# parameters that may appear in an error message (never documents, PEMs or keys)
_NAMING_PARAMS = ("thingName", "thingGroupName", "thingTypeName", "policyName", "certificateId", "principal", "target",
                  "ruleName", "templateName", "KeyId", "AliasName")


def _describe(kwargs):
    named = [f"{k}={kwargs[k]}" for k in _NAMING_PARAMS if k in kwargs]
    return f" ({', '.join(named)})" if named else ""


# Re-exported so resource code imports AWS helpers from one place.
__all__ = [
    "DEFAULT_OUTAGE_SECONDS",
    "DEFAULT_RATE_LIMITS",
    "IoTAWSError",
    "IoTClient",
    "IoTFleetError",
    "RateLimiter",
    "error_code",
    "is_boto3_error_code",
    "is_missing",
    "merged_rate_limits",
    "retry_decorator",
]
