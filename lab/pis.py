"""The emulated Pi Zeros: podman containers (Debian armel under qemu, QEMU_CPU=arm1176) with
sshd on a published loopback port, and the SSH key the lab logs in with."""
from __future__ import annotations

import json
import os
import subprocess
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from labstate import DEFAULT_IMAGE, HERE, LABEL, LOOPBACK, Lab, LabError, PortLock, run, say, wait_for
from labstate import write_private, write_text
from support.procs import free_port, port_free

ARCH = "armv6l"


def parse_ps(output: str) -> dict[str, str]:
    """`podman ps -a --format json` -> {container name: state} (running, exited, created, ...)."""
    states = {}
    for c in json.loads(output or "[]"):
        names = c.get("Names") or []
        for name in ([names] if isinstance(names, str) else names):
            states[name] = str(c.get("State", "")).lower()
    return states


def container_states(lab: Lab) -> dict[str, str]:
    prefix = lab.state.get("prefix")
    if not prefix:
        return {}
    return parse_ps(run(["podman", "ps", "-a", "--filter", f"label={LABEL}={prefix}", "--format", "json"]).stdout)


def ensure_image(image: str) -> None:
    if run(["podman", "image", "exists", image], check=False).returncode == 0:
        return
    if image != DEFAULT_IMAGE and "LAB_IMAGE" not in os.environ:
        raise LabError(f"image {image} not found")
    say(f"image {image} missing: building it with lab/image.sh (takes ~2 min)")
    r = subprocess.run([str(HERE / "image.sh")], env=dict(os.environ, LAB_IMAGE=image), check=False)
    if r.returncode != 0:
        raise LabError("lab/image.sh failed")


def ensure_ssh_key(lab: Lab) -> None:
    """The ed25519 key the lab's `pi` user accepts (OpenSSH format, 0600 in a 0700 dir)."""
    if lab.ssh_key.exists():
        return
    k = ed25519.Ed25519PrivateKey.generate()
    write_private(lab.ssh_key, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    pub = k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_text(lab.ssh_key.with_suffix(".pub"), pub.decode() + " iotfleet-lab\n")
    os.chmod(lab.ssh_key.parent, 0o700)


def pi_record(prefix: str, i: int) -> dict:
    return {"name": f"pi{i}", "container": f"{prefix}-pi{i}", "port": None}


def podman_run_args(lab: Lab, pi: dict, port: int, image: str, pubkey: str) -> list[str]:
    """The `podman run` of one Pi: on the lab's network, the endpoint resolving to its gateway."""
    prefix, network = lab.state["prefix"], lab.state["network"]
    return ["podman", "run", "-d", "--init", "--pull=never",
            "--name", pi["container"], "--hostname", pi["name"],
            "--label", f"{LABEL}={prefix}", "--label", f"{LABEL}.dir={lab.dir}",
            "--network", network["name"],
            "--add-host", f"{lab.endpoint}:{network['gateway']}",
            "-e", "QEMU_CPU=arm1176", "-e", f"LAB_AUTHORIZED_KEY={pubkey}",
            "-p", f"{LOOPBACK}:{port}:22", image]


def ensure_pis(lab: Lab, n: int, image: str) -> None:
    prefix = lab.state["prefix"]
    pubkey = lab.ssh_key.with_suffix(".pub").read_text().strip()
    pis = lab.state.setdefault("pis", [])
    states = container_states(lab)
    for i in range(1, n + 1):
        if len(pis) < i:
            pis.append(pi_record(prefix, i))
        pi = pis[i - 1]
        st = states.get(pi["container"])
        if st == "running":
            continue
        if st is not None:  # exists but stopped: start it again (same published port)
            say(f"{pi['container']}: {st}, starting it")
            run(["podman", "start", pi["container"]])
            continue
        for attempt in range(5):
            with PortLock():
                port = pi["port"] if (pi["port"] and attempt == 0 and port_free(LOOPBACK, pi["port"])) \
                    else free_port(LOOPBACK)
                r = run(podman_run_args(lab, pi, port, image, pubkey), check=False)
            if r.returncode == 0:
                pi["port"] = port
                say(f"{pi['container']}: started, ssh on {LOOPBACK}:{port}")
                break
            run(["podman", "rm", "-f", "--ignore", pi["container"]], check=False)
            if "address already in use" not in (r.stderr or "") or attempt == 4:
                raise LabError(f"podman run {pi['container']} failed:\n{r.stderr.strip()}")
        lab.save()


def wait_pis(lab: Lab, timeout: float) -> None:
    """Every Pi answers SSH and is ARMv6 (`uname -m`, also under sudo); all in parallel."""
    errors: dict[str, str] = {}

    def one(pi):
        def probe():
            st = container_states(lab).get(pi["container"])
            if st != "running":
                logs = run(["podman", "logs", "--tail", "20", pi["container"]], check=False)
                raise LabError(f"container {pi['container']} is {st}:\n{logs.stdout}{logs.stderr}")
            r = run(lab.ssh_cmd(pi["port"], "uname -m; sudo -n uname -m"), check=False, timeout=60)
            if r.returncode != 0:
                raise RuntimeError((r.stderr or "").strip() or f"ssh rc {r.returncode}")
            return r.stdout.split()
        try:
            archs = wait_for(f"ssh to {pi['name']} ({LOOPBACK}:{pi['port']})", probe, timeout, 0.5, 3)
            if archs != [ARCH, ARCH]:
                raise LabError(f"{pi['name']}: `uname -m` / `sudo uname -m` said {archs}, "
                               "expected armv6l twice (QEMU_CPU / binfmt flags? run lab/host-setup.sh)")
            pi["uname_m"] = archs[0]
            say(f"{pi['name']}: ssh ok, uname -m = {archs[0]}, sudo uname -m = {archs[1]}")
        except Exception as e:  # noqa: BLE001
            errors[pi["name"]] = str(e)

    threads = [threading.Thread(target=one, args=(pi,)) for pi in lab.state["pis"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lab.save()
    if errors:
        raise LabError("Pis not ready:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(errors.items())))


def remove_pis(lab: Lab) -> None:
    """Remove this lab's containers: the recorded ones and any other with its label (failed up)."""
    names = [pi["container"] for pi in lab.state.get("pis", [])]
    if lab.state.get("prefix"):
        names += [n for n in container_states(lab) if n not in names]
    if not names:
        return
    run(["podman", "rm", "-f", "--ignore", "-t", "2", *names], check=False)
    left = [n for n in names if n in container_states(lab)]
    if left:
        raise LabError(f"could not remove containers: {left}")
    say(f"removed containers: {' '.join(names)}")
