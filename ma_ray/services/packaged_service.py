"""Debian's packaged daemons (redis-server) start on install and then hold the port ma-ray's own server wants.

Everything here takes the command runner and the init system as arguments, so it is tested without a host.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Literal

InitSystem = Literal["systemd", "sysv", "none"]
# Runs a command, returns its exit status (127 when the program is missing).
Runner = Callable[[list[str]], int]


def run_quietly(command: list[str]) -> int:
    try:
        return subprocess.run(command, capture_output=True, check=False, timeout=120).returncode
    except FileNotFoundError:
        return 127


def detect_init(unit: str) -> InitSystem:
    """systemd when it is PID 1 (sd_booted's test: containers often ship systemctl without running it), else the
    init script's service/update-rc.d when the package installed one, else none."""
    if Path("/run/systemd/system").is_dir():
        return "systemd"
    return "sysv" if Path(f"/etc/init.d/{unit}").exists() else "none"


def stop_commands(unit: str, init: InitSystem) -> list[list[str]]:
    """The commands that stop ``unit`` now and keep it from starting at boot."""
    if init == "systemd":
        return [["systemctl", "disable", "--now", unit]]
    if init == "sysv":
        return [["service", unit, "stop"], ["update-rc.d", unit, "disable"]]
    return []


def free_command(unit: str, init: InitSystem) -> str:
    """What a person types to stop and disable ``unit``; empty when no init system manages it."""
    return " && ".join("sudo " + shlex.join(command) for command in stop_commands(unit, init))


def _running_command(unit: str, init: InitSystem) -> list[str]:
    return ["systemctl", "is-active", "--quiet", unit] if init == "systemd" else ["service", unit, "status"]


def stop_and_disable(unit: str, init: InitSystem, run: Runner = run_quietly) -> str:
    """Stop Debian's packaged ``unit`` and disable it at boot; returns one line saying what was done (or what
    failed and the command to run by hand). Safe to repeat: stopping a stopped service succeeds."""
    commands = stop_commands(unit, init)
    if not commands:
        return f"Debian's {unit} package registered no service (no systemd, no /etc/init.d/{unit}); nothing to stop."
    was_running = run(_running_command(unit, init)) == 0
    failed = [(shlex.join(command), status) for command in commands if (status := run(command)) != 0]
    if failed:
        command, status = failed[0]
        return (
            f"Could not stop Debian's packaged {unit} service: `{command}` exited {status}. "
            f"Run `{free_command(unit, init)}` so ma-ray can use the port."
        )
    done = " and ".join(f"`{shlex.join(command)}`" for command in commands)
    what = "stopped it and disabled it at boot" if was_running else "it was not running; disabled it at boot"
    return f"Debian's {unit} package installed its own service: {what} ({done}), so ma-ray runs its own."
