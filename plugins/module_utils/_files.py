# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""Files of the collection, on the controller and on the Pi (stdlib only).

One atomic write (in the style of community.crypto's ``_io.write_file``): a temporary file in
the target's directory gets its final mode and owner *before* the data, is fsynced and renamed
over the target, so the file never exists with wider rights or half written. Plus private
directory creation and the uid/gid/mode parsing that device_csr and device_bundle share.
"""

import grp
import os
import pwd
import stat
import tempfile

from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError


def parse_mode(value, default=None):
    """An octal mode from ``'0640'``, ``'640'``, ``'0o640'`` or an int (YAML 0640 arrives as 416).

    ``None`` means ``default``. Symbolic modes are refused (IoTFleetError).
    """
    if value is None:
        value = default
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        if text.startswith("0o"):
            text = text[2:]
        try:
            mode = int(text, 8)
        except ValueError:
            raise IoTFleetError(
                "mode %r is not an octal number such as '0640' (symbolic modes are not supported)" % (value,)
            ) from None
    if mode < 0 or mode > 0o7777:
        raise IoTFleetError("mode %r is out of range" % (value,))
    return mode


def _resolve(value, lookup, what):
    if value is None or value == "":
        return None
    if str(value).isdigit():
        return int(value)
    try:
        return lookup(str(value))
    except KeyError:
        raise IoTFleetError("%s %r does not exist on the device" % (what, value)) from None


def resolve_uid(owner):
    """The uid of a user name or number; None for None or ''. IoTFleetError for an unknown user."""
    return _resolve(owner, lambda name: pwd.getpwnam(name).pw_uid, "user")


def resolve_gid(group):
    """The gid of a group name or number; None for None or ''. IoTFleetError for an unknown group."""
    return _resolve(group, lambda name: grp.getgrnam(name).gr_gid, "group")


def _chown_args(uid, gid):
    return -1 if uid is None else uid, -1 if gid is None else gid


def makedirs_private(directory, mode=0o700):
    """Make ``directory`` and its missing parents with ``mode`` (whatever the umask).

    Existing directories keep the mode their owner gave them. Returns True when it made one.
    """
    parent = os.path.dirname(directory)
    if parent and parent != directory and not os.path.isdir(parent):
        makedirs_private(parent, mode)
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return False
    os.chmod(directory, mode)
    return True


def write_file(path, data, mode, uid=None, gid=None, dir_mode=0o700):
    """Write ``data`` (bytes) to ``path`` atomically with ``mode`` and owner ``uid``/``gid``.

    The temporary file has its final mode and owner before any data is in it, is fsynced, then
    renamed over ``path``; on any failure it is removed and ``path`` is untouched. A missing
    directory is made with ``dir_mode`` (:func:`makedirs_private`).
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        makedirs_private(directory, dir_mode)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        if uid is not None or gid is not None:
            os.fchown(fd, *_chown_args(uid, gid))
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = None
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def read_optional(path):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def fix_attributes(path, mode, uid=None, gid=None, check_mode=False):
    """Bring an existing path's mode and owner to the wanted ones; True when something differed."""
    st = os.lstat(path)
    changed = False
    if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
        changed = True
        if not check_mode:
            os.chown(path, *_chown_args(uid, gid))
    if stat.S_IMODE(st.st_mode) != mode:
        changed = True
        if not check_mode:
            os.chmod(path, mode)
    return changed
