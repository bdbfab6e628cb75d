"""A long schemathesis campaign over every API operation (anonymous, partner token, staff token), with counts.

The CI suite (tests/fuzz/test_api_schemathesis.py) runs 8 examples per operation and caller; this runs the
same checks with a larger budget and prints how many calls were made, by caller and status class.

    .venv/bin/python bench/fuzz_api.py [--examples 200]

Needs what `make test` needs (PostgreSQL and Redis; run it under `scripts/test.sh`'s environment or with
the system services on their default ports).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per operation and caller")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "calls.json"
        env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples), "FUZZ_REPORT": str(report)}
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/fuzz/test_api_schemathesis.py", "-q", "-p", "no:randomly"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - started
        calls = json.loads(report.read_text()) if report.exists() else []
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:])
    operations = {label for _, _, label, _ in calls}
    by_class = collections.Counter((who, f"{status // 100}xx") for who, _, _, status in calls)
    print(f"\nschemathesis, {args.examples} examples per operation and caller: {len(operations)} operations, "
          f"{len(calls)} calls in {elapsed:.0f} s")
    print(f"{'caller':<10} {'2xx':>7} {'3xx':>7} {'4xx':>7} {'5xx':>7}")
    for who in ("anonymous", "partner", "staff"):
        print(f"{who:<10} " + " ".join(f"{by_class[(who, c)]:>7}" for c in ("2xx", "3xx", "4xx", "5xx")))
    failures = result.stdout.count("FAILED")
    print(f"failed tests (5xx or a response not conforming to the schema): {failures}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
