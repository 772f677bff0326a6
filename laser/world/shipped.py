"""Worlds shipped with LASER: the default world's build, so every machine starts from the
same weights.

Why ship 8 MB of weights rather than only the recipe: the build is seeded and pinned to
``world.threads`` CPU threads, and on one machine it rebuilds to the last bit, but a CPU with
other vector units takes other float paths (oneDNN/MKL kernels differ between AVX2,
AVX-512 and AMX machines, and ``ATEN_CPU_CAPABILITY`` alone does not pin them all). Tiny RMs
trained on noisy labels amplify that noise: three builds of the same config on three x86
machines gave three RM x domain matrices (the generalist on ``reverse`` 0.815 / 0.560 /
0.610, README "The built-in world"). A result table is only reproducible on a fresh clone if
the clone trains against the world the table was measured on, so ``prepare_world`` copies a
shipped build whose cache key matches (after checking every file against its manifest) and
builds locally only for other configs, or when asked (``laser-prepare use_shipped=false``).

Layout: ``laser/world/builds/<cache key>/`` is a cache entry exactly as ``laser-prepare``
writes it (``laser.world.cache``), manifest included.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from laser.world.cache import MANIFEST, verify

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).parent / "builds"


def shipped_entry(key: str) -> Path | None:
    """The shipped build for cache key ``key``, or None when none is shipped or it fails
    its checksums (then the caller builds locally; a damaged copy is never used)."""
    entry = SHIPPED / key
    if not entry.is_dir():
        return None
    problem = verify(entry)
    if problem is not None:
        log.warning("shipped world %s is unusable (%s): building it here instead", entry, problem)
        print(f"shipped world {entry} is unusable ({problem}): building it here instead")
        return None
    return entry


def copy_shipped(entry: Path, out: Path) -> dict[str, Any]:
    """Copy the shipped build ``entry`` into the cache's build directory ``out``; returns its
    manifest's metadata (the cache rewrites the manifest from the copied files)."""
    shutil.copytree(entry, out, dirs_exist_ok=True)
    (out / MANIFEST).unlink()
    print(
        f"using the world shipped with LASER ({entry.name}; `laser-prepare use_shipped=false` "
        f"builds it on this machine instead, README 'The built-in world')"
    )
    return {**json.loads((entry / MANIFEST).read_text()).get("meta", {}), "source": "shipped"}


def is_shipped_copy(entry: Path) -> bool:
    """Whether the cache entry ``entry`` was copied from a shipped build (its manifest says)."""
    return json.loads((entry / MANIFEST).read_text()).get("meta", {}).get("source") == "shipped"
