"""The lab's own podman network (its gateway is where the Pis find the data endpoint) and the
certificates that name it: the lab root CA and the broker's server certificate (lab/iotcore/pki.py)."""
from __future__ import annotations

import json

import pki
from labstate import LABEL, LOOPBACK, Lab, LabError, run, say, write_private, write_text


def parse_network(info: dict) -> dict:
    """`podman network inspect` of one network -> {name, subnet, gateway}; LabError without a gateway."""
    subnet = (info.get("subnets") or [{}])[0]
    gateway = subnet.get("gateway")
    if not gateway:
        raise LabError(f"podman network {info.get('name')} has no gateway: {info}")
    return {"name": info.get("name"), "subnet": subnet.get("subnet"), "gateway": gateway}


def server_names(lab: Lab, gateway: str) -> list[str]:
    """What the broker's certificate names: the ATS endpoint, the gateway (Pis), loopback (host)."""
    return [lab.endpoint, gateway, LOOPBACK, "localhost"]


def ensure_lab_root(lab: Lab) -> None:
    """The lab root CA: issues the broker's server certificate (devices trust it instead of
    Amazon Root CA 1). The fleet CA is the collection's: its `ca` role makes it."""
    if lab.lab_root_pem.exists() and lab.lab_root_key.exists():
        return
    cert, key = pki.make_ca(f"iotfleet lab root CA {lab.state['prefix']}")
    write_private(lab.lab_root_key, pki.key_pem(key))
    write_text(lab.lab_root_pem, pki.pem(cert).decode())


def ensure_network(lab: Lab) -> None:
    name = lab.state["prefix"]
    if run(["podman", "network", "exists", name], check=False).returncode != 0:
        run(["podman", "network", "create", "--label", f"{LABEL}={name}", name])
    info = json.loads(run(["podman", "network", "inspect", name]).stdout)[0]
    net = parse_network(dict(info, name=info.get("name", name)))
    lab.state["network"] = net
    lab.save()
    srv_pem, srv_key = lab.core_dir / "server.pem", lab.core_dir / "server.key"
    if not (srv_pem.exists() and srv_key.exists()):
        lab.core_dir.mkdir(parents=True, exist_ok=True)   # 0755: the stand-in's state and log too
        root_cert, root_key = pki.load(lab.lab_root_pem, lab.lab_root_key)
        cert, key = pki.issue_server(root_cert, root_key, server_names(lab, net["gateway"]))
        write_private(srv_key, pki.key_pem(key))
        write_text(srv_pem, pki.pem(cert).decode())
    say(f"network {name}: {net['subnet']}, gateway {net['gateway']}; endpoint {lab.endpoint}")


def remove_network(lab: Lab) -> None:
    net = (lab.state.get("network") or {}).get("name")
    if net:
        run(["podman", "network", "rm", "-f", net], check=False)
        say(f"removed network {net}")
