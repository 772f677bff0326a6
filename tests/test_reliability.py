"""Issue 17: one writer per run directory (RunLock) and world builds that tolerate a twin."""

import os
import signal
import subprocess
import sys
import time

import pytest

_HOLDER = """
import sys, time
from laser.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def _start_holder(run_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_of_a_run_directory_gets_an_error_naming_it_and_the_pid(tmp_path):
    from laser.runlock import RunDirectoryLocked, RunLock

    run_dir = tmp_path / "run"
    with RunLock(run_dir) as lock:
        assert lock.path == run_dir / ".lock"
        assert (run_dir / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunDirectoryLocked) as info:  # also within one process
            RunLock(run_dir).acquire()
        assert isinstance(info.value, RuntimeError) and info.value.pid == os.getpid()
        assert str(run_dir) in str(info.value) and f"pid {os.getpid()}" in str(info.value)
    with RunLock(run_dir):  # released on exit
        pass


def test_run_lock_is_released_when_its_holder_is_killed(tmp_path):
    from laser.runlock import RunDirectoryLocked, RunLock

    run_dir = tmp_path / "run"
    proc = _start_holder(run_dir)
    try:
        with pytest.raises(RunDirectoryLocked, match=f"pid {proc.pid}"):
            RunLock(run_dir).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    deadline = time.monotonic() + 10  # the kernel drops a dead process's flock at once
    while True:
        try:
            with RunLock(run_dir) as lock:
                assert lock.path.read_text().strip() == str(os.getpid())
            break
        except RunDirectoryLocked:
            assert time.monotonic() < deadline, "lock of a SIGKILLed holder never released"
            time.sleep(0.05)
