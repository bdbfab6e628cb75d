#!/usr/bin/env bash
# The whole test suite on real PostgreSQL, Redis, SeaweedFS and Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
# tests/browser drives Debian's chromium (Playwright's own browser download does not work here).
[ -x /usr/bin/chromium ] || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
    || echo "chromium unavailable: the browser test will be skipped"
# tests/modelcore/test_fused.py builds modelcore's native decoding step, and fails where it cannot.
command -v gcc >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev) \
    || echo "gcc unavailable: the native decoding step's tests will fail"
# Where PYTHONDONTWRITEBYTECODE is set (this project's machines set it), pytest rewrites and compiles every test
# module again in each process that collects it; cached, a later one (the SQLite lane, the next run) collects in
# ~3.5 s less. The bytecode goes to __pycache__, which git ignores.
unset PYTHONDONTWRITEBYTECODE
export STAGEGATE_RUN_DIR="$PWD/.run/test"
mkdir -p "$STAGEGATE_RUN_DIR"
eval "$(.venv/bin/python -m devstack test-env --run-dir "$STAGEGATE_RUN_DIR")"
trap '.venv/bin/python -m devstack test-down --run-dir "$STAGEGATE_RUN_DIR"' EXIT
.venv/bin/ruff check .
# Two pytest processes (pytest-xdist), each with its own database, queues and S3 server (config/settings/test.py):
# much of a test's time is spent waiting on a service or a worker process, which the other process fills.
# Work stealing: a process that runs out takes tests the other still has queued. Under plain load distribution
# the queue a process was handed stayed its own, and the long tests (tests/workers', last in file order) kept
# one process busy up to a minute after the other had finished: the run's wall time was 28-62 s over half the
# tests' summed time, and is 13-20 s over it with stealing (bench/README.md).
.venv/bin/python -m pytest -n "${STAGEGATE_TEST_PROCESSES:-2}" --dist worksteal \
    --junitxml "$STAGEGATE_RUN_DIR/junit.xml" "$@"
# A parallel run can lose items and still exit 0 (pytest-xdist with --dist loadgroup did here): a whole run must
# report every test it collected.
if [ "$#" -eq 0 ]; then
  .venv/bin/python scripts/check_test_count.py "$STAGEGATE_RUN_DIR/junit.xml"
fi
# The demo runs on SQLite: the API fuzzing, the hostile-input tests and the roles run there too (whole runs only).
if [ "$#" -eq 0 ]; then
  .venv/bin/python -m pytest --ds config.settings.test_sqlite -q -n "${STAGEGATE_TEST_PROCESSES:-2}" tests/fuzz \
      tests/security/test_hostile_input.py tests/releases/test_roles.py
fi
