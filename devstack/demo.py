"""`make demo`: start the services, prepare the database and serve the platform, unattended.

Everything lives under the run folder (.run/); `make down` stops exactly what this started.
"""

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

from devstack.procs import free_port, pid_alive, port_open, spawn, stop_pid_file, wait_until
from devstack.redis import ensure_redis, stop_private_redis
from devstack.runenv import ENV_FILE_NAME, new_secret_key, read_env_file, write_env_file
from devstack.seaweed import ORDERLY_STOP_S as WEED_ORDERLY_STOP_S
from devstack.seaweed import S3Server, new_credentials, start_seaweedfs

ROOT = Path(__file__).resolve().parent.parent
DEMO_ACCOUNTS = ("admin", "alice", "bob", "carol", "otto", "pat", "rita")
ROLES = {
    "admin": "superuser (not policy staff)",
    "alice": "policy staff",
    "bob": "policy staff",
    "carol": "policy staff",
    "otto": "operator (jobs)",
    "pat": "partner admin of Example Security Lab",
    "rita": "researcher",
}


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)


def _ensure_s3(run_dir: Path, values: dict[str, str]) -> None:
    s3_dir = run_dir / "seaweedfs"
    access_key = values.get("S3_ACCESS_KEY_ID") or new_credentials()[0]
    secret_key = values.get("S3_SECRET_ACCESS_KEY") or new_credentials()[1]
    bucket = values.get("S3_BUCKET", "stagegate")
    endpoint = values.get("S3_ENDPOINT_URL", "")
    port = int(endpoint.rsplit(":", 1)[1]) if endpoint else None
    if pid_alive(s3_dir / "weed.pid") and port and port_open(port):
        _say(f"SeaweedFS S3 already running on {endpoint}")
        return
    stop_pid_file(s3_dir / "weed.pid", timeout_s=WEED_ORDERLY_STOP_S)
    if port is None or port_open(port) or port_open(port + 10000):
        port = free_port(also_free_offset=10000)
    server: S3Server = start_seaweedfs(s3_dir, access_key=access_key, secret_key=secret_key, bucket=bucket,
                                       s3_port=port)
    values.update(server.env())
    _say(f"SeaweedFS S3 on {server.endpoint_url} (bucket {bucket}, data in {s3_dir / 'data'})")


