"""Redis: use the one on 127.0.0.1:6379 when it answers, else a private redis-server on a free port."""

import shutil
import socket
from pathlib import Path

from devstack.postgres import _apt_install
from devstack.procs import free_port, pid_alive, spawn, stop_pid_file, wait_until

SYSTEM_PORT = 6379


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(run_dir: Path, *, force_private: bool = False) -> str:
    """Return redis://host:port (no database number) for a server that answers."""
    if not force_private and _answers(SYSTEM_PORT):
        return f"redis://127.0.0.1:{SYSTEM_PORT}"
    redis_dir = run_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    pid_file, port_file = redis_dir / "redis.pid", redis_dir / "port"
    if pid_alive(pid_file) and port_file.exists() and _answers(int(port_file.read_text())):
        return f"redis://127.0.0.1:{int(port_file.read_text())}"
    binary = shutil.which("redis-server")
    if binary is None:
        _apt_install("redis-server")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    spawn(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(redis_dir)],
        log_file=redis_dir / "redis.log", pid_file=pid_file,
    )
    wait_until(lambda: _answers(port), timeout_s=20, what="private Redis")
    port_file.write_text(str(port))
    return f"redis://127.0.0.1:{port}"


def stop_private_redis(run_dir: Path) -> None:
    stop_pid_file(run_dir / "redis" / "redis.pid")
