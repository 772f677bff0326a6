"""One writer per run directory: two runs writing into the same directory interleave
``metrics.jsonl``, mix ``decisions.jsonl`` and prune each other's checkpoints, all silently.

``RunLock(run_dir)`` takes an exclusive, non-blocking ``fcntl.flock`` on ``<run_dir>/.lock``
and writes its PID into it; a second holder gets ``RunDirectoryLocked`` naming the directory
and that PID. The kernel drops a flock when the last descriptor of its open file closes, so a
holder killed with SIGKILL releases it at once: no stale-lock cleanup, no PID guessing. The
file itself stays (deleting it on release would let two processes lock two different inodes).

Caveats of flock: a forked child (e.g. a fork-started DataLoader worker) shares the descriptor
and keeps the lock while it lives; on some network filesystems flock is local to one machine.
POSIX only (fcntl).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunDirectoryLocked(RuntimeError):
    """Another process (or another lock in this one) holds the run directory."""

    def __init__(self, run_dir: str | Path, pid: int | None) -> None:
        self.run_dir, self.pid = Path(run_dir), pid
        holder = f"pid {pid}" if pid is not None else "a process whose pid is not yet written"
        super().__init__(
            f"run directory {self.run_dir} is in use by {holder} (lock file "
            f"{self.run_dir / LOCK_NAME}); wait for it to finish, stop it, or use another "
            "output directory"
        )

    def __reduce__(self):  # picklable across processes despite the custom init
        return (type(self), (self.run_dir, self.pid))


class RunLock:
    """Exclusive lock on a run directory; ``with RunLock(run_dir): ...`` or ``acquire()`` /
    ``release()``. Creates the directory if needed."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunDirectoryLocked(self.run_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Idempotent. Empties the PID first so a reader never names a finished process."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The holder's PID, or None when it has locked but not yet written it."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
