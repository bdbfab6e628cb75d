"""Ports, pid files and waiting: the plumbing for starting local services safely."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port(*, also_free_offset: int | None = None) -> int:
    """A loopback port nobody listens on; with an offset, port+offset must be free too (SeaweedFS gRPC)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if also_free_offset is None:
            return port
        if port + also_free_offset < 65536 and not port_open(port + also_free_offset):
            return port
    raise RuntimeError("no free loopback port found")


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s")


def pid_alive(pid_file: Path) -> int | None:
    """The pid in pid_file if that process still runs, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if _is_zombie(pid):
        return None  # exited, only waiting for its parent to reap it
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def spawn(args: list[str], *, log_file: Path, pid_file: Path | None = None, env: dict | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start a long-running process in its own session, logging to a file, recording its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    return proc


def stop_pid_file(pid_file: Path, *, timeout_s: float = 15, orderly: bool = True) -> bool:
    """Stop exactly the process a pid file names (and its process group); never match by name: SIGTERM and up to
    timeout_s for it to exit, then SIGKILL; orderly=False: SIGKILL at once."""
    pid = pid_alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL) if orderly else (signal.SIGKILL,):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid_alive(pid_file):
            time.sleep(0.2)
        if not pid_alive(pid_file):
            break
    pid_file.unlink(missing_ok=True)
    return True
