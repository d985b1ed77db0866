#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: device_bundle
version_added: 1.0.0
short_description: Put a device's identity, client and configuration on it in one run
description:
  - Writes a set of directories and files on a device (a Raspberry Pi) in one module run, so that a
    slow device (a Pi Zero pays about 1.5 seconds per module run) is set up by one task instead of
    one task per file.
  - Every file is written atomically (a temporary file in the same directory, then a rename) with
    its owner, group and mode already set, so no reader ever sees a partial file or a key with loose
    permissions.
  - Reports changed only when a file's content, mode, owner or group differ from the wanted ones.
  - The private key (O(private_key)) is never returned and never shown in a diff; its content is a
    C(no_log) option.
  - An action plugin of the same name reads O(files[].src) and O(private_key.src) on the
    B(controller) and passes their contents to the device, so the files need not be on the device
    before. Binary files (a wheel) travel base64-encoded.
  - The remote side needs only the Python standard library (and C(cryptography) for O(device_key)).
author:
  - iotfleet.aws developers (@iotfleet)
options:
  directories:
    description:
      - Directories to create (with missing parents) and keep at the given mode and ownership.
      - Handled before the files. Parents of files that are not listed here are created with mode
        V(0755), owned by the connecting user.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      mode:
        description: Permissions, as an octal string such as V('0750').
        type: raw
        default: '0755'
      owner:
        description: User name or id that should own the directory. Unchanged (or the connecting user for a new one) when omitted.
        type: str
      group:
        description: Group name or id of the directory. Unchanged (or the user's group for a new one) when omitted.
        type: str
  files:
    description:
      - Files to write. Each needs exactly one of O(files[].content) and O(files[].src).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file on the device.
        type: path
        required: true
      content:
        description:
          - The file's content; text, or base64 when O(files[].encoding=base64).
          - Mutually exclusive with O(files[].src).
        type: str
      src:
        description:
          - A file on the B(controller) whose content is sent (read by the action plugin; a relative
            path is looked up in the role's or playbook's C(files) directory).
          - Mutually exclusive with O(files[].content).
        type: path
      encoding:
        description:
          - How O(files[].content) is encoded. The action plugin chooses V(base64) by itself for a
            O(files[].src) that is not UTF-8 text.
        type: str
        choices: [text, base64]
        default: text
      mode:
        description: Permissions, as an octal string such as V('0644').
        type: raw
        default: '0644'
      owner:
        description: User name or id that should own the file. Unchanged (or the connecting user for a new one) when omitted.
        type: str
      group:
        description: Group name or id of the file. Unchanged (or the user's group for a new one) when omitted.
        type: str
      diff:
        description:
          - Show this file's content in diff mode. Set V(false) for anything confidential.
          - Binary content is shown as its size and SHA-256 only.
        type: bool
        default: true
  private_key:
    description:
      - The device's private key. Written like a file, but its content is never logged, never
        returned and never shown in a diff (only that it changed).
      - Omit it when the key is made on the device (key mode C(device)).
    type: dict
    suboptions:
      path:
        description: Absolute path of the key on the device.
        type: path
        required: true
      content:
        description: The PEM text of the key. Mutually exclusive with O(private_key.src).
        type: str
      src:
        description: The key file on the B(controller), read by the action plugin. Mutually exclusive with O(private_key.content).
        type: path
      mode:
        description: Permissions; keep the default unless you know why.
        type: raw
        default: '0600'
      owner:
        description: User name or id that should own the key (the user the client runs as).
        type: str
      group:
        description: Group name or id of the key.
        type: str
  packages:
    description:
      - Debian packages the device needs. The module only looks (C(dpkg-query)) and returns the missing
        ones in RV(missing_packages); it installs nothing. This lets a rerun check the packages in the
        run it makes anyway, instead of a run of its own.
    type: list
    elements: str
    default: []
    version_added: 1.1.0
  device_key:
    description:
      - Key mode C(device) - the device's own private key and its CSR, handled in this run as
        M(iotfleet.aws.device_csr) does it (the key made when absent, never replaced, never
        returned; the CSR made again only when it does not fit the key or O(device_key.common_name)),
        so that a Pi which already has its identity needs no module run of its own for it.
      - Needs the Python C(cryptography) package on the device. Without it the key is left alone,
        RV(csr) is not returned, and RV(missing_packages) names what to install.
    type: dict
    version_added: 1.1.0
    suboptions:
      path:
        description: Path of the private key on the device.
        type: path
        required: true
      csr_path:
        description: Path where the CSR (PEM) is kept on the device.
        type: path
        required: true
      common_name:
        description: The CSR subject's common name (1 to 64 characters).
        type: str
        required: true
      key_type:
        description: Type of a new key, V(ec) (P-256) or V(rsa) (2048 bits). An existing key is kept.
        type: str
        choices: [ec, rsa]
        default: ec
      owner:
        description: User name or id that owns the key and the CSR.
        type: str
      group:
        description: Group name or id of the key and the CSR.
        type: str
      directory_mode:
        description: Mode of the key's directory when it has to be created.
        type: raw
        default: '0750'
  compare_only:
    description:
      - Only compare O(directories), O(files) and O(private_key) with what is on the device, as
        check mode does, and write none of them; RV(pending) says whether a run without it would
        change something. O(device_key) is still handled (its key made when absent).
      - For a preparation run before the device's certificate is known to be the current one.
    type: bool
    default: false
    version_added: 1.1.0
notes:
  - Run it with O(ignore:become) as root (C(become=true)) when the files belong to another user than the
    connecting one.
extends_documentation_fragment:
  - iotfleet.aws._attributes.DEVICE_MODULE
  - iotfleet.aws._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Shows the content of every changed file whose O(files[].diff) is true, and mode/owner/group
        changes of all files; the private key only as V((hidden)).
  idempotent:
    support: full
seealso:
  - module: iotfleet.aws.device_csr
"""

EXAMPLES = r"""
- name: Install the device identity, the client and its configuration
  become: true
  iotfleet.aws.device_bundle:
    directories:
      - {path: /etc/iotfleet, mode: '0750', owner: root, group: pi}
    files:
      - {path: /etc/iotfleet/certificate.pem, src: "pki/devices/pi-1/certificate.pem", owner: root, group: pi}
      - {path: /etc/iotfleet/root-ca.pem, src: AmazonRootCA1.pem, owner: root, group: pi}
      - path: /etc/iotfleet/client.json
        content: "{{ {'host': endpoint, 'thing_name': 'pi-1'} | to_nice_json }}"
        owner: root
        group: pi
      - {path: /usr/local/bin/iotfleet-device-client, src: iotfleet_device_client.py, mode: '0755'}
    private_key:
      path: /etc/iotfleet/private.key
      src: pki/devices/pi-1/private.key
      owner: pi
      group: pi
"""

RETURN = r"""
files:
  description: One entry per directory, file and the key, in the order handled, without any content.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path on the device.
      type: str
      sample: /etc/iotfleet/certificate.pem
    kind:
      description: V(directory), V(file) or V(private_key).
      type: str
      sample: file
    changed:
      description: Whether it was (or in check mode would be) written or its attributes fixed.
      type: bool
    reasons:
      description: What differed, from V(created), V(content), V(mode), V(owner), V(group).
      type: list
      elements: str
      sample: [content]
missing_packages:
  description: The packages of O(packages) that are not installed (all of them when C(dpkg-query) is absent).
  returned: always
  type: list
  elements: str
  sample: [python3-paho-mqtt]
  version_added: 1.1.0
pending:
  description: With O(compare_only), whether a directory, file or the key differs from the wanted one (nothing was written).
  returned: always
  type: bool
  version_added: 1.1.0
csr:
  description: With O(device_key), the CSR in PEM form. Not returned when the key could not be read or made (check mode, no C(cryptography)).
  returned: when O(device_key) is set
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\n..."
  version_added: 1.1.0
key_created:
  description: With O(device_key), whether a new private key was (or in check mode would be) made.
  returned: when O(device_key) is set
  type: bool
  version_added: 1.1.0
csr_created:
  description: With O(device_key), whether a new CSR was (or in check mode would be) made.
  returned: when O(device_key) is set
  type: bool
  version_added: 1.1.0
public_key_sha256:
  description: With O(device_key), SHA-256 of the key's public key (DER SubjectPublicKeyInfo).
  returned: when RV(csr) is returned
  type: str
  version_added: 1.1.0
"""

import base64
import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.iotfleet.aws.plugins.module_utils import _x509
from ansible_collections.iotfleet.aws.plugins.module_utils._device_key import ensure_key_and_csr
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import IoTFleetError
from ansible_collections.iotfleet.aws.plugins.module_utils._files import parse_mode
from ansible_collections.iotfleet.aws.plugins.module_utils._files import resolve_gid
from ansible_collections.iotfleet.aws.plugins.module_utils._files import resolve_uid
from ansible_collections.iotfleet.aws.plugins.module_utils._files import write_file

HIDDEN = "(hidden)"


class BundleError(IoTFleetError):
    """A wanted object that cannot be brought about (the message names its path)."""


def decode_content(entry):
    """bytes of a file entry; raises BundleError when content is missing or badly encoded."""
    content = entry.get("content")
    if content is None:
        if entry.get("src"):
            raise BundleError("%s: src is read by the action plugin; call the module through it" % entry["path"])
        raise BundleError("%s: one of content or src is required" % entry["path"])
    if entry.get("encoding") == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (ValueError, TypeError) as exc:
            raise BundleError("%s: content is not valid base64: %s" % (entry["path"], exc))
    return to_bytes(content, errors="surrogate_or_strict")


def normalise(entry, kind, default_mode):
    """One wanted object: path, kind, mode (int), uid/gid (int or None), data (bytes or None)."""
    path = entry.get("path")
    if not path or not os.path.isabs(path):
        raise BundleError("%s path %r must be absolute" % (kind, path))
    if entry.get("content") is not None and entry.get("src"):
        raise BundleError("%s: content and src are mutually exclusive" % path)
    try:
        mode = parse_mode(entry.get("mode"), default_mode)
        uid, gid = resolve_uid(entry.get("owner")), resolve_gid(entry.get("group"))
    except IoTFleetError as exc:
        raise BundleError("%s: %s" % (path, exc)) from None
    return {
        "path": os.path.normpath(path),
        "kind": kind,
        "mode": mode,
        "uid": uid,
        "gid": gid,
        "data": None if kind == "directory" else decode_content(entry),
        "diff": bool(entry.get("diff", True)) and kind == "file",
        "binary": entry.get("encoding") == "base64",
    }


def current_state(path):
    """(lstat or None, bytes or None) of what is on disk now."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    data = None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            data = handle.read()
    return st, data


def plan(want, st, data):
    """The reasons why want differs from what is on disk (pure: st is an os.stat_result or None)."""
    if st is None:
        return ["created"]
    reasons = []
    is_dir = stat.S_ISDIR(st.st_mode)
    if want["kind"] == "directory":
        if not is_dir:
            raise BundleError("%s exists and is not a directory" % want["path"])
    elif is_dir:
        raise BundleError("%s is a directory, expected a file" % want["path"])
    elif not stat.S_ISREG(st.st_mode) or data != want["data"]:
        reasons.append("content")
    if stat.S_IMODE(st.st_mode) != want["mode"] and not stat.S_ISLNK(st.st_mode):
        reasons.append("mode")
    if want["uid"] is not None and st.st_uid != want["uid"] and not stat.S_ISLNK(st.st_mode):
        reasons.append("owner")
    if want["gid"] is not None and st.st_gid != want["gid"] and not stat.S_ISLNK(st.st_mode):
        reasons.append("group")
    return reasons


def apply(want, reasons):
    if want["kind"] == "directory":
        if "created" in reasons:
            os.makedirs(want["path"], want["mode"])
        os.chown(want["path"], -1 if want["uid"] is None else want["uid"], -1 if want["gid"] is None else want["gid"])
        os.chmod(want["path"], want["mode"])
    elif "created" in reasons or "content" in reasons:
        write_file(want["path"], want["data"], want["mode"], want["uid"], want["gid"], dir_mode=0o755)
    else:
        if "owner" in reasons or "group" in reasons:
            os.chown(want["path"], -1 if want["uid"] is None else want["uid"], -1 if want["gid"] is None else want["gid"])
        if "mode" in reasons:
            os.chmod(want["path"], want["mode"])


def _owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def attributes(st=None, want=None):
    if st is not None:
        return {"mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": _owner_name(st.st_uid), "group": _group_name(st.st_gid)}
    result = {"mode": "%04o" % want["mode"]}
    if want["uid"] is not None:
        result["owner"] = _owner_name(want["uid"])
    if want["gid"] is not None:
        result["group"] = _group_name(want["gid"])
    return result


def show(data, binary):
    """Diff text of a content: text as is, binary (or not UTF-8) as size and SHA-256."""
    if data is None:
        return ""
    if not binary:
        try:
            return to_text(data, errors="strict")
        except UnicodeError:
            pass
    return "(binary, %d bytes, sha256 %s)\n" % (len(data), hashlib.sha256(data).hexdigest())


def diff_entry(want, st, data, reasons):
    """One diff for the callback; never content of the key or of a file with diff=false."""
    header = want["path"]
    before = {} if st is None else attributes(st=st)
    after = attributes(want=want)
    if want["kind"] == "private_key" or not want["diff"] or want["kind"] == "directory":
        if want["kind"] == "private_key":
            before = dict(before, content=HIDDEN) if st is not None else {}
            after = dict(after, content=HIDDEN + (" changed" if "content" in reasons or "created" in reasons else ""))
        return {"before_header": header, "after_header": header, "before": before, "after": after}
    prefix_before = "" if st is None else "# %s\n" % " ".join("%s=%s" % kv for kv in sorted(before.items()))
    prefix_after = "# %s\n" % " ".join("%s=%s" % kv for kv in sorted(after.items()))
    return {
        "before_header": header,
        "after_header": header,
        "before": prefix_before + show(data, want["binary"]) if st is not None else "",
        "after": prefix_after + show(want["data"], want["binary"]),
    }


def ensure_bundle(directories, files, private_key, check_mode=False, want_diff=False):
    """Validate everything, then bring each object to its wanted state. Returns (changed, results, diffs)."""
    wanted = [normalise(d, "directory", "0755") for d in directories or []]
    wanted += [normalise(f, "file", "0644") for f in files or []]
    if private_key:
        wanted.append(normalise(private_key, "private_key", "0600"))
    paths = [w["path"] for w in wanted]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise BundleError("paths given more than once: %s" % ", ".join(duplicates))
    results, diffs, changed = [], [], False
    for want in wanted:
        st, data = current_state(want["path"])
        reasons = plan(want, st, data)
        if reasons:
            changed = True
            if want_diff:
                diffs.append(diff_entry(want, st, data, reasons))
            if not check_mode:
                apply(want, reasons)
        results.append({"path": want["path"], "kind": want["kind"], "changed": bool(reasons), "reasons": reasons})
    return changed, results, diffs


def missing_packages(names, run_command, dpkg_query):
    """The packages of names that dpkg does not list as installed (status ii); all of them without dpkg-query."""
    if not names:
        return []
    if not dpkg_query:
        return list(names)
    dummy, out, dummy_err = run_command([dpkg_query, "-W", "-f=${db:Status-Abbrev}${Package}\\n"] + list(names))
    installed = {line.split()[-1] for line in out.splitlines() if line.startswith("ii ")}
    return [name for name in names if name not in installed]


def argument_spec():
    owner_group = {"owner": {"type": "str"}, "group": {"type": "str"}}
    return {
        "directories": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": dict({"path": {"type": "path", "required": True}, "mode": {"type": "raw", "default": "0755"}}, **owner_group),
        },
        "files": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": dict(
                {
                    "path": {"type": "path", "required": True},
                    "content": {"type": "str"},
                    "src": {"type": "path"},
                    "encoding": {"type": "str", "choices": ["text", "base64"], "default": "text"},
                    "mode": {"type": "raw", "default": "0644"},
                    "diff": {"type": "bool", "default": True},
                },
                **owner_group
            ),
            "mutually_exclusive": [["content", "src"]],
        },
        "private_key": {
            "type": "dict",
            "no_log": False,  # only its content is secret (no_log there); path/owner/mode are not
            "options": dict(
                {
                    "path": {"type": "path", "required": True},
                    "content": {"type": "str", "no_log": True},
                    "src": {"type": "path"},
                    "mode": {"type": "raw", "default": "0600"},
                },
                **owner_group
            ),
            "mutually_exclusive": [["content", "src"]],
        },
        "packages": {"type": "list", "elements": "str", "default": []},
        "device_key": {
            "type": "dict",
            "no_log": False,  # paths and names only: the key itself is never an input or an output
            "options": dict(
                {
                    "path": {"type": "path", "required": True},
                    "csr_path": {"type": "path", "required": True},
                    "common_name": {"type": "str", "required": True},
                    "key_type": {"type": "str", "choices": ["ec", "rsa"], "default": "ec"},
                    "directory_mode": {"type": "raw", "default": "0750"},
                },
                **owner_group
            ),
        },
        "compare_only": {"type": "bool", "default": False},
    }


def ensure_device_key(params, check_mode=False):
    """The key and CSR of O(device_key) (key mode device); without cryptography on the device, none."""
    if not _x509.HAS_CRYPTOGRAPHY:
        return {"changed": False, "key_created": False, "csr_created": False}
    return ensure_key_and_csr(params, check_mode=check_mode)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    compare_only = params["compare_only"]
    try:
        key_result = ensure_device_key(params["device_key"], module.check_mode) if params["device_key"] else {}
        changed, results, diffs = ensure_bundle(
            params["directories"],
            params["files"],
            params["private_key"],
            check_mode=module.check_mode or compare_only,
            want_diff=module._diff and not compare_only,
        )
    except IoTFleetError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (getattr(exc, "filename", None) or "a file", exc.strerror or exc))
    result = dict(key_result)
    result.update(changed=bool(key_result.get("changed")) or (changed and not compare_only), files=results,
                  pending=changed, missing_packages=missing_packages(params["packages"], module.run_command,
                                                                     module.get_bin_path("dpkg-query")))
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
