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


# --- world cache: a concurrent twin build, and builds killed midway -----------------------------

_BUILDER = """
import os, sys, time
from pathlib import Path
from laser.world.cache import cached_build

root, log = Path(sys.argv[1]), Path(sys.argv[2])
(log.parent / f"started-{os.getpid()}").touch()

def build(out):
    with log.open("a") as f:
        f.write(f"build {os.getpid()}\\n")
    out.mkdir(parents=True)
    deadline = time.monotonic() + 60
    while len(list(log.parent.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # both processes are in cached_build: the builds overlap
    time.sleep(1.0)
    (out / "artifact.txt").write_text(str(os.getpid()))
    return {"builder": os.getpid()}

entry, reused = cached_build(root, "k", build)
print(entry, reused, (entry / "artifact.txt").read_text(), flush=True)
"""


def test_two_processes_building_one_world_both_succeed_and_build_it_once(tmp_path):
    """Issue 17.4: the second build used to crash after all its work with 'Directory not
    empty' on the rename of its .building-<pid> directory."""
    root, log = tmp_path / "cache", tmp_path / "builds.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", _BUILDER, str(root), str(log)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [out.splitlines()[-1].split() for out, _ in outs]
    assert results[0][0] == results[1][0] == str(root / "k")
    assert results[0][2] == results[1][2]  # both use the same artifact
    assert sorted(r[1] for r in results) == ["False", "True"]
    assert len(log.read_text().splitlines()) == 1  # the second waited and reused, not rebuilt
    assert sum("waiting for another process" in out for out, _ in outs) == 1
    assert not list(root.glob(".k.building-*"))


def test_a_twin_that_finished_first_wins_and_our_copy_is_discarded(tmp_path):
    """Without the build lock (another machine on a shared disk): the rename finds the entry
    already there; it verifies, so it is used instead of crashing."""
    from laser.world.cache import cached_build, write_manifest

    root = tmp_path / "cache"

    def build(out):
        out.mkdir(parents=True)
        (out / "a.txt").write_text("ours")
        twin = root / "k"
        twin.mkdir()
        (twin / "a.txt").write_text("twin")
        write_manifest(twin)

    entry, reused = cached_build(root, "k", build)
    assert entry == root / "k" and reused and (entry / "a.txt").read_text() == "twin"
    assert not list(root.glob(".k.building-*"))


def test_builds_killed_midway_are_cleaned_up_but_a_live_one_is_left_alone(tmp_path):
    import fcntl

    from laser.world.cache import cached_build

    root = tmp_path / "cache"
    dead = [root / ".k.building-999999999", root / ".other.building-999999998"]
    for d in dead:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "half.bin").write_bytes(b"x" * 10)
    live = root / ".busy.building-1"
    live.mkdir()
    with open(root / ".busy.lock", "w") as holder:  # a build of "busy" in progress
        fcntl.flock(holder, fcntl.LOCK_EX)

        def build(out):
            out.mkdir(parents=True)
            (out / "a.txt").write_text("a")

        cached_build(root, "k", build)
        assert not any(d.exists() for d in dead) and live.is_dir()
