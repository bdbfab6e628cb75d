"""Stopping the services devstack starts: an orderly stop asks first (SIGTERM) and kills only after its time; a
scratch server is killed at once (S3Server.stop), so a test waits for nothing a stop would keep."""

import signal
import sys
import time

from devstack.procs import pid_alive, spawn, stop_pid_file

# Notes a SIGTERM in a file, then keeps running, as `weed server` does for ~15 s.
STUBBORN = ("import pathlib, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: pathlib.Path(sys.argv[1]).write_text('asked'))\n"
            "pathlib.Path(sys.argv[2]).write_text('ready')\n"
            "time.sleep(60)\n")


def _start(tmp_path):
    asked, ready = tmp_path / "asked", tmp_path / "ready"
    pid_file = tmp_path / "stubborn.pid"
    proc = spawn([sys.executable, "-c", STUBBORN, str(asked), str(ready)], log_file=tmp_path / "log",
                 pid_file=pid_file)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "log").read_text()
        time.sleep(0.05)
    return proc, pid_file, asked


def test_an_orderly_stop_asks_first_then_kills_what_does_not_exit_in_time(tmp_path):
    proc, pid_file, asked = _start(tmp_path)
    assert stop_pid_file(pid_file, timeout_s=0.5)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert asked.read_text() == "asked"
    assert not pid_file.exists()


def test_a_stop_that_need_not_be_orderly_kills_at_once_without_asking(tmp_path):
    proc, pid_file, asked = _start(tmp_path)
    assert stop_pid_file(pid_file, timeout_s=30, orderly=False)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not asked.exists()
    assert not pid_file.exists() and pid_alive(pid_file) is None
    assert not stop_pid_file(pid_file, orderly=False)  # nothing left to stop
