"""A child process started in the background and tracked by a pid file, so a later command can stop it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30  # prctl(2)


def port_in_use(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def say(line: str) -> None:
    """Tell the person running the command what a step did; stderr, so `--json` output on stdout stays clean."""
    print(line, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that it is missing."""
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def timer_slack(slack_ns: int | None) -> Iterator[None]:
    """This thread's timer slack set to ``slack_ns`` for the block, then restored: a child started in the block
    inherits it, and so does every thread the child creates (prctl(2)). None leaves it as it is."""
    if slack_ns is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if before < 0 or libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl could not set a timer slack of {slack_ns} ns")
    try:
        yield
    finally:
        libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(before), 0, 0, 0)


def at_least_niceness(niceness: int) -> None:
    """Raise this process's niceness to ``niceness`` where it is lower (lowering one needs privileges)."""
    os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), niceness))


@dataclass
class TrackedProcess:
    """One background process: ``pid_file`` records it, ``marker`` (a string in its command line) proves a pid
    is still ours and not a recycled number, ``log_file`` takes its stdout and stderr."""

    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The recorded pid if that process is alive and still ours, else None. A pid file whose process is
        gone is removed; one whose pid now belongs to a stranger is ignored and left for `start` to replace."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        owner = self._owner(pid)
        if owner == "gone":
            self.pid_file.unlink(missing_ok=True)
        return pid if owner == "ours" else None

    def _owner(self, pid: int) -> str:
        """ "ours", "foreign" or "gone" (no such process, or a zombie)."""
        for _ in range(5):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return "gone"
            if stat.rpartition(")")[2].split()[0] == "Z":
                return "gone"
            if self.marker in cmdline:
                return "ours"
            # An empty command line is a process between fork and exec: look again shortly.
            if cmdline.strip():
                return "foreign"
            time.sleep(0.05)
        return "foreign"

    def _is_ours(self, pid: int) -> bool:
        return self._owner(pid) == "ours"

    def start(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        timer_slack_ns: int | None = None,
        niceness: int = 0,
    ) -> int:
        """Start the command detached from this process (its own session), so it outlives the CLI; with
        ``timer_slack_ns``, its threads' timed waits may each run that much late (`timer_slack`); it runs at
        ``niceness`` at least (`at_least_niceness`), and so does every thread it starts."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log, timer_slack(timer_slack_ns):
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=partial(at_least_niceness, niceness) if niceness else None,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def alive(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout_s``. Returns False if nothing was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._is_ours(pid):
            time.sleep(0.2)
        if self._is_ours(pid):
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)
