# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the iotfleet.aws.device_bundle module (pure parts, and ensure_bundle on a
temporary directory). The mode/owner parsing is tested with _files (test_files.py), device_csr in
test_device_csr.py, the action plugin in tests/unit/plugins/action/."""

import base64
import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from ansible_collections.iotfleet.aws.plugins.modules import device_bundle as db

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
KEY_TEXT = "-----BEGIN PRIVATE KEY-----\nSECRET-DO-NOT-SHOW\n-----END PRIVATE KEY-----\n"


# ---------------------------------------------------------------- pure parts
def test_normalise_names_the_path_of_a_bad_mode_or_owner():
    with pytest.raises(db.BundleError, match="^/etc/a: mode 'u[+]rw' is not an octal"):
        db.normalise({"path": "/etc/a", "content": "", "mode": "u+rw"}, "file", "0644")
    with pytest.raises(db.BundleError, match="^/etc/a: user 'no-such-user-iotfleet' does not exist"):
        db.normalise({"path": "/etc/a", "content": "", "owner": "no-such-user-iotfleet"}, "file", "0644")


def test_normalise_and_decode():
    want = db.normalise({"path": "/x/../etc/a", "content": "aGk=", "encoding": "base64", "mode": "0600"}, "file", "0644")
    assert want["path"] == "/etc/a" and want["data"] == b"hi" and want["mode"] == 0o600 and want["binary"]
    with pytest.raises(db.BundleError, match="absolute"):
        db.normalise({"path": "rel/a", "content": ""}, "file", "0644")
    with pytest.raises(db.BundleError, match="action plugin"):
        db.normalise({"path": "/a", "src": "x"}, "file", "0644")
    with pytest.raises(db.BundleError, match="base64"):
        db.normalise({"path": "/a", "content": "###", "encoding": "base64"}, "file", "0644")


def _stat(mode, uid=0, gid=0):
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_plan_pure():
    want = {"path": "/a", "kind": "file", "mode": 0o640, "uid": 0, "gid": 5, "data": b"x"}
    assert db.plan(want, None, None) == ["created"]
    assert db.plan(want, _stat(stat.S_IFREG | 0o640, 0, 5), b"x") == []
    assert db.plan(want, _stat(stat.S_IFREG | 0o644, 1, 6), b"y") == ["content", "mode", "owner", "group"]
    assert db.plan(dict(want, uid=None, gid=None), _stat(stat.S_IFREG | 0o640, 1, 6), b"x") == []
    with pytest.raises(db.BundleError, match="is a directory"):
        db.plan(want, _stat(stat.S_IFDIR | 0o755), None)
    d = dict(want, kind="directory", data=None, mode=0o750)
    assert db.plan(d, _stat(stat.S_IFDIR | 0o755, 0, 5), None) == ["mode"]
    with pytest.raises(db.BundleError, match="not a directory"):
        db.plan(d, _stat(stat.S_IFREG | 0o750, 0, 5), b"")


def test_show_binary_and_text():
    assert db.show(b"hello\n", False) == "hello\n"
    assert "sha256" in db.show(b"\xff\xfe", False)
    assert "5 bytes" in db.show(b"hello", True)


# ---------------------------------------------------------------- ensure_bundle on a temporary tree
def _bundle(tmp_path, key=True, client_mode="0755"):
    directories = [{"path": str(tmp_path / "etc"), "mode": "0750", "owner": ME, "group": MY_GROUP}]
    files = [
        {"path": str(tmp_path / "etc" / "client.json"), "content": '{"thing_name": "pi-1"}\n', "mode": "0640"},
        {"path": str(tmp_path / "etc" / "certificate.pem"), "content": "CERT\n", "mode": "0644", "owner": ME},
        {"path": str(tmp_path / "bin" / "client"), "content": "#!/usr/bin/python3\n", "mode": client_mode},
        {
            "path": str(tmp_path / "lib" / "paho.whl"),
            "content": base64.b64encode(b"PK\x03\x04\xff").decode(),
            "encoding": "base64",
        },
    ]
    private_key = {"path": str(tmp_path / "etc" / "private.key"), "content": KEY_TEXT, "mode": "0600", "owner": ME}
    return directories, files, private_key if key else None


def test_check_mode_writes_nothing(tmp_path):
    changed, results, diffs = db.ensure_bundle(*_bundle(tmp_path), check_mode=True, want_diff=True)
    assert changed and all(r["reasons"] == ["created"] for r in results)
    assert not (tmp_path / "etc").exists()
    assert KEY_TEXT not in repr(diffs) and "SECRET" not in repr(diffs) and "SECRET" not in repr(results)


def test_write_then_idempotent(tmp_path):
    changed, results, _diffs = db.ensure_bundle(*_bundle(tmp_path))
    assert changed and len(results) == 6
    assert (tmp_path / "etc" / "private.key").read_text() == KEY_TEXT
    assert stat.S_IMODE(os.stat(tmp_path / "etc" / "private.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(tmp_path / "bin" / "client").st_mode) == 0o755
    assert (tmp_path / "lib" / "paho.whl").read_bytes() == b"PK\x03\x04\xff"
    assert not [p for p in os.listdir(tmp_path / "etc") if p.startswith(".")]  # no temporary files left
    changed, results, diffs = db.ensure_bundle(*_bundle(tmp_path), check_mode=True, want_diff=True)
    assert not changed and diffs == [] and not any(r["changed"] for r in results)
    assert db.ensure_bundle(*_bundle(tmp_path))[0] is False


def test_mode_only_change_keeps_inode(tmp_path):
    db.ensure_bundle(*_bundle(tmp_path))
    inode = os.stat(tmp_path / "bin" / "client").st_ino
    changed, results, _diffs = db.ensure_bundle(*_bundle(tmp_path, client_mode="0700"))
    assert changed and [r["reasons"] for r in results if r["changed"]] == [["mode"]]
    assert os.stat(tmp_path / "bin" / "client").st_ino == inode


def test_diff_hides_key_and_shows_files(tmp_path):
    db.ensure_bundle(*_bundle(tmp_path))
    directories, files, key = _bundle(tmp_path)
    files[0]["content"] = '{"thing_name": "pi-2"}\n'
    key["content"] = KEY_TEXT.replace("SECRET", "OTHER-SECRET")
    changed, results, diffs = db.ensure_bundle(directories, files, key, check_mode=True, want_diff=True)
    assert changed
    assert [r["path"] for r in results if r["changed"]] == [files[0]["path"], key["path"]]
    assert "pi-1" in diffs[0]["before"] and "pi-2" in diffs[0]["after"]
    assert diffs[1]["after"]["content"] == "(hidden) changed"
    assert "SECRET" not in repr(diffs)


def test_key_optional_and_duplicates(tmp_path):
    directories, files, _key = _bundle(tmp_path)
    changed, results, _diffs = db.ensure_bundle(directories, files, None)
    assert changed and not any(r["kind"] == "private_key" for r in results)
    with pytest.raises(db.BundleError, match="more than once"):
        db.ensure_bundle([], files + [files[0]], None)


def test_argument_spec_marks_key_no_log():
    spec = db.argument_spec()
    assert spec["private_key"]["options"]["content"]["no_log"] is True


def _run_command(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs a Debian host (dpkg-query)")
def test_missing_packages_asks_dpkg():
    """The real dpkg-query of this (Debian) machine: dpkg itself is installed, a made-up name is not."""
    missing = db.missing_packages(["dpkg", "iotfleet-no-such-package"], _run_command, shutil.which("dpkg-query"))
    assert missing == ["iotfleet-no-such-package"]
    assert db.missing_packages([], _run_command, shutil.which("dpkg-query")) == []


def test_missing_packages_without_dpkg_reports_all():
    assert db.missing_packages(["python3-paho-mqtt"], None, None) == ["python3-paho-mqtt"]
