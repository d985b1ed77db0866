#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throttling stand-in for the AWS IoT control plane: an HTTP proxy in front of moto.

It forwards every request to the upstream (moto) unless the request's AWS IoT operation is over
its rate: then it answers as AWS does, HTTP 400 with ``x-amzn-ErrorType: ThrottlingException``
and ``{"__type": "ThrottlingException", "message": "Rate exceeded"}`` (botocore's rest-json
parser takes the code from that header). One token bucket per operation (``--rates`` JSON,
requests per second; ``--burst`` tokens). The operation is recognised from the method and path
with the request URIs of botocore's own service model, so any client works (boto3 in-process,
or Ansible modules in their own processes).

``GET /__proxy/stats`` answers ``{op: {"forwarded": n, "throttled": n, "first": t, "last": t, "errors":
{code: n}}}`` (t: the proxy's monotonic clock, of forwarded requests; errors: the upstream's error answers
by their AWS error code, e.g. ``VersionConflictException``). Standard library only (plus botocore
for the model). Usage::

    throttle_proxy.py --upstream http://127.0.0.1:5000 --port 5001 --rates '{"CreateThing": 20}'
"""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def operation_matchers(service="iot"):
    """``[(method, compiled path regex, operation)]`` from botocore's model, most specific first."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    matchers = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?", 1)[0]
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{"):
                pattern += "(.+)" if part.endswith("+}") else "([^/]+)"
            else:
                pattern += re.escape(part)
        matchers.append((literal, http["method"], re.compile("^" + pattern.rstrip("/") + "/?$"), name))
    matchers.sort(key=lambda m: -m[0])
    return [(method, regex, name) for _literal, method, regex, name in matchers]


class Buckets:
    """One token bucket per operation (``rates``: requests/s, ``burst``: tokens), and counters."""

    def __init__(self, rates, burst=2.0, clock=time.monotonic):
        self.rates = {k: float(v) for k, v in rates.items() if v}
        self.burst = float(burst)
        self.clock = clock
        self.lock = threading.Lock()
        self.tokens = {}
        self.stamp = {}
        self.stats = {}

    def _stats(self, op):
        return self.stats.setdefault(op, dict(forwarded=0, throttled=0, first=None, last=None, errors={}))

    def record_error(self, op, code):
        """Count an error answer of the upstream (``code``: its AWS error code)."""
        with self.lock:
            errors = self._stats(op)["errors"]
            errors[code] = errors.get(code, 0) + 1

    def admit(self, op):
        """Take a token of ``op``; False when it is over its rate (throttle the request)."""
        now = self.clock()
        with self.lock:
            rate = self.rates.get(op)
            if rate:
                tokens = min(self.burst, self.tokens.get(op, self.burst) + (now - self.stamp.get(op, now)) * rate)
                self.stamp[op] = now
                if tokens < 1.0:
                    self.tokens[op] = tokens
                    self._stats(op)["throttled"] += 1
                    return False
                self.tokens[op] = tokens - 1.0
            stats = self._stats(op)
            stats["forwarded"] += 1
            if stats["first"] is None:
                stats["first"] = now
            stats["last"] = now
            return True

    def snapshot(self):
        with self.lock:
            return {op: dict(s, errors=dict(s["errors"])) for op, s in self.stats.items()}

    def reset(self):
        with self.lock:
            self.stats.clear()
            self.tokens.clear()
            self.stamp.clear()


def error_code(header, body):
    """The AWS error code of an error answer: the ``x-amzn-ErrorType`` header (``Code:...`` suffixes dropped),
    else the JSON body's ``__type`` / ``code``; ``HTTP error`` when neither says."""
    if header:
        return header.split(":", 1)[0]
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return "HTTP error"
    if not isinstance(doc, dict):
        return "HTTP error"
    return str(doc.get("__type") or doc.get("code") or "HTTP error").rsplit("#", 1)[-1]


def make_handler(upstream, buckets, matchers):
    target = urllib.parse.urlsplit(upstream)
    local = threading.local()

    def connection():
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        return conn

    def operation(method, path):
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        for m, regex, name in matchers:
            if m == method and regex.match(path):
                return name
        return "Unknown"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status, headers, body):
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/__proxy/"):
                if self.path.startswith("/__proxy/reset"):
                    buckets.reset()
                data = json.dumps(buckets.snapshot()).encode()
                return self._reply(200, [("Content-Type", "application/json")], data)
            op = operation(self.command, self.path)
            if not buckets.admit(op):
                data = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                return self._reply(
                    400,
                    [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ThrottlingException")],
                    data,
                )
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            for attempt in range(2):
                conn = connection()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    local.conn = None
                    if attempt:
                        raise
            if response.status >= 400:
                buckets.record_error(op, error_code(response.getheader("x-amzn-ErrorType"), data))
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
            self._reply(response.status, out, data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


def serve(upstream, port, rates, burst=2.0, host="127.0.0.1"):
    buckets = Buckets(rates, burst=burst)
    server = ThreadingHTTPServer((host, port), make_handler(upstream, buckets, operation_matchers()))
    server.daemon_threads = True
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rates", default="{}", help="JSON: operation -> requests per second")
    parser.add_argument("--burst", type=float, default=2.0)
    args = parser.parse_args(argv)
    server = serve(args.upstream, args.port, json.loads(args.rates), burst=args.burst, host=args.host)
    print(f"throttle proxy on {args.host}:{args.port} -> {args.upstream}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
