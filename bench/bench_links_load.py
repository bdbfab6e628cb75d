"""Signed-link issuance under load, this tree beside the commit before the audit sealer (#19), in one run.

Each side gets the same set-up, one after the other on the same machine: its own scratch PostgreSQL database
migrated by its own code, its own SeaweedFS, a size at the partners stage with a grant for pat, and gunicorn
(--workers sync workers) serving that side's code on loopback. Then:
  1. closed loop: wrk, --connections connections for --duration s: links/s, p50, p99;
  2. open loop: --rate links/s offered at a constant rate for --rate-duration s (each request sent at its
     scheduled moment, its latency counted from that moment, so a stall is not hidden by fewer requests:
     no coordinated omission): p50, p99, max, errors;
  3. during both, PostgreSQL's lock table sampled every 10 ms: which advisory locks were held, by whom, and
     how long a link holds a lock shared by all links (the peer's audit-chain lock; ours has none: the
     sealer's lock is taken by the sealer only, which runs every 2 s beside the load, in its own process as
     beat runs it);
  4. ours only: the sealer's own time per event over everything appended during the run, the serial work
     that left the link path.
Prints a table and one JSON line per goal: links/s at least the peer's; p99 under 50 ms at 100 links/s; no
time in a lock shared by all links.

    .venv/bin/python bench/bench_links_load.py [--peer-ref REF] [--duration 20] [--rate 100] [--rate-duration 30]
"""

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The last commit whose link path appended to the audit chain under one advisory lock (before #19).
PEER_REF = "0d1692399ed3045f5fc79a89e6ada644b748ebaa"
PEER_AUDIT_LOCK_KEY = int.from_bytes(b"SGAUDIT", "big")
POST_LUA = """wrk.method = "POST"
wrk.headers["Authorization"] = "Token {token}"
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


# --------------------------------------------------------------------------- one side (a child process)
@contextlib.contextmanager
def gunicorn(root: Path, tmp: Path, *, workers: int):
    from devstack.procs import free_port, port_open, wait_until

    port = free_port()
    with open(tmp / "gunicorn.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "warning"],
            cwd=root, env={**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0", "PYTHONPATH": str(root)}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
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


def wrk(url: str, *, duration_s: int, connections: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "5s",
                          "-s", str(script), url], capture_output=True, text=True, timeout=duration_s + 60).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)), "p50": latency("50"),
            "p99": latency("99"), "errors": non_2xx + (sum(int(g) for g in socket.groups()) if socket else 0)}


def constant_rate(url: str, token: str, *, rate: float, duration_s: float, threads: int = 48) -> dict:
    """Open loop: request i is due at start + i/rate; latency runs from that moment to the answer."""
    import requests

    due: queue.Queue = queue.Queue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def sender() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        while (when := due.get()) is not None:
            if (wait := when - time.perf_counter()) > 0:
                time.sleep(wait)
            try:
                ok = session.post(url, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            took = (time.perf_counter() - when) * 1e3
            with lock:
                latencies.append(took)
                errors[0] += not ok

    pool = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start = time.perf_counter() + 0.5
    total = int(rate * duration_s)
    for i in range(total):
        due.put(start + i / rate)
    for _ in pool:
        due.put(None)
    for thread in pool:
        thread.join(timeout=duration_s + 60)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {"offered": rate, "requests": len(ordered), "p50": pct(50), "p99": pct(99), "max": ordered[-1],
            "errors": errors[0]}


class LockSampler:
    """Samples pg_locks every `interval_s` on its own connection: for each advisory lock, how often it was
    held, and whether by a sealer (pids registered by the caller) or by anyone else (link requests)."""

    def __init__(self, dsn: str, interval_s: float = 0.01) -> None:
        self.dsn, self.interval_s = dsn, interval_s
        self.sealer_pids: set[int] = set()
        self.samples = 0
        self.held: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute("SELECT classid::bigint, objid::bigint, objsubid, pid FROM pg_locks "
                                    "WHERE locktype = 'advisory' AND granted").fetchall()
                self.samples += 1
                seen: set[tuple[str, str]] = set()
                for classid, objid, objsubid, pid in rows:
                    name = (f"global {(classid << 32) | objid:#x}" if objsubid == 1
                            else f"per-object ({classid:#x}, …)")
                    seen.add((name, "sealer" if pid in self.sealer_pids else "links"))
                for name, who in seen:
                    self.held.setdefault(name, {}).setdefault(who, 0)
                    self.held[name][who] += 1
                time.sleep(self.interval_s)

    def fraction(self, name: str, who: str) -> float:
        return self.held.get(name, {}).get(who, 0) / max(self.samples, 1)


SEALER_LOOP = """
import sys, time, django
django.setup()
from django.db import connection
from releases.audit.sealer import audit_seal
print(connection.cursor().connection.info.backend_pid, flush=True)
while True:
    time.sleep(2.0)
    audit_seal()
"""


@contextlib.contextmanager
def sealer_process(root: Path):
    """Beat's seal every 2 s, in a process of its own as in production (in this process, its CPU bursts would
    hold the GIL and delay the load generator's own clock). Yields its PostgreSQL backend pid."""
    sealer = subprocess.Popen([sys.executable, "-c", SEALER_LOOP], cwd=root, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)}, start_new_session=True)
    try:
        yield int(sealer.stdout.readline())
    finally:
        os.killpg(sealer.pid, signal.SIGTERM)
        sealer.wait(timeout=30)


