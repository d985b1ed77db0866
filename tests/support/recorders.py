"""Client wrappers the unit tests count and record AWS calls with (one place, not one per test module)."""


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
