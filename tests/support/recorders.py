"""Client wrappers and botocore hooks the tests and the benchmarks count AWS calls with (one place,
not one per test module; the benchmarks import it as ``tests.support.recorders``)."""

import collections
import threading

# AWS IoT operations that change something (for call accounting: a no-change rerun makes none)
WRITE_PREFIXES = ("Create", "Register", "Update", "Attach", "Detach", "Delete", "Set", "Add", "Remove", "Accept",
                  "Reject", "Replace", "Transfer", "Cancel", "Enable", "Disable")


class CountingClient:
    """Wraps the collection's IoTClient and records the operations made (to count calls)."""

    def __init__(self, client):
        self._client = client
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name not in ("call", "get", "delete", "paginate"):
            return method

        def wrapper(operation, *args, **kwargs):
            self.calls.append(operation)
            return method(operation, *args, **kwargs)

        return wrapper

    def writes(self):
        return [c for c in self.calls if not c.startswith(("describe_", "list_", "get_"))]


class NoCalls:
    """A client that fails the test on any use: proves a refusal made no AWS call."""

    def __getattr__(self, item):
        raise AssertionError(f"AWS was called: {item}")


# the write operations of certificate and CA certificate code (what Recorder.writes() lists)
CERTIFICATE_WRITES = frozenset((
    "register_ca_certificate", "update_ca_certificate", "delete_ca_certificate", "update_certificate",
    "register_certificate", "register_certificate_without_ca", "delete_certificate",
))


class Recorder:
    """Delegates to the real IoTClient and records (operation, kwargs, result) of every call."""

    def __init__(self, client, write_operations=CERTIFICATE_WRITES):
        self._client = client
        self._writes = write_operations
        self.calls = []

    def _record(self, method, operation, kwargs):
        result = getattr(self._client, method)(operation, **kwargs)
        self.calls.append((operation, kwargs, result))
        return result

    def call(self, operation, **kwargs):
        return self._record("call", operation, kwargs)

    def get(self, operation, **kwargs):
        return self._record("get", operation, kwargs)

    def delete(self, operation, **kwargs):
        return self._record("delete", operation, kwargs)

    def paginate(self, operation, result_key, **kwargs):
        result = self._client.paginate(operation, result_key, **kwargs)
        self.calls.append((operation, kwargs, result))
        return result

    def operations(self):
        return [c[0] for c in self.calls]

    def writes(self):
        return [c[0] for c in self.calls if c[0] in self._writes]


def is_write_operation(operation):
    """Whether the AWS IoT ``operation`` (``"CreateThing"``) changes something."""
    return operation.startswith(WRITE_PREFIXES)


class ApiCallCounter:
    """Counts the AWS API calls (IoT, KMS) of a boto3 client, by operation, with botocore event hooks.

    ``calls``: logical API calls (``before-call``, once per call however often it is retried);
    ``attempts``: HTTP requests sent (``before-send``, retries included); ``errors``: calls that
    ended with an AWS error code (``after-call``), by code. Thread-safe; attach once per client.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.calls = collections.Counter()
        self.attempts = collections.Counter()
        self.errors = collections.Counter()

    def attach(self, boto3_client):
        events = boto3_client.meta.events
        service = boto3_client.meta.service_model.service_id.hyphenize()   # "iot", "kms"
        uid = f"iotfleet-call-counter-{id(self)}"
        events.register(f"before-call.{service}", self._before_call, unique_id=uid + "-call")
        events.register(f"before-send.{service}", self._before_send, unique_id=uid + "-send")
        events.register(f"after-call.{service}", self._after_call, unique_id=uid + "-after")
        return self

    @staticmethod
    def _operation(event_name):
        return event_name.rsplit(".", 1)[-1]

    def _before_call(self, event_name=None, **kwargs):
        with self._lock:
            self.calls[self._operation(event_name)] += 1

    def _before_send(self, event_name=None, **kwargs):
        with self._lock:
            self.attempts[self._operation(event_name)] += 1

    def _after_call(self, event_name=None, parsed=None, **kwargs):
        code = ((parsed or {}).get("Error") or {}).get("Code")
        if code:
            with self._lock:
                self.errors[code] += 1

    def reset(self):
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
            self.errors.clear()

    def snapshot(self):
        """``{"calls": {...}, "attempts": {...}, "errors": {...}, "writes": n, "reads": n}``."""
        with self._lock:
            calls = dict(self.calls)
            result = dict(calls=calls, attempts=dict(self.attempts), errors=dict(self.errors))
        result["writes"] = sum(n for op, n in calls.items() if is_write_operation(op))
        result["reads"] = sum(n for op, n in calls.items() if not is_write_operation(op))
        return result
