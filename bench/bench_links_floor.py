"""The database's share of a signed link: how many links/s two cores give when they do nothing but its SQL.

bench_links_load.py measures the link endpoint whole. This one asks what part of that the database
round trips alone cost, on the same machine, so the load goal can be set against what the machine gives:
  1. one real link is issued through the service and every statement it sends is captured, with its
     parameters and whether it ran inside the link's transaction;
  2. that exact sequence is replayed, with psycopg alone (no Django, no HTTP, no signing, no Python
     logic), by one process per core, each on its own connection with prepared statements, as the app
     runs: the token lookup, the size, the unlocked check, the file, then BEGIN, the row locks, the
     locked check, the IssuedLink insert, the audit chain's lock and head, the audit insert, COMMIT;
  3. for the peer, the same processes replay `SELECT 1` as often per "link" as the link sends
     statements: what the round trips cost apart from the work PostgreSQL does in them.
Each replayed audit row takes its seq and previous hash from the chain's head, as the app does, and a
random hash of its own (so the scratch chain no longer verifies: it is dropped after). Prints links/s for
each, and the CPU time per link of the replaying processes and of PostgreSQL.
Starts its own SeaweedFS and a scratch PostgreSQL database (bench/bench_workers.py); cleans up after.

    .venv/bin/python bench/bench_links_floor.py [--duration 15] [--processes 2] [--repeat 2]
"""

import argparse
import multiprocessing
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_workers import django_on_services  # noqa: E402

AUDIT_INSERT = re.compile(r'^INSERT INTO "releases_auditevent" \((?P<columns>[^)]*)\)')


def capture_one_link(slug: str, token: str) -> list[tuple[str, tuple, bool]]:
    """(sql, params, in the transaction) for every statement of one link issued through the API."""
    from django.db import connection
    from django.test import Client

    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params, connection.in_atomic_block))
        return execute(sql, params, many, context)

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    url = f"/api/v1/models/{slug}/files/model.safetensors/link/"
    assert client.post(url).status_code == 200  # warm: the storage check is vouched for from here on
    with connection.execute_wrapper(record):
        response = client.post(url)
    assert response.status_code == 200, response.content
    return statements


def replay(dsn: str, statements, *, peer: bool, duration_s: float, queue) -> None:
    try:
        _replay(dsn, statements, peer=peer, duration_s=duration_s, queue=queue)
    except BaseException as error:  # reach the parent, which waits on the queue
        queue.put(error)
        raise


def _replay(dsn: str, statements, *, peer: bool, duration_s: float, queue) -> None:
    import psycopg

    conn = psycopg.connect(dsn, prepare_threshold=5, autocommit=True)  # as Django: BEGIN only for the transaction
    audit_columns = None
    for sql, _, _ in statements:
        if match := AUDIT_INSERT.match(sql.strip()):
            audit_columns = [name.strip().strip('"') for name in match["columns"].split(",")]
    head = None

    def one_link() -> None:
        nonlocal head
        with conn.cursor() as cursor:
            inside = False
            for sql, params, in_transaction in statements:
                if in_transaction != inside:
                    cursor.execute("BEGIN" if in_transaction else "COMMIT")
                    inside = in_transaction
                if peer:
                    cursor.execute("SELECT 1")
                    cursor.fetchall()
                    continue
                if audit_columns and AUDIT_INSERT.match(sql.strip()):
                    params = list(params)
                    params[audit_columns.index("seq")] = head[0] + 1
                    params[audit_columns.index("prev_hash")] = head[1]
                    params[audit_columns.index("hash")] = os.urandom(32).hex()
                cursor.execute(sql, params)
                if cursor.description is not None:
                    rows = cursor.fetchall()
                    if "ORDER BY seq DESC LIMIT 1" in sql:
                        head = rows[0]
            if inside:
                cursor.execute("COMMIT")

    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    for _ in range(20):
        one_link()
    done, started, cpu, backend_cpu = 0, time.perf_counter(), time.process_time(), cpu_s(backend)
    while time.perf_counter() - started < duration_s:
        one_link()
        done += 1
    queue.put((done, time.perf_counter() - started, time.process_time() - cpu, cpu_s(backend) - backend_cpu))
    conn.close()


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system) used so far by one process of this machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s() -> float:
    """CPU seconds used so far by the PostgreSQL processes that outlive a connection (WAL writer, …)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster"):
                total += cpu_s(int(pid))
        except OSError:
            continue
    return total


def replay_links(dsn: str, statements, *, peer: bool, processes: int, duration_s: float) -> dict:
    queue = multiprocessing.Queue()
    pg_before = postgres_cpu_s()
    workers = [multiprocessing.Process(target=replay, args=(dsn, statements),
                                       kwargs={"peer": peer, "duration_s": duration_s, "queue": queue})
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    for worker in workers:
        worker.join()
    links = sum(done for done, _, _, _ in results)
    wall = max(elapsed for _, elapsed, _, _ in results)
    # The replaying connections' backends have exited by now: their own CPU came back with the results.
    postgres_s = postgres_cpu_s() - pg_before + sum(backend for _, _, _, backend in results)
    return {"rate": links / wall, "links": links, "client_ms": sum(cpu for _, _, cpu, _ in results) / links * 1e3,
            "postgres_ms": postgres_s / links * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15, help="seconds per measurement")
    parser.add_argument("--processes", type=int, default=2, help="replaying processes (one per core)")
    parser.add_argument("--repeat", type=int, default=2, help="alternated runs of each")
    args = parser.parse_args()
    from bench_links_load import setup_partner_size

    with tempfile.TemporaryDirectory(prefix="stagegate-floor-") as tmp_name:
        tmp = Path(tmp_name)
        with django_on_services(tmp, eager_tasks=True) as env:
            slug, token = setup_partner_size(tmp)
            statements = capture_one_link(slug, token)
            dsn = env["DATABASE_URL"].replace("postgres://", "postgresql://")
            rows = []
            for _ in range(args.repeat):
                for peer in (False, True):
                    row = replay_links(dsn, statements, peer=peer, processes=args.processes,
                                       duration_s=args.duration)
                    rows.append((peer, row))

    in_transaction = sum(1 for _, _, inside in statements if inside)
    print(f"\nOne link sends {len(statements)} statements ({in_transaction} in its transaction, plus BEGIN and "
          f"COMMIT); replayed by {args.processes} processes, {args.duration:g} s each, {os.cpu_count()} cores")
    print(f"  {'replay':<44} {'links/s':>8} {'client ms':>10} {'postgres ms':>12}")
    for peer, row in rows:
        name = "SELECT 1 per statement (round trips alone)" if peer else "the link's own statements"
        print(f"  {name:<44} {row['rate']:8.1f} {row['client_ms']:10.2f} {row['postgres_ms']:12.2f}")
    print("  (client ms and postgres ms: CPU time per link of the replaying processes and of PostgreSQL)")


if __name__ == "__main__":
    main()
