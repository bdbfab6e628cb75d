"""PostgreSQL: use the one on 127.0.0.1:5432 when it answers, else a private cluster in the run folder."""

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from devstack.procs import free_port, port_open, wait_until

SYSTEM_PORT = 5432


def _answers(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    if shutil.which(name):
        return shutil.which(name)
    _apt_install("postgresql")
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing even after installing Debian's postgresql")
    return found[-1]


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"{package} is not installed; run `sudo apt-get install -y {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env)


def _as_postgres_user(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def ensure_postgres(run_dir: Path, *, force_private: bool = False) -> str:
    """Return a DATABASE_URL base (without database name) for a server that answers."""
    if not force_private and _answers(SYSTEM_PORT):
        return f"postgres://postgres@127.0.0.1:{SYSTEM_PORT}"
    pg_dir = run_dir / "postgres"
    port_file = pg_dir / "port"
    if port_file.exists():
        port = int(port_file.read_text())
        if _answers(port):
            return f"postgres://postgres@127.0.0.1:{port}"
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    data = pg_dir / "data"
    pg_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres")
        for path in (pg_dir,):
            os.chown(path, uid.pw_uid, uid.pw_gid)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres_user([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL,
        )
    port = free_port()
    subprocess.run(
        _as_postgres_user([
            pg_ctl, "-D", str(data), "-l", str(pg_dir / "postgres.log"), "-w",
            "-o", f"-p {port} -h 127.0.0.1 -k {pg_dir}", "start",
        ]),
        check=True, stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: _answers(port), timeout_s=30, what="private PostgreSQL")
    port_file.write_text(str(port))
    return f"postgres://postgres@127.0.0.1:{port}"


def stop_private_postgres(run_dir: Path) -> None:
    data = run_dir / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), check=False)


def system_port_open() -> bool:
    return port_open(SYSTEM_PORT)
