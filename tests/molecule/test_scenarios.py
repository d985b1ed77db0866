# -*- coding: utf-8 -*-
"""Run each molecule scenario (extensions/molecule/<name>) against the containerized Pi Zeros.

Each scenario brings up its own lab, runs the user's playbook (converge), runs it again and
requires changed=0 (idempotence), checks the result independently (verify) and takes the lab
down. Scenarios run one after another: every Pi is an emulated ARMv6 CPU on a 2-core machine.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = sorted(
    p.parent.name
    for p in (ROOT / "extensions" / "molecule").glob("*/molecule.yml")
    if p.parent.name != "utils"
)


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, tmp_path):
    env = dict(
        os.environ,
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    log = tmp_path / "molecule.log"
    with open(log, "w") as out:
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "molecule"), "test", "-s", scenario],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=2400,
            check=False,
        )
    text = log.read_text()
    assert proc.returncode == 0, f"molecule scenario {scenario} failed (rc={proc.returncode}):\n{text[-30000:]}"