def side(root: Path, args) -> dict:
    """Run in a child process whose imports come from `root` (this tree or the peer's)."""
    sys.path[:0] = [str(root), str(root / "bench")]
    os.chdir(root)
    from bench_workers import django_on_services, setup_partner_size

    has_sealer = (root / "releases" / "audit" / "sealer.py").exists()
    with tempfile.TemporaryDirectory(prefix="stagegate-load-") as tmp_name:
        tmp = Path(tmp_name)
        with django_on_services(tmp, eager_tasks=True) as env:
            slug, token = setup_partner_size(tmp)
            dsn = env["DATABASE_URL"].replace("postgres://", "postgresql://")
            sampler = LockSampler(dsn)
            with gunicorn(root, tmp, workers=args.workers) as base:
                script = tmp / "post.lua"
                script.write_text(POST_LUA.format(token=token))
                url = f"{base}/api/v1/models/{slug}/files/model.safetensors/link/"
                wrk(url, duration_s=args.warmup, connections=args.connections, script=script)
                with sealer_process(root) if has_sealer else contextlib.nullcontext() as sealer_pid:
                    if sealer_pid is not None:
                        sampler.sealer_pids.add(sealer_pid)
                    with sampler:
                        closed = wrk(url, duration_s=args.duration, connections=args.connections, script=script)
                        opened = constant_rate(url, token, rate=args.rate, duration_s=args.rate_duration)
            seal = None
            if has_sealer:
                from releases.audit.sealer import audit_seal
                from releases.models import AuditEvent

                # Everything appended since the sealer thread's last run, plus a fresh batch's worth timed alone.
                waiting = AuditEvent.objects.filter(seq__isnull=True).count()
                started = time.perf_counter()
                audit_seal()
                took = time.perf_counter() - started
                seal = {"events": waiting, "seconds": took, "ms_per_event": took / max(waiting, 1) * 1e3,
                        "total_events": AuditEvent.objects.count()}
    span_s = args.duration + args.rate_duration
    links_per_s = (closed["requests"] + opened["requests"]) / span_s
    global_locks = {name: {who: sampler.fraction(name, who) for who in holders}
                    for name, holders in sampler.held.items() if name.startswith("global")}
    by_links = sum(holders.get("links", 0.0) for holders in global_locks.values())
    return {"closed": closed, "open": opened, "global_locks": global_locks, "samples": sampler.samples,
            "global_lock_ms_per_link": by_links / links_per_s * 1e3, "seal": seal}