def _passwords(run_dir: Path) -> dict[str, str]:
    path = run_dir / "demo-accounts.json"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    for username in DEMO_ACCOUNTS:
        passwords.setdefault(username, f"{username}-{secrets.token_urlsafe(6)}")
    path.write_text(json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


def _serve(run_dir: Path, env: dict[str, str], port: int) -> None:
    pid_file = run_dir / "gunicorn.pid"
    stop_pid_file(pid_file)
    if port_open(port):
        raise SystemExit(f"port {port} is taken by another program; run `PORT=8001 make demo`")
    spawn(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--access-logfile", str(run_dir / "gunicorn-access.log")],
        log_file=run_dir / "gunicorn.log", pid_file=pid_file, env=env, cwd=ROOT,
    )
    wait_until(lambda: server_healthy(port), timeout_s=60, what="the web server")


def server_healthy(port: int) -> bool:
    """Whether a Stagegate server on this port answers its API."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/models/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start_worker(run_dir: Path, env: dict[str, str]) -> None:
    pid_file = run_dir / "celery-worker.pid"
    stop_pid_file(pid_file)
    spawn(
        [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "--loglevel", "INFO",
         "--concurrency", "1", "-Q", "default,training,generation", "--hostname", "demo@%h"],
        log_file=run_dir / "celery-worker.log", pid_file=pid_file, env=env, cwd=ROOT,
    )
    beat_pid = run_dir / "celery-beat.pid"
    stop_pid_file(beat_pid)
    spawn(
        [str(Path(sys.executable).parent / "celery"), "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(run_dir / "celerybeat-schedule")],
        log_file=run_dir / "celery-beat.log", pid_file=beat_pid, env=env, cwd=ROOT,
    )


def _audit_key(run_dir: Path) -> Path:
    """The demo's audit signing key, made once (releases/audit/signing.py); production brings its own."""
    path = run_dir / "audit-ed25519.pem"
    if not path.exists():
        from releases.audit.signing import key_file_write

        _say(f"audit signing key {path} (key id {key_file_write(path)[:16]}…)")
    return path


def up(run_dir: Path, port: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    env_path = run_dir / ENV_FILE_NAME
    values = read_env_file(env_path)
    values.setdefault("DJANGO_SECRET_KEY", new_secret_key())
    values.setdefault("DATABASE_URL", f"sqlite:///{run_dir / 'db.sqlite3'}")
    values.setdefault("STAGEGATE_AUDIT_KEY_FILE", str(_audit_key(run_dir)))
    values["STAGEGATE_SITE_URL"] = f"http://127.0.0.1:{port}"
    redis_base = ensure_redis(run_dir)
    values["REDIS_URL"] = f"{redis_base}/0"
    _say(f"Redis at {redis_base}")
    _ensure_s3(run_dir, values)
    write_env_file(env_path, values)

    env = {**os.environ, **values, "STAGEGATE_RUN_DIR": str(run_dir), "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    _manage("migrate", "--noinput", "-v", "0", env=env)
    _manage("collectstatic", "--noinput", "-v", "0", env=env)
    _manage("seed_gpt2", env=env)
    passwords = _passwords(run_dir)
    _manage("seed_demo_accounts", str(run_dir / "demo-accounts.json"), env=env)
    _start_worker(run_dir, env)
    _serve(run_dir, env, port)
    _say(f"platform serving on http://127.0.0.1:{port}/ — now the release flow (first run: several minutes)")
    _manage("demo_release_flow", env=env)
    if os.environ.get("DEMO_FULL") == "1":
        _say("DEMO_FULL=1: the scaling study of the mini family (about half an hour on 2 cores)")
        _manage("study", "--name", "mini-study", env=env)
    _report(port, passwords, run_dir)


def _report(port: int, passwords: dict[str, str], run_dir: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    print()
    print("Stagegate is up.")
    print(f"  Public pages   {base}/")
    print(f"  Admin          {base}/admin/")
    print(f"  API docs       {base}/api/docs/   (OpenAPI schema: {base}/api/schema/)")
    print(f"  Models API     {base}/api/v1/models/")
    print(f"  Jobs (staff)   {base}/admin/workers/job/")
    print(f"  Release board  {base}/admin/releases/dashboard/   Public history: {base}/history/")
    print()
    print("Mini family: mini-1m trained and public, mini-3m trained and at partners (pat's organisation")
    print("holds a grant), mini-7m and mini-13m internal. Datasets of mini-1m (pure, top-k 40, human")
    print("reference) generated, baseline-detected and published. `DEMO_FULL=1 make demo` also runs the scaling")
    print(f"study of all four sizes: {base}/study/ (staff see every size; the public, the released ones).")
    print()
    print("Demo accounts (also in .run/demo-accounts.json):")
    for username in DEMO_ACCOUNTS:
        print(f"  {username:<6} {passwords[username]:<20} {ROLES[username]}")
    print("The second factor is off in the demo: a password opens the admin. Production turns it on")
    print("(STAGEGATE_SECOND_FACTOR); `manage.py totp_device USERNAME` gives staff an authenticator device.")
    print()
    print(f"Logs and data: {run_dir}/   Management commands: .venv/bin/python manage.py …")
    print("Stop everything with: make down")


def down(run_dir: Path) -> None:
    for name in ("gunicorn", "celery-beat", "celery-worker"):
        if stop_pid_file(run_dir / f"{name}.pid"):
            _say(f"stopped {name}")
    if stop_pid_file(run_dir / "seaweedfs" / "weed.pid", timeout_s=WEED_ORDERLY_STOP_S):
        _say("stopped SeaweedFS")
    stop_private_redis(run_dir)
