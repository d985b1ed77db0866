# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.
"""CA key files encrypted with Ansible Vault, for the action plugins of the modules that read the CA key.

A module runs in its own process and cannot decrypt vault (the vault password lives in ansible-playbook).
Its action plugin runs inside ansible-playbook: for a key option naming a vault-encrypted file on the
controller it decrypts the file with the play's vault secrets (the same loader that decrypts vars files
and ``lookup('ansible.builtin.file')``) and passes the PEM in the module's ``<option>_content`` option,
which the module declares ``no_log``. The path stays: it names the key in messages, and a CA rotation
moves that file. Nothing decrypted is written to disk.
"""

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text

VAULT_HEADER = b"$ANSIBLE_VAULT;"


def is_vault_file(path):
    """True when the file at ``path`` starts with the Ansible Vault header; False when it does not or
    cannot be read (the module reports that itself)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(VAULT_HEADER) + 64).lstrip().startswith(VAULT_HEADER)
    except OSError:
        return False


def vaulted_key_args(loader, args, options):
    """The module arguments with the content of every vault-encrypted key file filled in.

    ``options``: ``{path option: content option}``. A path option that is set, whose content option is
    not, and whose file is vault-encrypted gets its decrypted PEM as the content option. Returns the new
    arguments (``args`` itself is not changed); raises AnsibleError naming the file (never its content)
    when it cannot be decrypted (no or wrong vault password).
    """
    result = dict(args)
    for path_option, content_option in options.items():
        path = result.get(path_option)
        if not isinstance(path, str) or not path or result.get(content_option) is not None:
            continue
        path = os.path.abspath(os.path.expanduser(path))
        if not is_vault_file(path):
            continue
        try:
            data, _shown = loader._get_file_contents(path)  # pylint: disable=protected-access
        except AnsibleError as e:
            raise AnsibleError(
                f"{path_option} {path} is encrypted with Ansible Vault and cannot be decrypted: "
                f"{to_text(getattr(e, 'message', e))} (give the vault password: --vault-password-file, "
                "--vault-id or --ask-vault-pass; in AWX a Vault credential)."
            ) from None
        result[content_option] = to_text(data, errors="surrogate_or_strict")
    return result


def task_key_args(action, result, options):
    """The task's module arguments with its vaulted key files decrypted (``vaulted_key_args``) when the task
    runs on the controller; None after recording the failure in ``result`` (a file that cannot be decrypted).
    The one step every key-reading action plugin of the collection makes before running its module."""
    args = action._task.args
    if action._connection.transport != "local":
        return args
    try:
        return vaulted_key_args(action._loader, args, options)
    except AnsibleError as e:
        result.update(failed=True, msg=str(e.message))
        return None
