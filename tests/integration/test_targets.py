# -*- coding: utf-8 -*-
"""Run every integration target (tests/integration/targets/<name>) against a real moto server.

A target is an ansible-test style role (tasks/main.yml) that asserts its own results: each
module runs check mode, real, check mode, real (changed, changed, not changed, not changed),
the same for state=absent, reads the resource back with plain boto3 (``iot_readback``) and
checks that bad input fails with a clear message before any write.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from support.iotcore import module_defaults

HERE = pathlib.Path(__file__).resolve().parent
TARGETS = sorted(
    p.name
    for p in (HERE / "targets").iterdir()
    if (p / "tasks" / "main.yml").is_file() and not p.name.startswith("setup_")
) if (HERE / "targets").is_dir() else []

PLAYBOOK = """
- name: Integration target {target}
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{python}"
    iot_readback: ["{python}", "{readback}"]
    resource_prefix: "{prefix}"
{module_defaults}
  tasks:
    - name: Run target {target}
      ansible.builtin.include_role:
        name: "{role}"
"""


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_target(target, moto, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        PLAYBOOK.format(
            target=target,
            python=sys.executable,
            readback=HERE / "iot_readback.py",
            prefix=f"it-{target.replace('_', '-')}",
            module_defaults=module_defaults(moto.url),
            role=HERE / "targets" / target,
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_ROLES_PATH=str(HERE / "targets"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        IOT_READBACK_ENDPOINT=moto.url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="2",
    )
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"target {target} failed:\n{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}"
