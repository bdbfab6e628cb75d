"""The database's share of a signed link: how many links/s two cores give when they do nothing but its SQL.

bench_links_load.py measures the link endpoint whole. This one asks what part of that the database
round trips alone cost, on the same machine, so the load goal can be set against what the machine gives:
  1. one real link is issued through the service and every statement it sends is captured, with its
     parameters and whether it ran inside the link's transaction;
  2. that exact sequence is replayed, with psycopg alone (no Django, no HTTP, no signing, no Python
     logic), by --processes processes (one per core by default) over the same stretch of time, each on
     its own connection with prepared statements, as the app
     runs: the token lookup, the size, the unlocked check, the file, then BEGIN, the row locks, the
     locked check, the IssuedLink insert, the audit insert (unsealed: the sealer chains it later), COMMIT;
  3. for the peer, the same processes replay `SELECT 1` as often per "link" as the link sends
     statements: what the round trips cost apart from the work PostgreSQL does in them.
The replayed audit rows are appended unsealed, as the app appends them (the scratch database is dropped
after). Prints links/s for
each, and the CPU time per link of the replaying processes and of PostgreSQL (its backends and the rest
of its cluster); --per-statement N adds what each statement costs alone.
Starts its own SeaweedFS and a scratch PostgreSQL database (bench/bench_workers.py); cleans up after.

    .venv/bin/python bench/bench_links_floor.py [--duration 15] [--processes 2] [--repeat 2] [--per-statement N]
"""

import argparse
import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_workers import django_on_services, setup_partner_size  # noqa: E402


def capture_one_link(slug: str, token: str) -> list[tuple[str, object, bool]]:
    """(sql, params, in the transaction) for every statement of one link issued through the API."""
    from django.db import connection
    from django.test import Client

    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params, connection.in_atomic_block))
        return execute(sql, params, many, context)

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    url = f"/api/v1/models/{slug}/files/model.safetensors/link/"
    for capture in (False, True):  # the first warms up: the storage check is vouched for from then on
        with connection.execute_wrapper(record) if capture else contextlib.nullcontext():
            response = client.post(url)
        if response.status_code != 200:
            sys.exit(f"the link to capture was refused: {response.status_code} {response.content!r}")
    return statements


def replay(dsn: str, statements, *, peer: bool, duration_s: float, start, queue) -> None:
    try:
        queue.put(_replay(dsn, statements, peer=peer, duration_s=duration_s, start=start))
    except BaseException as error:  # reach the parent, which waits on the queue
        start.abort()
        queue.put(error)
        raise


def _replay(dsn: str, statements, *, peer: bool, duration_s: float, start) -> tuple:
    import psycopg

    conn = psycopg.connect(dsn, prepare_threshold=5, autocommit=True)  # as Django: BEGIN only for the transaction

    def one_link() -> None:
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
                cursor.execute(sql, params)
                if cursor.description is not None:
                    cursor.fetchall()
            if inside:
                cursor.execute("COMMIT")

    backend = backend_pid(conn)
    for _ in range(20):  # past the prepare threshold
        one_link()
    start.wait()  # every process measures over the same stretch of time
    done, started, cpu, backend_cpu = 0, time.perf_counter(), time.process_time(), cpu_s(backend)
    while time.perf_counter() - started < duration_s:
        one_link()
        done += 1
    result = (done, time.perf_counter() - started, time.process_time() - cpu, backend, cpu_s(backend) - backend_cpu)
    conn.close()
    return result


def backend_pid(conn) -> int:
    """The pid of the connection's PostgreSQL backend, which must run on this machine for its CPU to count."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
            return pid
    except OSError:
        pass
    sys.exit(f"PostgreSQL's backend {pid} is not a process of this machine: its CPU cannot be counted here")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system) used so far by one process of this machine."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu_s(postmaster: int) -> dict[int, float]:
    """CPU seconds so far of each process of one PostgreSQL cluster: the postmaster's children."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(_stat(int(name))[1]) == postmaster:
                found[int(name)] = cpu_s(int(name))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return found


