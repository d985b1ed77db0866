"""Client wrappers the unit tests count AWS calls with (one place, not one per test module)."""


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
