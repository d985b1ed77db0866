# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of iotfleet.aws.device_bundle (pure parts, and ensure_bundle on a temporary directory)
and of iotfleet.aws.device_csr's key/CSR logic (cryptography, temporary directory)."""

import base64
import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.aws.plugins.modules import device_bundle as db
from ansible_collections.iotfleet.aws.plugins.modules import device_csr as dcsr

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
KEY_TEXT = "-----BEGIN PRIVATE KEY-----\nSECRET-DO-NOT-SHOW\n-----END PRIVATE KEY-----\n"


# ---------------------------------------------------------------- pure parts
@pytest.mark.parametrize("value, mode", [("0640", 0o640), ("640", 0o640), ("0o600", 0o600), (0o750, 0o750), (None, 0o644)])
def test_parse_mode(value, mode):
    assert db.parse_mode(value, "0644") == mode


@pytest.mark.parametrize("value", ["u+rw", "99999", "0o8"])
def test_parse_mode_rejects(value):
    with pytest.raises(db.BundleError):
        db.parse_mode(value, "0644")


def test_resolve_owner_group():
    assert db.resolve_uid(None) is None and db.resolve_gid("") is None
    assert db.resolve_uid(ME) == os.getuid() and db.resolve_uid("0") == 0
    assert db.resolve_gid(MY_GROUP) == os.getgid()
    with pytest.raises(db.BundleError, match="does not exist"):
        db.resolve_uid("no-such-user-iotfleet")
    with pytest.raises(db.BundleError, match="does not exist"):
        db.resolve_gid("no-such-group-iotfleet")


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


# ---------------------------------------------------------------- device_csr
def _csr_params(tmp_path, cn="pi-1"):
    return {
        "path": str(tmp_path / "iot" / "private.key"),
        "csr_path": str(tmp_path / "iot" / "device.csr"),
        "common_name": cn,
        "key_type": "ec",
        "owner": None,
        "group": None,
        "directory_mode": "0750",
    }


def test_csr_check_mode_without_key(tmp_path):
    res = dcsr.ensure_key_and_csr(_csr_params(tmp_path), check_mode=True)
    assert res["changed"] and res["key_created"] and "csr" not in res
    assert not (tmp_path / "iot").exists()


def test_csr_create_then_stable(tmp_path):
    first = dcsr.ensure_key_and_csr(_csr_params(tmp_path))
    assert first["changed"] and first["key_created"] and first["csr_created"]
    key_file = tmp_path / "iot" / "private.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert "PRIVATE KEY" not in repr(first)
    csr = x509.load_pem_x509_csr(first["csr"].encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pi-1"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    second = dcsr.ensure_key_and_csr(_csr_params(tmp_path))
    assert not second["changed"] and second["csr"] == first["csr"]
    assert second["public_key_sha256"] == first["public_key_sha256"]


def test_csr_new_cn_keeps_key(tmp_path):
    first = dcsr.ensure_key_and_csr(_csr_params(tmp_path))
    key_before = (tmp_path / "iot" / "private.key").read_bytes()
    renamed = dcsr.ensure_key_and_csr(_csr_params(tmp_path, cn="pi-renamed"))
    assert renamed["changed"] and renamed["csr_created"] and not renamed["key_created"]
    assert renamed["csr"] != first["csr"]
    assert (tmp_path / "iot" / "private.key").read_bytes() == key_before


def test_csr_refuses_to_replace_bad_key(tmp_path):
    (tmp_path / "iot").mkdir()
    (tmp_path / "iot" / "private.key").write_text("garbage")
    with pytest.raises(dcsr.CsrError, match="not replacing"):
        dcsr.ensure_key_and_csr(_csr_params(tmp_path))


def test_csr_loose_key_mode_is_fixed(tmp_path):
    dcsr.ensure_key_and_csr(_csr_params(tmp_path))
    os.chmod(tmp_path / "iot" / "private.key", 0o644)
    res = dcsr.ensure_key_and_csr(_csr_params(tmp_path))
    assert res["changed"] and not res["key_created"]
    assert stat.S_IMODE(os.stat(tmp_path / "iot" / "private.key").st_mode) == 0o600


def test_csr_cn_validation(tmp_path):
    with pytest.raises(dcsr.CsrError, match="1 to 64"):
        dcsr.ensure_key_and_csr(_csr_params(tmp_path, cn="x" * 65))
