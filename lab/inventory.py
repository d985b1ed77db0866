"""What a user of the lab gets: the inventory of its Pis (as a user writes one for real Pis), the
lab root CA as the one lab-only variable, AWS config files and `env` lines for the stand-in, and
an ansible.cfg. The render_* functions are pure; write_inventory writes them."""
from __future__ import annotations

import sys
from pathlib import Path

from labstate import AWS_REGION, CREDENTIALS, HERE, LOOPBACK, MQTT_PORT, Lab, write_private, write_text


def render_inventory(pis: list[dict], ssh_key: Path) -> str:
    lines = ["# Written by lab/lab.py up: the lab's emulated Pi Zeros, as a user writes an inventory",
             "# of real Pis: hosts and SSH settings only.",
             "[pis]"]
    lines += [f"{pi['name']} ansible_host={LOOPBACK} ansible_port={pi['port']}" for pi in pis]
    lines += ["", "[pis:vars]", "ansible_user=pi",
              f"ansible_ssh_private_key_file={ssh_key}",
              "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
              "ansible_python_interpreter=/usr/bin/python3", ""]
    return "\n".join(lines)


def render_group_vars(lab_root_pem: Path) -> str:
    # The one lab-only variable: the root the Pis trust for the endpoint's server certificate
    # (on AWS: Amazon Root CA 1, the role's default). AWS endpoint and credentials come from the
    # environment or this lab's AWS config files (`lab.py env`), as for any amazon.aws module.
    return ("# Written by lab/lab.py up. The lab's endpoint certificate comes from the lab root, not Amazon's.\n"
            f"device_root_ca_path: {lab_root_pem}\n")


def render_aws_config(endpoint_url: str) -> str:
    return f"[default]\nregion = {AWS_REGION}\nendpoint_url = {endpoint_url}\n"


def render_aws_credentials() -> bytes:
    return (f"[default]\naws_access_key_id = {CREDENTIALS['access_key']}\n"
            f"aws_secret_access_key = {CREDENTIALS['secret_key']}\n").encode()


def render_ansible_cfg(lab_dir: Path) -> str:
    return f"""# Written by lab/lab.py up. Use: ANSIBLE_CONFIG={lab_dir / 'ansible.cfg'}
[defaults]
inventory = {lab_dir / 'pis.ini'}
host_key_checking = False
interpreter_python = /usr/bin/python3
forks = 20
timeout = 30
retry_files_enabled = False
callback_result_format = yaml

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=30
"""


def write_inventory(lab: Lab) -> None:
    s = lab.state
    core = s["iotcore"]
    write_text(lab.dir / "pis.ini", render_inventory(s["pis"], lab.ssh_key))
    write_text(lab.dir / "group_vars" / "all" / "lab.yml", render_group_vars(lab.lab_root_pem))
    write_text(lab.aws_dir / "config", render_aws_config(core["endpoint_url"]))
    write_private(lab.aws_dir / "credentials", render_aws_credentials())
    write_text(lab.dir / "ansible.cfg", render_ansible_cfg(lab.dir))
    s["mqtt"] = {"endpoint": lab.endpoint, "port": MQTT_PORT, "bridge_host": s["network"]["gateway"],
                 "host": LOOPBACK, "host_port": core["mqtt_host_port"]}
    s["aws"] = {"endpoint_url": core["endpoint_url"], "region": AWS_REGION, **CREDENTIALS}
    s["ssh"] = {"user": "pi", "host": LOOPBACK, "private_key": str(lab.ssh_key)}


def env(state: dict) -> dict[str, str]:
    """What any AWS or MQTT tool needs to talk to this lab (printed as export lines)."""
    return {
        "AWS_ENDPOINT_URL": state["aws"]["endpoint_url"],
        "AWS_ACCESS_KEY_ID": state["aws"]["access_key"],
        "AWS_SECRET_ACCESS_KEY": state["aws"]["secret_key"],
        "AWS_DEFAULT_REGION": state["aws"]["region"],
        "IOTFLEET_LAB_MQTT_HOST": state["mqtt"]["host"],
        "IOTFLEET_LAB_MQTT_PORT": str(state["mqtt"]["host_port"]),
        "IOTFLEET_LAB_ROOT_CA": state["paths"]["lab_root_ca"],
    }


def summary(lab: Lab) -> str:
    s = lab.state
    core = s["iotcore"]
    lines = [f"\nlab up in {lab.dir} (prefix {s['prefix']})"]
    lines += [f"  {pi['name']:6} {pi['container']}  ssh -i {lab.ssh_key} -p {pi['port']} pi@{LOOPBACK}"
              for pi in s["pis"]]
    lines += [
        f"  AWS IoT    {core['endpoint_url']}  (stand-in pid {core['pid']}, broker pid {core['mosquitto']['pid']})",
        f"  MQTT       {lab.endpoint}:{MQTT_PORT} (Pis: {s['network']['gateway']}), "
        f"{LOOPBACK}:{core['mqtt_host_port']} (host)",
        f"  inventory  {lab.dir / 'pis.ini'}  (+ group_vars/all/lab.yml: the lab root CA)",
        f"  AWS env    eval \"$({Path(sys.executable)} {HERE / 'lab.py'} env --dir {lab.dir})\"",
        f"  config     ANSIBLE_CONFIG={lab.dir / 'ansible.cfg'}",
        f"  state      {lab.json_path}",
    ]
    return "\n".join(lines)