# --------------------------------------------------------------------------- both sides, and the report
def _peer_tree(ref: str, into: Path) -> Path:
    tree = into / "peer"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / ".run").symlink_to(ROOT / ".run")  # the same local PostgreSQL and Redis (devstack finds them there)
    return tree


def _run_side(root: Path, args) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--side", str(root), "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--connections", str(args.connections), "--workers", str(args.workers),
            "--rate", str(args.rate), "--rate-duration", str(args.rate_duration)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"the side at {root} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _goal(benchmark: str, ours: float, peer: float, unit: str, goal: str) -> None:
    ratio = ours / peer if peer else None
    print(json.dumps({"benchmark": benchmark, "ours": round(ours, 3), "peer": round(peer, 3), "unit": unit,
                      "ratio": round(ratio, 3) if ratio is not None else None, "goal": goal}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-ref", default=PEER_REF, help="the commit to measure beside this tree")
    parser.add_argument("--duration", type=int, default=20, help="seconds of closed-loop load (wrk)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (one per core)")
    parser.add_argument("--rate", type=float, default=100.0, help="links/s offered in the open loop")
    parser.add_argument("--rate-duration", type=int, default=30)
    parser.add_argument("--side", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:
        print(json.dumps(side(args.side, args)))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="stagegate-peer-") as tmp_name:
        peer_root = _peer_tree(args.peer_ref, Path(tmp_name))
        ours = _run_side(ROOT, args)
        peer = _run_side(peer_root, args)

    print(f"\nSigned links, this tree beside {args.peer_ref[:12]} (audit chain under one lock), same machine, one "
          f"after the other: gunicorn {args.workers} sync workers; {os.cpu_count()} cores shared with PostgreSQL, "
          "SeaweedFS and the load generators")
    print(f"  {'':<28} {'closed loop (wrk, ' + str(args.connections) + ' conn)':>34}   "
          f"{'open loop, ' + format(args.rate, 'g') + ' links/s offered':>36}")
    print(f"  {'':<28} {'links/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'err':>5}   "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'sent':>6} {'err':>4}")
    for name, row in (("ours (sealer)", ours), ("peer (global audit lock)", peer)):
        c, o = row["closed"], row["open"]
        print(f"  {name:<28} {c['rps']:9.1f} {c['p50']:8.2f} {c['p99']:8.2f} {c['errors']:5d}   "
              f"{o['p50']:8.2f} {o['p99']:8.2f} {o['max']:8.2f} {o['requests']:6d} {o['errors']:4d}")
    print("\n  Advisory locks shared by all callers, fraction of lock-table samples in which each was held:")
    for name, row in (("ours", ours), ("peer", peer)):
        held = ", ".join(f"{lock} by {who} {fraction:.1%}" for lock, holders in row["global_locks"].items()
                         for who, fraction in holders.items()) or "none"
        print(f"    {name}: {held} ({row['samples']} samples); held by link requests: "
              f"{row['global_lock_ms_per_link']:.3f} ms per link")
    if ours["seal"]:
        seal = ours["seal"]
        print(f"  Where the serial section went: the sealer, off the request path; its last run sealed "
              f"{seal['events']} events in {seal['seconds'] * 1e3:.1f} ms ({seal['ms_per_event']:.3f} ms per event; "
              f"{seal['total_events']} events appended in the run)")
    print()
    _goal("links_closed_loop", ours["closed"]["rps"], peer["closed"]["rps"], "links/s", ">= peer")
    _goal("links_p99_at_100_per_s", ours["open"]["p99"], peer["open"]["p99"], "ms", "< 50 ms")
    _goal("global_lock_per_link", ours["global_lock_ms_per_link"], peer["global_lock_ms_per_link"],
          "ms held per link", "0: no lock shared by all links")


if __name__ == "__main__":
    main()
