# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device_bundle action plugin: it reads every ``src`` on the controller and hands the
module one argument set (what it sends is recorded), and a real play on localhost runs the action
plugin with the module (AnsiballZ) in one task."""

import base64
import json
import os
import stat
import subprocess
import sys
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader

from ansible_collections.iotfleet.aws.plugins.action.device_bundle import ActionModule

KEY = "-----BEGIN PRIVATE KEY-----\nSECRET-DO-NOT-SHOW\n-----END PRIVATE KEY-----\n"


def _action(tmp_path, args):
    task = MagicMock(args=args, async_val=0, check_mode=False, action="iotfleet.aws.device_bundle")
    task.get_search_path.return_value = [str(tmp_path)]
    connection = MagicMock()
    connection._shell.tmpdir = "/tmp/not-used"
    action = ActionModule(task, connection, MagicMock(), DataLoader(), MagicMock(), MagicMock())
    sent = []

    def execute_module(module_name, module_args, task_vars):
        sent.append((module_name, module_args))
        return {"changed": True}

    action._execute_module = execute_module
    return action, sent


@pytest.fixture
def controller_files(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "client.py").write_text("print('hi')\n")
    (tmp_path / "files" / "paho.whl").write_bytes(b"PK\x03\x04text-but-a-wheel")
    (tmp_path / "files" / "blob").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "private.key").write_text(KEY)
    return tmp_path


def test_sources_become_content_in_one_module_call(controller_files):
    action, sent = _action(controller_files, {
        "directories": [{"path": "/etc/iotfleet", "mode": "0750"}],
        "files": [
            {"path": "/usr/local/bin/c", "src": "client.py", "mode": "0755"},
            {"path": "/opt/w/paho.whl", "src": "paho.whl"},
            {"path": "/opt/b", "src": "blob"},
            {"path": "/etc/iotfleet/client.json", "content": "{}"},
        ],
        "private_key": {"path": "/etc/iotfleet/private.key", "src": str(controller_files / "private.key")},
    })
    result = action.run(task_vars={})
    assert result["changed"] and len(sent) == 1
    name, args = sent[0]
    assert name == "iotfleet.aws.device_bundle"
    files = {f["path"]: f for f in args["files"]}
    assert files["/usr/local/bin/c"] == {"path": "/usr/local/bin/c", "content": "print('hi')\n", "encoding": "text", "mode": "0755"}
    assert base64.b64decode(files["/opt/w/paho.whl"]["content"]) == b"PK\x03\x04text-but-a-wheel"
    assert files["/opt/w/paho.whl"]["encoding"] == "base64"  # wheels always travel as base64
    assert files["/opt/b"]["encoding"] == "base64" and base64.b64decode(files["/opt/b"]["content"]) == b"\xff\xfe\x00"
    assert files["/etc/iotfleet/client.json"] == {"path": "/etc/iotfleet/client.json", "content": "{}"}
    assert args["private_key"] == {"path": "/etc/iotfleet/private.key", "content": KEY}
    assert args["directories"] == [{"path": "/etc/iotfleet", "mode": "0750"}]
    assert "src" not in json.dumps(args)


@pytest.mark.parametrize("key", [None, {}, ""])
def test_no_key_means_the_key_is_made_on_the_device(controller_files, key):
    action, sent = _action(controller_files, {"files": [], "private_key": key})
    action.run(task_vars={})
    assert "private_key" not in sent[0][1]


@pytest.mark.parametrize("args, message", [
    ({"bogus": 1}, "Invalid options for iotfleet.aws.device_bundle: bogus"),
    ({"files": ["not-a-dict"]}, "each element of files must be a dict"),
    ({"files": [{"path": "/a", "src": "missing.txt"}]}, "/a: cannot find missing.txt on the controller"),
    ({"private_key": "x"}, "private_key must be a dict"),
    ({"private_key": {"path": "/k", "src": "blob"}}, "private_key: /k is not a PEM text file"),
])
def test_refusals_before_any_remote_run(controller_files, args, message):
    action, sent = _action(controller_files, args)
    with pytest.raises(AnsibleActionFail, match=message):
        action.run(task_vars={})
    assert sent == []


def test_a_real_play_writes_the_bundle(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "client.py").write_text("print('hi')\n")
    (tmp_path / "key.pem").write_text(KEY)
    dest = tmp_path / "device"
    play = [{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{
            "name": "bundle", "register": "bundle",
            "iotfleet.aws.device_bundle": {
                "directories": [{"path": str(dest), "mode": "0750"}],
                "files": [{"path": str(dest / "client.py"), "src": "client.py", "mode": "0755"}],
                "private_key": {"path": str(dest / "private.key"), "src": str(tmp_path / "key.pem")},
            },
        }, {"name": "show", "ansible.builtin.debug": {"var": "bundle"}}],
    }]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    def run(*extra):
        proc = subprocess.run(
            [playbook, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
             str(tmp_path / "play.yml"), *extra],
            capture_output=True, text=True, check=False, cwd=tmp_path,
            env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0"),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SECRET-DO-NOT-SHOW" not in proc.stdout
        return proc.stdout

    assert "changed=1" in run("--check", "--diff") and not dest.exists()
    assert "changed=1" in run()
    assert (dest / "client.py").read_text() == "print('hi')\n" and (dest / "private.key").read_text() == KEY
    assert stat.S_IMODE(os.stat(dest / "private.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest / "client.py").st_mode) == 0o755
    assert "changed=0" in run()


def test_a_real_play_compares_only_and_keeps_the_device_key(tmp_path):
    """Key mode device, a known Pi's preparation: compare_only writes no file but says what is pending;
    device_key makes the key once (never returned), keeps it and its CSR on the next run, and makes a
    new key when the old one is gone (a new CSR for the controller to sign)."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "client.py").write_text("print('hi')\n")
    dest = tmp_path / "device"
    out = tmp_path / "result.json"
    bundle = {
        "directories": [{"path": str(dest), "mode": "0750"}],
        "files": [{"path": str(dest / "client.py"), "src": "client.py", "mode": "0755"}],
        "device_key": {"path": str(dest / "private.key"), "csr_path": str(dest / "device.csr"), "common_name": "pi-1"},
        "compare_only": "{{ compare }}",
    }
    play = [{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "bundle", "register": "bundle", "iotfleet.aws.device_bundle": bundle},
                  {"name": "keep", "ansible.builtin.copy": {"content": "{{ bundle | to_json }}", "dest": str(out)}}],
    }]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    def run(compare):
        proc = subprocess.run(
            [playbook, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
             "-e", "compare=%s" % compare, str(tmp_path / "play.yml")],
            capture_output=True, text=True, check=False, cwd=tmp_path, env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0"),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(out.read_text())
        assert "PRIVATE KEY" not in proc.stdout and "PRIVATE KEY" not in json.dumps(result)
        return result

    first = run(True)   # a new key and CSR; the file is only found pending, not written
    assert first["changed"] and first["key_created"] and first["pending"] and not (dest / "client.py").exists()
    assert first["csr"] == (dest / "device.csr").read_text() and first["csr"].startswith("-----BEGIN CERTIFICATE REQUEST")
    assert stat.S_IMODE(os.stat(dest / "private.key").st_mode) == 0o600
    key = (dest / "private.key").read_bytes()
    installed = run(False)
    assert installed["changed"] and not installed["key_created"] and (dest / "client.py").exists()
    again = run(True)   # nothing to do: not changed, nothing pending, the same CSR
    assert not again["changed"] and not again["pending"] and again["csr"] == first["csr"]
    assert (dest / "private.key").read_bytes() == key
    (dest / "private.key").unlink()   # the key is gone on the Pi: a new one and a new CSR
    recovered = run(True)
    assert recovered["changed"] and recovered["key_created"] and recovered["csr"] != first["csr"]
    assert recovered["public_key_sha256"] != first["public_key_sha256"] and not recovered["pending"]
