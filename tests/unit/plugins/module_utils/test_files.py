# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_files.py (the one atomic write, private dirs, mode/owner parsing)
and of the dependency-free _errors.py, on a temporary directory."""

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.iotfleet.aws.plugins.module_utils import _errors
from ansible_collections.iotfleet.aws.plugins.module_utils import _files
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from support.imports import AWS, loaded_by

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("value, mode", [("0640", 0o640), ("640", 0o640), ("0o600", 0o600), (0o750, 0o750), (None, 0o644)])
def test_parse_mode(value, mode):
    assert _files.parse_mode(value, "0644") == mode


@pytest.mark.parametrize("value", ["u+rw", "99999", "0o8", True])
def test_parse_mode_rejects(value):
    with pytest.raises(IoTFleetError, match="mode"):
        _files.parse_mode(value, "0644")


def test_resolve_owner_group():
    assert _files.resolve_uid(None) is None and _files.resolve_gid("") is None
    assert _files.resolve_uid(ME) == os.getuid() and _files.resolve_uid("0") == 0
    assert _files.resolve_gid(MY_GROUP) == os.getgid() and _files.resolve_gid(7) == 7
    with pytest.raises(IoTFleetError, match="user 'no-such-user-iotfleet' does not exist"):
        _files.resolve_uid("no-such-user-iotfleet")
    with pytest.raises(IoTFleetError, match="group 'no-such-group-iotfleet' does not exist"):
        _files.resolve_gid("no-such-group-iotfleet")


def test_makedirs_private_ignores_umask_and_keeps_existing(tmp_path):
    old = os.umask(0o000)
    try:
        assert _files.makedirs_private(str(tmp_path / "a" / "b" / "c"))
    finally:
        os.umask(old)
    for part in ("a", "a/b", "a/b/c"):
        assert _mode(tmp_path / part) == 0o700
    os.chmod(tmp_path / "a", 0o755)  # an operator's choice stays
    assert not _files.makedirs_private(str(tmp_path / "a"))
    assert _mode(tmp_path / "a") == 0o755
    assert _files.makedirs_private(str(tmp_path / "d"), 0o750) and _mode(tmp_path / "d") == 0o750


def test_write_file_mode_owner_and_replace(tmp_path):
    path = str(tmp_path / "keys" / "private.key")
    _files.write_file(path, b"one", 0o600, os.getuid(), os.getgid())
    assert _mode(tmp_path / "keys") == 0o700 and _mode(path) == 0o600
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    inode = st.st_ino
    _files.write_file(path, b"two", 0o640)
    assert open(path, "rb").read() == b"two" and _mode(path) == 0o640
    assert os.stat(path).st_ino != inode  # renamed over, never rewritten in place
    assert sorted(os.listdir(tmp_path / "keys")) == ["private.key"]  # no temporary left
    _files.write_file(str(tmp_path / "pub" / "x"), b"", 0o644, dir_mode=0o755)
    assert _mode(tmp_path / "pub") == 0o755


def test_write_file_failure_leaves_target_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "certificate.pem"
    path.write_bytes(b"old")

    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(PermissionError):
        _files.write_file(str(path), b"new", 0o644)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["certificate.pem"]


def test_read_optional_and_fix_attributes(tmp_path):
    path = tmp_path / "f"
    assert _files.read_optional(str(path)) is None
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    assert _files.read_optional(str(path)) == b"x"
    assert _files.fix_attributes(str(path), 0o600, check_mode=True) and _mode(path) == 0o644
    assert _files.fix_attributes(str(path), 0o600, os.getuid(), os.getgid()) and _mode(path) == 0o600
    assert not _files.fix_attributes(str(path), 0o600, os.getuid(), None)


@pytest.mark.parametrize("module", ["_files", "_errors"])
def test_errors_and_files_need_nothing_but_the_stdlib(module):
    """_errors and _files are what device-side modules ship to the Pi: stdlib only."""
    assert loaded_by(f"ansible_collections.iotfleet.aws.plugins.module_utils.{module}", AWS + ("cryptography",)) == []


@pytest.mark.parametrize("status, allowed, value", [
    ("active", _errors.CERTIFICATE_STATUSES, "ACTIVE"),
    ("REVOKED", _errors.CERTIFICATE_STATUSES, "REVOKED"),
    ("Inactive", _errors.CA_CERTIFICATE_STATUSES, "INACTIVE"),
    (None, _errors.CA_CERTIFICATE_STATUSES, None),
])
def test_normalize_status(status, allowed, value):
    assert _errors.normalize_status(status, allowed) == value


def test_normalize_status_refuses_in_the_documented_case():
    with pytest.raises(IoTFleetError, match=r"Invalid CA certificate status 'revoked': use one of ACTIVE, INACTIVE"):
        _errors.normalize_status("revoked", _errors.CA_CERTIFICATE_STATUSES, "CA certificate")


def test_client_still_exports_the_one_error():
    from ansible_collections.iotfleet.aws.plugins.module_utils import _client

    assert _client.IoTFleetError is IoTFleetError
