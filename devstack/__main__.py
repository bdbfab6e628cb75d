"""`python -m devstack demo|down|test-env|test-down`: what `make demo`, `make down` and `make test` call."""

import argparse
import os
import shlex
from pathlib import Path

from devstack import demo
from devstack.postgres import ensure_postgres, stop_private_postgres
from devstack.redis import ensure_redis, stop_private_redis

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["demo", "down", "test-env", "test-down"])
    parser.add_argument("--run-dir", default=os.environ.get("STAGEGATE_RUN_DIR", str(ROOT / ".run")))
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    if args.command == "demo":
        demo.up(run_dir, int(os.environ.get("PORT", "8000")))
    elif args.command == "down":
        demo.down(run_dir)
    elif args.command == "test-down":
        stop_private_postgres(run_dir)
        stop_private_redis(run_dir)
    else:
        # Prints shell exports for the test run; a private cluster is started only if none answers.
        force = os.environ.get("STAGEGATE_PRIVATE_SERVICES") == "1"
        database = ensure_postgres(run_dir, force_private=force)
        redis = ensure_redis(run_dir, force_private=force)
        print(f"export DATABASE_URL={shlex.quote(database + '/stagegate')}")
        print(f"export REDIS_URL={shlex.quote(redis + '/15')}")


if __name__ == "__main__":
    main()
