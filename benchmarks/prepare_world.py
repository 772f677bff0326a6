"""Build the default world with ``laser-prepare`` from an empty cache, then again (reuse).

    python benchmarks/prepare_world.py

The cold build is most of a fresh `make demo`'s world step (the SFT policy, then the RMs one
after another, each on world.threads threads). Writes benchmarks/results/prepare_world.csv
and copies the world's report (RM x domain matrix as text/CSV/PNG, SFT accuracy) to
benchmarks/results/world/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, write_csv


def run(script: Path, cache: Path, hydra_dir: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(script), f"cache_dir={cache}", "progress=false", f"hydra.run.dir={hydra_dir}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, done.stdout


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
        target = RESULTS / "world"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(entry / "report", target)
    rows = [
        {"run": "cold (empty cache)", "wall_s": round(cold, 1)},
        {"run": "warm (reuse)", "wall_s": round(warm, 1)},
    ]
    for r in rows:
        print(f"{r['run']:>20}: {r['wall_s']:6.1f} s")
    write_csv(RESULTS / "prepare_world.csv", rows)
    print(f"wrote {RESULTS / 'prepare_world.csv'} and {target}/")


if __name__ == "__main__":
    main()
