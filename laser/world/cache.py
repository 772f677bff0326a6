"""A build cache keyed by a hash of the config: reuse what is complete and intact, rebuild
what is corrupt or partial, never use it silently.

An entry is a directory ``<root>/<key>`` holding ``manifest.json`` (every file's size and
sha256). It is built in a temporary sibling directory and renamed into place only when
complete, so an interrupted build leaves no entry that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FORMAT_VERSION = 1  # bump when the layout or the build changes meaning


def config_key(config: Any) -> str:
    """16 hex chars of sha256 over the canonical JSON of ``config`` (and the format version)."""
    data = asdict(config) if is_dataclass(config) else config
    blob = json.dumps({"format": FORMAT_VERSION, "config": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(entry: Path, meta: dict[str, Any] | None = None) -> None:
    files = {
        str(p.relative_to(entry)): {"size": p.stat().st_size, "sha256": _sha256(p)}
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
        if path.stat().st_size != info["size"] or _sha256(path) != info["sha256"]:
            return f"{name} does not match its checksum"
    return None


def cached_build(
    root: str | Path, key: str, build: Callable[[Path], dict[str, Any] | None]
) -> tuple[Path, bool]:
    """``(entry, reused)``: the valid cached entry for ``key``, building it if needed.

    ``build(tmp_dir)`` writes the artifacts and may return metadata for the manifest.
    """
    root = Path(root)
    entry = root / key
    if entry.exists():
        problem = verify(entry)
        if problem is None:
            return entry, True
        log.warning("cache entry %s is unusable (%s): rebuilding it", entry, problem)
        print(f"cache entry {entry} is unusable ({problem}): rebuilding it")
        shutil.rmtree(entry)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        meta = build(tmp)
        write_manifest(tmp, meta)
        os.replace(tmp, entry)  # atomic: the entry appears only when complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry, False
