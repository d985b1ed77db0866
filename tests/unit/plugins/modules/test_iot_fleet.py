# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iot_fleet module in registration jitp: no AWS client, no AWS call, per-device results.

In-process (``run`` with a stand-in module object whose ``iot_client`` must not be called) and as
a real module process (ANSIBLE_MODULE_ARGS) whose AWS endpoint is a loopback HTTP server that
records every request: registration jitp sends none, the registration api control run does.
"""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.modules import iot_fleet

MODULE = iot_fleet.__file__


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ca")
    cert, key = _x509.create_ca("Fleet CA")
    (directory / "ca.pem").write_text(_x509.certificate_pem(cert))
    (directory / "ca.key").write_text(_x509.private_key_pem(key))
    os.chmod(directory / "ca.key", 0o600)
    return str(directory / "ca.pem"), str(directory / "ca.key")


def _params(ca_files, pki_dir, **overrides):
    params = dict(
        devices=[dict(thing_name="pi-1", host="pi1.lan", attributes={"room": "kitchen"}),
                 dict(thing_name="pi-2", host="pi2.lan", attributes=None)],
        ca_certificate=ca_files[0], ca_private_key=ca_files[1], pki_dir=pki_dir,
        key_mode="controller", key_type="ec", certificate_days=3650, renew_before_days=30,
        policy_name="iotfleet-device", thing_type=None, purge_attributes=False, exclusive=False,
        register_with_ca=True, registration="jitp", workers=8, progress_every=500, rate_limits={}, rate_share=1.0, state="present",
        retire_certificates=None, managed_thing_group="iotfleet-managed",
    )
    params.update(overrides)
    return params


class _Module:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def iot_client(self, **kwargs):
        raise AssertionError("registration jitp must not make an AWS client")


def test_run_jitp_makes_no_client_and_warns_about_attributes(ca_files, tmp_path):
    module = _Module(_params(ca_files, str(tmp_path / "pki")))
    result = iot_fleet.run(module)
    assert result["registration"] == "jitp" and result["rate_limits"] == {}
    assert result["changed"] and result["failed_devices"] == []
    assert [d["host"] for d in result["devices"]] == ["pi1.lan", "pi2.lan"]
    assert all(d["certificate_id"] and d["certificate_arn"] is None for d in result["devices"])
    assert len(module.warnings) == 1
    assert "pi1.lan" in module.warnings[0] and "pi2.lan" not in module.warnings[0]
    # no key material in the results
    assert "PRIVATE KEY" not in json.dumps(result)


def test_run_jitp_check_mode(ca_files, tmp_path):
    pki = str(tmp_path / "pki")
    result = iot_fleet.run(_Module(_params(ca_files, pki, devices=[dict(thing_name="pi-1")]), check_mode=True))
    assert result["changed"] and result["devices"][0]["certificate_id"] is None
    assert not os.path.exists(pki)


class _RecordingEndpoint:
    """An HTTP endpoint on loopback that records every request and answers AccessDenied (not
    retried): any AWS call a module makes shows up here, and fails at once."""

    def __init__(self):
        import http.server
        import threading

        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                requests.append((self.command, self.path, self.headers.get("X-Amz-Target")))
                body = b'{"__type": "AccessDeniedException", "message": "recorded by the test"}'
                self.send_response(403)
                self.send_header("x-amzn-ErrorType", "AccessDeniedException")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = _RecordingEndpoint()
    yield server
    server.close()


def _run_module(args, tmp_path):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    proc = subprocess.run([sys.executable, MODULE, str(path)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_module_process_jitp_sends_no_request_to_the_aws_endpoint(ca_files, tmp_path, endpoint):
    args = dict(devices=[dict(thing_name="pi-1", host="pi1.lan")], ca_certificate=ca_files[0],
                ca_private_key=ca_files[1], pki_dir=str(tmp_path / "pki"), policy_name="iotfleet-device",
                endpoint_url=endpoint.url, region="us-east-1", access_key="testing", secret_key="testing")
    first = _run_module(dict(args, registration="jitp"), tmp_path)
    assert not first.get("failed"), first
    assert first["changed"] and first["devices"][0]["changes"] == ["key", "certificate"]
    check = _run_module(dict(args, registration="jitp", _ansible_check_mode=True), tmp_path)
    again = _run_module(dict(args, registration="jitp"), tmp_path)
    for result in (check, again):
        assert not result.get("failed") and not result["changed"], result
        assert result["devices"][0]["certificate_id"] == first["devices"][0]["certificate_id"]
    assert endpoint.requests == []
    # control: the same devices under registration api do reach the endpoint (and fail on its answer)
    api = _run_module(dict(args, registration="api"), tmp_path)
    assert api.get("failed") and "pi1.lan" in api["failed_devices"], api
    assert endpoint.requests and "recorded by the test" in api["msg"], (endpoint.requests, api["msg"])


def test_rate_share_scales_every_limit():
    full = iot_fleet.merged_rate_limits({"CreateThing": 20, "DescribeThing": 0})
    half = iot_fleet.merged_rate_limits({"CreateThing": 20, "DescribeThing": 0}, 0.5)
    assert full["CreateThing"] == 20 and "DescribeThing" not in full
    assert set(half) == set(full)
    assert all(half[op] == full[op] / 2 for op in full)


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_rate_share_out_of_range_is_refused_before_any_call(ca_files, tmp_path, share):
    module = _Module(_params(ca_files, str(tmp_path / "pki"), registration="api", rate_share=share))
    with pytest.raises(IoTFleetError, match="rate_share must be greater than 0 and at most 1"):
        iot_fleet.run(module)
    assert not os.path.exists(tmp_path / "pki")
