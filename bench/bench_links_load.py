"""Signed-link issuance under load, served by gunicorn on loopback and driven by wrk, beside a trivial JSON view.

One run, same server, same fixed concurrency, each endpoint warmed up then driven for --duration seconds:
  1. POST /api/v1/models/{slug}/files/model.safetensors/link/ as a partner member with a token: a HEAD to
     SeaweedFS, a SigV4 presign, then in one transaction `may` with the grant rows share-locked, the
     IssuedLink row and the audit row;
  2. GET /healthz: a constant JSON body through the same middleware;
  3. with the server stopped, the SQL of one link alone, replayed with psycopg by as many processes as
     there were gunicorn workers (bench_links_floor.py): what that SQL gives with no HTTP at all.
Prints requests/s, p50/p99 latency and errors for the first two (goal: >= 500 links/s, p99 < 50 ms, 0
errors, at least half the trivial view's rate). Load generator and server share the machine's cores.
Starts its own SeaweedFS and a scratch PostgreSQL database (bench/bench_workers.py); cleans up after.

    .venv/bin/python bench/bench_links_load.py [--duration 60] [--connections 8] [--workers 2]
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_links_floor import capture_one_link, replay_links  # noqa: E402
from bench_workers import django_on_services, setup_partner_size  # noqa: E402

POST_LUA = """wrk.method = "POST"
wrk.headers["Authorization"] = "Token {token}"
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@contextlib.contextmanager
def gunicorn(tmp: Path, *, workers: int):
    """The app served by gunicorn on a free loopback port (its base URL), with tasks sent to workers."""
    from devstack.procs import free_port, port_open, wait_until

    port = free_port()
    with open(tmp / "gunicorn.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0"}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: port_open(port), timeout_s=60, what="gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wrk(url: str, *, duration_s: int, connections: int, script: Path | None = None) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "5s"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration_s + 60).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": total,
        "p50": latency("50"), "p99": latency("99"),
        "errors": non_2xx + (sum(int(g) for g in socket.groups()) if socket else 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds of measured load per endpoint")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    # One sync worker per core: a third worker on two cores adds switching, not throughput (measured).
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="stagegate-load-") as tmp_name:
        tmp = Path(tmp_name)
        with django_on_services(tmp, eager_tasks=True) as env:
            slug, token = setup_partner_size(tmp)
            from releases.models import IssuedLink

            with gunicorn(tmp, workers=args.workers) as base:
                script = tmp / "post.lua"
                script.write_text(POST_LUA.format(token=token))
                link_url = f"{base}/api/v1/models/{slug}/files/model.safetensors/link/"
                health_url = f"{base}/healthz"
                wrk(link_url, duration_s=args.warmup, connections=args.connections, script=script)
                wrk(health_url, duration_s=args.warmup, connections=args.connections)
                before = IssuedLink.objects.count()
                links = wrk(link_url, duration_s=args.duration, connections=args.connections, script=script)
                recorded = IssuedLink.objects.count() - before
                health = wrk(health_url, duration_s=args.duration, connections=args.connections)
            # With the server stopped, so the replay has the cores to itself.
            statements = capture_one_link(slug, token)
            floor = replay_links(env["DATABASE_URL"].replace("postgres://", "postgresql://"), statements,
                                 peer=False, processes=args.workers, duration_s=min(args.duration, 15))

    print(f"\nSigned-link issuance under load: gunicorn {args.workers} sync workers, wrk 2 threads "
          f"{args.connections} connections, {args.duration} s per endpoint, loopback, {os.cpu_count()} cores "
          "shared by server, PostgreSQL, SeaweedFS and wrk")
    print(f"  {'endpoint':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}")
    for name, row in (("POST …/link/ (partner token)", links), ("GET /healthz (trivial JSON)", health)):
        print(f"  {name:<34} {row['rps']:8.1f} {row['p50']:8.2f} {row['p99']:8.2f} {row['errors']:7d} "
              f"{row['requests']:9d}")
    print(f"  links recorded (IssuedLink rows, each with its audit row): {recorded}")
    print(f"  links/s vs trivial view: {links['rps'] / health['rps']:.1%}   "
          "(goals: >= 500 links/s, p99 < 50 ms, 0 errors, >= 50% of the trivial view)")
    print(f"  a link's {len(statements)} statements alone, replayed by {args.workers} processes without HTTP: "
          f"{floor['rate']:.1f} links/s = {floor['rate'] / health['rps']:.1%} of the trivial view "
          f"(CPU per link: {floor['client_ms']:.2f} ms client, {floor['postgres_ms']:.2f} ms PostgreSQL)")


if __name__ == "__main__":
    main()
