"""Build the default world with ``laser-prepare`` from an empty cache on this machine (not
the shipped copy: ``use_shipped=false``), then again (reuse).

    python benchmarks/prepare_world.py

The cold build is what a machine spends to make the world itself (the SFT policy, then the
RMs one after another, each on world.threads threads); `make demo` copies the shipped build
instead (laser/world/shipped.py). Writes benchmarks/results/prepare_world.csv and this
build's report (RM x domain matrix as text/CSV/PNG, SFT accuracy) to
benchmarks/results/world_local/, and says how far its matrix is from the shipped build's
(0 on the machine type that built the shipped one; README "The built-in world").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, write_csv
from laser.world.shipped import SHIPPED


def run(script: Path, cache: Path, hydra_dir: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [
            str(script),
            f"cache_dir={cache}",
            "progress=false",
            "use_shipped=false",  # time the build itself, not the copy of the shipped one
            f"hydra.run.dir={hydra_dir}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, done.stdout


def matrix_gap(local: Path, shipped: Path) -> float | str:
    """Largest absolute difference between two builds' RM x domain accuracies and SFT
    accuracies; "no shipped build" when none is shipped for this key."""
    if not shipped.is_dir():
        return "no shipped build"
    a, b = (json.loads((p / "world.json").read_text()) for p in (local, shipped))
    pairs = [
        (a["rm_domain_accuracy"][rm][d], b["rm_domain_accuracy"][rm][d])
        for rm in b["rm_domain_accuracy"]
        for d in b["rm_domain_accuracy"][rm]
    ] + [(a["sft_accuracy"][d], b["sft_accuracy"][d]) for d in b["sft_accuracy"]]
    return round(max(abs(x - y) for x, y in pairs), 4)


def main() -> None:
    print(f"machine: {machine()}")
    script = Path(sys.executable).parent / "laser-prepare"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold, out = run(script, cache, f"{tmp}/h1")
        warm, out2 = run(script, cache, f"{tmp}/h2")
        print(out)
        assert "reused" in out2, out2
        entry = next(p for p in cache.iterdir() if not p.name.startswith("."))
        target = RESULTS / "world_local"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(entry / "report", target)
        gap = matrix_gap(entry, SHIPPED / entry.name)
    rows = [
        {"run": "cold (empty cache)", "wall_s": round(cold, 1)},
        {"run": "warm (reuse)", "wall_s": round(warm, 1)},
    ]
    for r in rows:
        print(f"{r['run']:>20}: {r['wall_s']:6.1f} s")
    print(f"largest |local - shipped| over the RM x domain matrix and SFT accuracy: {gap}")
    rows.append({"run": "max abs diff to the shipped build", "wall_s": gap})
    write_csv(RESULTS / "prepare_world.csv", rows)
    print(f"wrote {RESULTS / 'prepare_world.csv'} and {target}/")


if __name__ == "__main__":
    main()
