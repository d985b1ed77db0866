# -*- coding: utf-8 -*-
"""The built execution environment image (`make ee`): ansible-doc renders iotfleet.aws's modules
inside it, and ansible-playbook inside it drives iotfleet.aws modules against the IoT Core
stand-in's control plane (on host loopback; the container shares the host's network).

Marked `ee` and skipped unless IOTFLEET_EE_IMAGE names a built image: `make ee` builds the image
(scripts/ee-build.sh) and then runs these tests with it.
"""

import json
import os
import shutil
import subprocess

import pytest

from support.iotcore import module_defaults

IMAGE = os.environ.get("IOTFLEET_EE_IMAGE", "")

pytestmark = [
    pytest.mark.ee,
    pytest.mark.skipif(not IMAGE, reason="needs a built EE image: make ee (sets IOTFLEET_EE_IMAGE)"),
]

PLAYBOOK = """
- name: iotfleet.aws inside the execution environment
  hosts: localhost
  connection: local
  gather_facts: false
{module_defaults}
  tasks:
    - name: The data endpoint
      iotfleet.aws.iot_endpoint_info:
      register: endpoint

    - name: A policy (created)
      iotfleet.aws.iot_policy:
        name: ee-policy
        policy_document: &doc
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Action: iot:Connect
              Resource: "arn:aws:iot:*:*:client/${{iot:Connection.Thing.ThingName}}"
      register: first

    - name: The same policy again (unchanged)
      iotfleet.aws.iot_policy:
        name: ee-policy
        policy_document: *doc
      register: second

    - name: What the modules saw
      ansible.builtin.assert:
        that:
          - endpoint.endpoint is match('.*-ats\\.iot\\.us-east-1\\.amazonaws\\.com$')
          - first is changed
          - second is not changed
          - second.policy_arn == first.policy_arn
"""


def podman(*args, timeout=300):
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None:
        pytest.fail("podman is missing (make host)")
    inspect = podman("image", "inspect", "--format", "{{json .Config.Labels}}", IMAGE)
    assert inspect.returncode == 0, f"{IMAGE} is not built: {inspect.stderr}"
    labels = json.loads(inspect.stdout) or {}
    assert labels.get("ansible-execution-environment") == "true", labels
    return IMAGE


def test_ansible_doc_renders_the_modules(image):
    proc = podman("run", "--rm", "-e", "ANSIBLE_NOCOLOR=1", image, "ansible-doc", "iotfleet.aws.iot_fleet")
    assert proc.returncode == 0, proc.stderr
    # ansible-doc exits 0 for a plugin it cannot find: check what it printed.
    assert "was not found" not in proc.stdout + proc.stderr
    assert "> MODULE iotfleet.aws.iot_fleet" in proc.stdout, proc.stdout[:2000]
    assert "rate_share" in proc.stdout


def test_collections_and_requirements_are_installed(image):
    # One container for the three checks: each start costs seconds on a loaded machine.
    script = ("ansible-galaxy collection list --format json; echo '-----'; "
              "python3 -c 'import boto3, botocore, cryptography; print(\"imports ok\")'; echo '-----'; ssh -V 2>&1")
    proc = podman("run", "--rm", image, "bash", "-c", script)
    assert proc.returncode == 0, proc.stderr
    collections, imports, ssh = proc.stdout.split("-----\n")
    found = {name: info["version"] for path in json.loads(collections).values() for name, info in path.items()}
    assert found.keys() >= {"iotfleet.aws", "amazon.aws", "community.crypto"}, found
    assert found["amazon.aws"].startswith("11."), found
    assert imports.strip() == "imports ok", proc.stderr
    assert ssh.startswith("OpenSSH"), ssh


def test_playbook_runs_modules_against_the_stand_in(image, moto, tmp_path):
    """The container shares the host's network, so the stand-in stays on loopback."""
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(module_defaults=module_defaults(moto.url)))
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "play.yml", 0o644)
    proc = podman("run", "--rm", "--network", "host", "-v", f"{tmp_path}:/runner/project:ro,Z",
                  "-e", "ANSIBLE_NOCOLOR=1", "-e", "AWS_MAX_ATTEMPTS=2",
                  image, "ansible-playbook", "-i", "localhost,", "/runner/project/play.yml")
    assert proc.returncode == 0, f"{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}"
    assert "changed=1" in proc.stdout and "failed=0" in proc.stdout, proc.stdout[-3000:]
    # The write went to the stand-in, not anywhere else.
    policy = moto.iot.get_policy(policyName="ee-policy")
    assert "iot:Connection.Thing.ThingName" in policy["policyDocument"]
