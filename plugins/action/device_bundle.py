# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for iotfleet.aws.device_bundle: read every O(src) on the controller and send the
contents to the device module in ONE remote run (a Pi Zero pays ~1.5 s per run)."""

import base64

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("directories", "files", "private_key", "packages", "device_key", "compare_only"))

    def _read_src(self, src, what):
        """(content, encoding) of a controller file; text when it is UTF-8, else base64."""
        try:
            path = self._find_needle("files", src)
        except AnsibleError as exc:
            raise AnsibleActionFail("%s: cannot find %s on the controller: %s" % (what, src, to_text(exc)))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise AnsibleActionFail("%s: cannot read %s on the controller: %s" % (what, path, exc.strerror))
        if not path.endswith(".whl"):
            try:
                return data.decode("utf-8"), "text"
            except UnicodeDecodeError:
                pass
        return base64.b64encode(data).decode("ascii"), "base64"

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)  # unknown options: ActionBase.run refused them (_VALID_ARGS)

        files = []
        for entry in args.get("files") or []:
            if not isinstance(entry, dict):
                raise AnsibleActionFail("each element of files must be a dict, got %r" % (entry,))
            entry = dict(entry)
            if entry.get("src") and entry.get("content") is None:
                entry["content"], entry["encoding"] = self._read_src(entry.pop("src"), entry.get("path"))
            files.append(entry)
        if "files" in args:
            args["files"] = files

        key = args.get("private_key")
        if key:
            if not isinstance(key, dict):
                raise AnsibleActionFail("private_key must be a dict")
            key = dict(key)
            if key.get("src") and key.get("content") is None:
                content, encoding = self._read_src(key.pop("src"), "private_key")
                if encoding != "text":
                    raise AnsibleActionFail("private_key: %s is not a PEM text file" % key.get("path"))
                key["content"] = content
            args["private_key"] = key
        elif "private_key" in args:
            del args["private_key"]  # None/omitted/empty: key made on the device

        result.update(
            self._execute_module(module_name="iotfleet.aws.device_bundle", module_args=args, task_vars=task_vars)
        )
        return result
