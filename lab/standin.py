"""The AWS IoT Core stand-in of a lab (lab/iotcore/server.py): started detached on free loopback
ports plus the network's gateway port 8883, recorded by PID and start time, stopped by PID."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from labstate import AWS_REGION, HERE, LOOPBACK, MQTT_PORT, Lab, LabError, PortLock, say, wait_for
from support.procs import free_port, port_free, port_open, proc_is, proc_starttime

STARTUP_TIMEOUT = 60


def _raise(e: Exception):
    raise e


def start_process(lab: Lab, key: str, cmd_for_port, ports_for, ready, log_path: Path,
                  timeout: float, cwd: Path) -> dict:
    """Start (once) a detached process recorded as lab.state[key]; retry on a port taken meanwhile."""
    rec = lab.state.get(key)
    if proc_is(rec):
        return rec
    last = ""
    for attempt in range(5):
        with PortLock():
            ports = ports_for(rec if attempt == 0 else None)
            cmd = cmd_for_port(ports)
            with open(log_path, "ab") as logf:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=cwd, start_new_session=True, close_fds=True)
            st = wait_for(f"/proc/{p.pid}", lambda: proc_starttime(p.pid), 5, 0.01)
            rec = {"pid": p.pid, "starttime": st, "cmd": cmd, "log": str(log_path), **ports}
            try:
                wait_for(f"{key} to listen on {ports}",
                         lambda: (p.poll() is None or _raise(LabError(f"{key} exited ({p.returncode})")))
                         and ready(ports), timeout)
            except LabError as e:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                last = str(e)
                tail = log_path.read_text(errors="replace")[-1500:]
                if "in use" in tail and attempt < 4:
                    continue
                raise LabError(f"{last}\n--- {log_path} (tail) ---\n{tail}") from None
        lab.state[key] = rec
        lab.save()
        return rec
    raise LabError(last)


def server_command(lab: Lab, ports: dict) -> list[str]:
    """server.py's command line: control plane on loopback, MQTT on the gateway (Pis) and loopback."""
    d, gateway = lab.core_dir, lab.state["network"]["gateway"]
    return [sys.executable, str(HERE / "iotcore" / "server.py"), "--state", str(d),
            "--api", f"{LOOPBACK}:{ports['api_port']}",
            "--mqtt", f"{gateway}:{MQTT_PORT}", "--mqtt", f"{LOOPBACK}:{ports['mqtt_host_port']}",
            "--endpoint-prefix", lab.state["endpoint_prefix"], "--region", AWS_REGION,
            "--server-cert", str(d / "server.pem"), "--server-key", str(d / "server.key")]


def ensure_iotcore(lab: Lab, timeout: float) -> None:
    d = lab.core_dir
    d.mkdir(parents=True, exist_ok=True)
    gateway = lab.state["network"]["gateway"]
    # the gateway address exists only while a container of the network runs: we start after the Pis
    wait_for(f"the lab network's gateway {gateway}", lambda: port_free(gateway, 0), 30)

    def ports_for(rec):
        if rec and port_free(LOOPBACK, rec["api_port"]) and port_free(LOOPBACK, rec["mqtt_host_port"]):
            return {"api_port": rec["api_port"], "mqtt_host_port": rec["mqtt_host_port"]}
        api = free_port(LOOPBACK)
        return {"api_port": api, "mqtt_host_port": free_port(LOOPBACK, exclude={api})}

    def cmd_for(ports):
        (d / "ready.json").unlink(missing_ok=True)
        return server_command(lab, ports)

    def ready(ports):
        return (d / "ready.json").exists() and port_open(gateway, MQTT_PORT)

    rec = start_process(lab, "iotcore", cmd_for, ports_for, ready, d / "iotcore.log",
                        min(timeout, STARTUP_TIMEOUT), d)
    rec["endpoint_url"] = f"http://{LOOPBACK}:{rec['api_port']}"
    mosq = json.loads((d / "ready.json").read_text())["mosquitto_pid"]
    rec["mosquitto"] = {"pid": mosq, "starttime": proc_starttime(mosq)}
    lab.save()
    say(f"AWS IoT Core stand-in (pid {rec['pid']}): API {rec['endpoint_url']}, MQTT {lab.endpoint} = "
        f"{gateway}:{MQTT_PORT} (Pis), {LOOPBACK}:{rec['mqtt_host_port']} (host)")


def iotcore_up(lab: Lab) -> bool:
    core = lab.state.get("iotcore")
    return proc_is(core) and port_open(LOOPBACK, core["api_port"]) and port_open(LOOPBACK, core["mqtt_host_port"])


def stop_processes(lab: Lab) -> None:
    """Stop what the lab started, by recorded PID and start time: TERM, then KILL after 10 s."""
    for key in ("iotcore", "mosquitto", "moto"):   # mosquitto/moto: labs of before the stand-in
        rec = lab.state.get(key)
        if not rec:
            continue
        pid = int(rec["pid"])
        if not proc_is(rec):
            say(f"{key} (pid {pid}) is not running")
            continue
        os.kill(pid, signal.SIGTERM)
        try:
            wait_for(f"{key} (pid {pid}) to exit", lambda: not proc_is(rec), 10, 0.05, 0.5)
        except LabError:
            if proc_is(rec):
                os.kill(pid, signal.SIGKILL)
                wait_for(f"{key} (pid {pid}) to die", lambda: not proc_is(rec), 5, 0.05, 0.5)
        say(f"stopped {key} (pid {pid})")
    broker = (lab.state.get("iotcore") or {}).get("mosquitto")
    if proc_is(broker):   # the stand-in's broker, when the stand-in died without stopping it
        os.kill(int(broker["pid"]), signal.SIGTERM)