def replay_links(dsn: str, statements, *, peer: bool, processes: int, duration_s: float) -> dict:
    """Replay `statements` as links in `processes` processes at once for `duration_s`: links/s, CPU per link."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        postmaster = int(_stat(backend_pid(conn))[1])
    queue, start = multiprocessing.Queue(), multiprocessing.Barrier(processes + 1)
    workers = [multiprocessing.Process(target=replay, args=(dsn, statements),
                                       kwargs={"peer": peer, "duration_s": duration_s, "start": start, "queue": queue})
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        pass  # a process failed before measuring: its error is on the queue
    before = cluster_cpu_s(postmaster)
    results = [queue.get(timeout=duration_s + 120) for _ in workers]
    after = cluster_cpu_s(postmaster)
    for worker in workers:
        worker.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    links = sum(result[0] for result in results)
    if links == 0:
        sys.exit("no link was replayed: is --duration above zero?")
    wall = max(result[1] for result in results)
    # The replaying backends' CPU came back with the results; the rest of the cluster (WAL writer,
    # checkpointer, autovacuum, …) is counted from the processes present at the end of the stretch.
    replaying = {result[3] for result in results}
    others = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items() if pid not in replaying)
    postgres_s = others + sum(result[4] for result in results)
    return {"rate": links / wall, "links": links, "client_ms": sum(result[2] for result in results) / links * 1e3,
            "postgres_ms": postgres_s / links * 1e3}


def per_statement(dsn: str, statements, *, repeat: int) -> list[tuple[str, float, float, float]]:
    """Each statement alone, `repeat` times in autocommit in one process: (sql, wall, client CPU,
    PostgreSQL CPU) in ms a run."""
    import psycopg

    found = []
    with psycopg.connect(dsn, prepare_threshold=5, autocommit=True) as conn:
        backend = backend_pid(conn)
        for sql, params, _ in statements:
            with conn.cursor() as cursor:
                for timed in (False, True):  # the first pass goes past the prepare threshold
                    wall, cpu, backend_cpu = time.perf_counter(), time.process_time(), cpu_s(backend)
                    for _ in range(repeat if timed else 20):
                        cursor.execute(sql, params)
                        if cursor.description is not None:
                            cursor.fetchall()
            found.append((" ".join(sql.split()), (time.perf_counter() - wall) / repeat * 1e3,
                          (time.process_time() - cpu) / repeat * 1e3, (cpu_s(backend) - backend_cpu) / repeat * 1e3))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15, help="seconds per measurement")
    parser.add_argument("--processes", type=int, default=2, help="replaying processes (one per core)")
    parser.add_argument("--repeat", type=int, default=2, help="alternated runs of each")
    parser.add_argument("--per-statement", type=int, default=0, metavar="N",
                        help="also run each statement alone N times and print what each costs")
    args = parser.parse_args()

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
            costs = per_statement(dsn, statements, repeat=args.per_statement) if args.per_statement else []

    in_transaction = sum(1 for _, _, inside in statements if inside)
    print(f"\nOne link sends {len(statements)} statements ({in_transaction} in its transaction, plus BEGIN and "
          f"COMMIT); replayed by {args.processes} processes, {args.duration:g} s each, {os.cpu_count()} cores")
    print(f"  {'replay':<44} {'links/s':>8} {'client ms':>10} {'postgres ms':>12}")
    for peer, row in rows:
        name = "SELECT 1 per statement (round trips alone)" if peer else "the link's own statements"
        print(f"  {name:<44} {row['rate']:8.1f} {row['client_ms']:10.2f} {row['postgres_ms']:12.2f}")
    print("  (client ms and postgres ms: CPU time per link of the replaying processes and of PostgreSQL)")
    if costs:
        print(f"\nEach statement alone, {args.per_statement} times in autocommit, one process (ms a run):")
        print(f"  {'wall':>6} {'client':>7} {'postgres':>9}  statement")
        for sql, wall, client, postgres in costs:
            print(f"  {wall:6.3f} {client:7.3f} {postgres:9.3f}  {sql[:100]}")


if __name__ == "__main__":
    main()
