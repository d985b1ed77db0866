"""The AWS IoT REST API as botocore describes it: which operation a request is, and its input.

moto answers most operations; the stand-in answers some itself (control.py). To know which
operation an HTTP request is, this module matches it against botocore's own service model (the
same model the collection's boto3 client serialises with), so the routing cannot drift from the
client. Only the rest-json shapes the IoT API uses are handled.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session


class ApiError(Exception):
    """An AWS error response: code (x-amzn-ErrorType), message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def _route_regex(uri: str) -> re.Pattern:
    path = uri.split("?", 1)[0]
    out, pos = [], 0
    for m in re.finditer(r"\{([^}+]+)(\+?)\}", path):
        out.append(re.escape(path[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return re.compile("^" + "".join(out) + "/?$")


class Router:
    """Maps (method, path) to an IoT operation name and parses its input members."""

    def __init__(self) -> None:
        self.model = botocore.session.get_session().get_service_model("iot")
        self.routes = []
        for name in self.model.operation_names:
            op = self.model.operation_model(name)
            self.routes.append((op.http["method"], _route_regex(op.http["requestUri"]), op))
        # literal routes before templated ones (/things/{name} vs /things)
        self.routes.sort(key=lambda r: r[1].pattern.count("(?P<"))

    def match(self, method: str, path: str):
        for m, regex, op in self.routes:
            if m == method:
                found = regex.match(path)
                if found:
                    return op, {k: unquote(v) for k, v in found.groupdict().items()}
        return None, {}

    @staticmethod
    def parse(op, path_params: dict, query: str, body: bytes, headers: dict | None = None) -> dict[str, Any]:
        """The operation's input as boto3 names it (member names), from path, query, headers, body."""
        shape = op.input_shape
        if shape is None:
            return {}
        qs = parse_qs(query, keep_blank_values=True)
        doc = json.loads(body) if body and body.strip() else {}
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            loc = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if loc == "uri":
                if wire in path_params:
                    out[name] = path_params[wire]
            elif loc == "querystring":
                if wire in qs:
                    raw = qs[wire][0]
                    if member.type_name == "boolean":
                        out[name] = raw.lower() == "true"
                    elif member.type_name == "integer":
                        out[name] = int(raw)
                    else:
                        out[name] = raw
            elif loc == "header":
                value = (headers or {}).get(wire.lower())
                if value is not None:
                    out[name] = value
            elif wire in doc:
                out[name] = doc[wire]
        return out


def to_wire(value: Any) -> Any:
    """JSON-ready: datetimes as epoch seconds, as the IoT API sends them."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value
