"""A build cache keyed by a hash of the config: reuse what is complete and intact, rebuild
what is corrupt or partial, never use it silently.

An entry is a directory ``<root>/<key>`` holding ``manifest.json`` (every file's size and
sha256). It is built in a temporary sibling directory ``.<key>.building-<pid>`` and renamed
into place only when complete, so an interrupted build leaves no entry that looks valid.

Concurrent builds: a build holds ``flock`` on ``<root>/.<key>.lock``, so a second process
asking for the same key waits (it says so) and then reuses the entry instead of spending the
same minutes building it again. Where the lock does not reach (flock on some network disks),
a rename that finds the entry already there uses it when it verifies: the twin won. A killed
build leaves its temporary directory behind; the next build removes every temporary directory
whose key nobody holds the lock of. Staleness is judged by the lock, not by whether the PID
in the name is alive: PIDs are reused and differ between containers sharing one cache.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # bump when the layout or the build changes meaning
_BUILDING = re.compile(r"^\.(?P<key>.+)\.building-\d+$")


def config_key(config: Any) -> str:
    """16 hex chars of sha256 over the canonical JSON of ``config`` (and the format version)."""
    data = asdict(config) if is_dataclass(config) else config
    blob = json.dumps({"format": FORMAT_VERSION, "config": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(entry: Path, meta: dict[str, Any] | None = None) -> None:
    files = {
        str(p.relative_to(entry)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(entry.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (entry / MANIFEST).write_text(json.dumps({"files": files, "meta": meta or {}}, indent=1))


def verify(entry: Path) -> str | None:
    """None if the entry is complete and intact, else what is wrong with it."""
    manifest = entry / MANIFEST
    if not manifest.exists():
        return "no manifest (partial build)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as exc:
        return f"unreadable manifest ({exc})"
    for name, info in files.items():
        path = entry / name
        if not path.is_file():
            return f"missing {name}"
        if path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
            return f"{name} does not match its checksum"
    return None


def cached_build(
    root: str | Path, key: str, build: Callable[[Path], dict[str, Any] | None]
) -> tuple[Path, bool]:
    """``(entry, reused)``: the valid cached entry for ``key``, building it if needed.

    ``build(tmp_dir)`` writes the artifacts and may return metadata for the manifest.
    ``reused`` is False only when this call's own build became the entry.
    """
    root = Path(root)
    entry = root / key
    with contextlib.suppress(OSError):  # OSError: a rebuild is deleting it right now
        if verify(entry) is None:  # the common case needs no lock
            return entry, True
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    with _build_lock(root, key):
        if entry.exists():  # a twin may have finished while we waited
            problem = verify(entry)
            if problem is None:
                return entry, True
            log.warning("cache entry %s is unusable (%s): rebuilding it", entry, problem)
            print(f"cache entry {entry} is unusable ({problem}): rebuilding it")
            shutil.rmtree(entry)
        tmp = root / f".{key}.building-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            meta = build(tmp)
            write_manifest(tmp, meta)
            return entry, _move_into_place(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, entry: Path) -> bool:
    """Rename the finished build onto ``entry`` (atomic: the entry appears only complete).
    Returns whether an entry that appeared meanwhile was used instead (the ``reused`` flag)."""
    try:
        os.replace(tmp, entry)
        return False
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    problem = verify(entry)
    if problem is None:  # a twin outside our lock finished first: use its entry, drop ours
        log.info("cache entry %s was completed by another build meanwhile: using it", entry)
        return True
    log.warning(
        "cache entry %s appeared meanwhile but is unusable (%s): replacing it", entry, problem
    )
    shutil.rmtree(entry)
    os.replace(tmp, entry)
    return False


@contextlib.contextmanager
def _build_lock(root: Path, key: str):
    """Exclusive flock on ``<root>/.<key>.lock``; waits (and says for whom) when taken."""
    with open(root / f".{key}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            print(f"waiting for another process (pid {holder}) building cache entry {root / key}")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


def _remove_stale_builds(root: Path) -> None:
    """Delete ``.<key>.building-<pid>`` directories of builds that were killed: those whose
    key's build lock is free (a live build holds it for as long as its directory exists)."""
    for path in root.iterdir():
        m = _BUILDING.match(path.name)
        if not m or not path.is_dir():
            continue
        lock = root / f".{m.group('key')}.lock"
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built right now
            log.warning("removing %s, left by a build that was killed", path)
            shutil.rmtree(path, ignore_errors=True)
