"""Ports and child processes: the one copy the tests, the benchmarks and the lab (lab/lab.py)
share. Servers listen on loopback; a process is recognised by PID *and* start time, so only the
very process one started is ever signalled."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True when host:port can be bound (port 0: when the address exists on this host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(*hosts: str, exclude=frozenset()) -> int:
    """A port free on every given address (default loopback): bound to 0 on the first, checked on the rest."""
    hosts = hosts or (LOOPBACK,)
    for _attempt in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if port in exclude:
            continue
        if all(port_free(h, port) for h in hosts[1:]):
            return port
    raise OSError(f"no free port found on {', '.join(hosts)}")


def wait_for(cond, timeout: float, what: str, interval: float = 0.05, max_interval: float | None = None,
             error: type[Exception] = TimeoutError, retry_on: tuple = ()):
    """Poll ``cond()`` until it returns something truthy (returned) or ``timeout`` passes.

    On timeout raise ``error`` naming ``what`` (and the last exception of ``retry_on`` that
    ``cond`` raised, which counts as "not yet"); an ``error`` raised by ``cond`` ends the wait at
    once. With ``max_interval`` the pause grows by half each round up to it.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = cond()
            if result:
                return result
        except error:
            raise
        except retry_on as e:  # pylint: disable=catching-non-exception
            last = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last})" if last else ""
            raise error(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        if max_interval is not None:
            interval = min(interval * 1.5, max_interval)


def proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks); None if no such process or a
    zombie (a zombie is dead: PID 1 of a container may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def proc_is(rec: dict | None) -> bool:
    """True when the recorded process ({"pid", "starttime"}) is still the very process started."""
    if not rec or not rec.get("pid"):
        return False
    st = proc_starttime(int(rec["pid"]))
    return st is not None and st == rec.get("starttime")


def ansible_playbook(workdir, playbook: str, inventories: dict, extra_vars: dict, *args: str):
    """Run this venv's ansible-playbook on ``playbook`` (text, written to workdir/play.yml) with the
    inventories ``{relative path: text}`` written under ``workdir`` (in that order), its own
    ANSIBLE_HOME, no colour, this Python as the interpreter, ``extra_vars`` as JSON; returns the
    CompletedProcess (output captured, never raises on a failed play)."""
    workdir = Path(workdir)
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook")]
    for name, text in inventories.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
        command += ["-i", str(workdir / name)]
    (workdir / "play.yml").write_text(playbook)
    env = dict(os.environ, ANSIBLE_HOME=str(workdir / "ansible-home"), ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_NOCOLOR="1")
    extra = json.dumps(dict(extra_vars, ansible_python_interpreter=sys.executable))
    return subprocess.run(command + [str(workdir / "play.yml"), *args, "-e", extra],
                          capture_output=True, text=True, env=env, cwd=workdir, check=False)
