"""TrackedProcess against real child processes."""

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ma_ray.services.process import TrackedProcess, port_in_use, tail
from tests.polling import wait_for


def _sleeper(tmp_path: Path, marker: str = "ma-ray-test-sleeper") -> tuple[TrackedProcess, list[str]]:
    process = TrackedProcess(tmp_path / "pid", tmp_path / "out.log", marker)
    command = [sys.executable, "-c", f"import time; print('{marker} up', flush=True); time.sleep(60)"]
    return process, command


def test_start_record_and_stop(tmp_path: Path) -> None:
    process, command = _sleeper(tmp_path)
    pid = process.start(command, cwd=tmp_path)
    assert process.pid() == pid
    wait_for(lambda: "up" in tail(process.log_file), 5, "the sleeper never logged 'up'", interval_s=0.05)
    assert "ma-ray-test-sleeper up" in tail(process.log_file)
    assert process.stop(timeout_s=5)
    assert not process.alive()
    assert not process.pid_file.exists()
    assert not process.stop()


def test_a_recycled_pid_is_never_ours(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        process = TrackedProcess(tmp_path / "pid", tmp_path / "out.log", "ma-ray-test-marker")
        process.pid_file.write_text(str(stranger.pid))
        assert process.pid() is None  # its command line lacks our marker
        assert not process.stop()
        assert stranger.poll() is None  # and it was not killed
    finally:
        stranger.kill()
        stranger.wait()


def test_garbage_pid_file_and_missing_log(tmp_path: Path) -> None:
    process = TrackedProcess(tmp_path / "pid", tmp_path / "none.log", "x")
    process.pid_file.write_text("not-a-pid")
    assert process.pid() is None
    process.pid_file.write_text("999999999")
    assert process.pid() is None
    assert not process.pid_file.exists()  # its process is gone
    assert "no log" in tail(process.log_file)


def test_port_in_use_sees_a_listener() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def _slack_ns(tid: int) -> int:
    return int(Path(f"/proc/{tid}/timerslack_ns").read_text())


@contextlib.contextmanager
def _threaded_child(tmp_path: Path, marker: str, **options: int) -> Iterator[list[int]]:
    """A child started with ``options`` that starts a thread after exec (as the JVM's pools do): its thread ids."""
    process = TrackedProcess(tmp_path / "pid", tmp_path / "out.log", marker)
    code = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"
    pid = process.start([sys.executable, "-c", code, process.marker], cwd=tmp_path, **options)  # type: ignore[arg-type]
    try:
        tasks = Path(f"/proc/{pid}/task")
        wait_for(lambda: len(list(tasks.iterdir())) >= 2, 5, "the child never started its thread", interval_s=0.05)
        yield [int(task.name) for task in tasks.iterdir()]
    finally:
        process.stop(timeout_s=5)


def test_timer_slack_reaches_the_child_and_its_threads_never_the_caller(tmp_path: Path) -> None:
    caller = _slack_ns(threading.get_native_id())
    with _threaded_child(tmp_path, "ma-ray-test-slack", timer_slack_ns=750_000) as threads:
        assert {_slack_ns(tid) for tid in threads} == {750_000}
        assert _slack_ns(threading.get_native_id()) == caller


def test_no_timer_slack_leaves_the_kernels(tmp_path: Path) -> None:
    process, command = _sleeper(tmp_path)
    pid = process.start(command, cwd=tmp_path)
    try:
        assert _slack_ns(pid) == _slack_ns(threading.get_native_id())
    finally:
        process.stop(timeout_s=5)


def _niceness(tid: int) -> int:
    return int(Path(f"/proc/{tid}/stat").read_text().rpartition(")")[2].split()[16])


def test_niceness_reaches_the_child_and_its_threads_never_the_caller(tmp_path: Path) -> None:
    caller = os.getpriority(os.PRIO_PROCESS, 0)
    with _threaded_child(tmp_path, "ma-ray-test-nice", niceness=7) as threads:
        assert {_niceness(tid) for tid in threads} == {max(caller, 7)}
        assert os.getpriority(os.PRIO_PROCESS, 0) == caller
