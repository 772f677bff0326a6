"""Time ``laser-train-rm`` on the toy preference task (CPU), as a user would run it.

    python benchmarks/train_rm_toy.py

Writes 2000 toy pairs to a temporary JSONL file, runs
``laser-train-rm data.train=<file> output_dir=<tmp>`` with the default config (tiny GPT-2,
2 layers, 64-d, 3 epochs, 10% held out), and saves wall time and held-out pairwise accuracy to
benchmarks/results/train_rm_toy.csv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, write_csv
from laser.rewards.toy import main as write_toy


def main() -> None:
    print(f"machine: {machine()}")
    script = Path(sys.executable).parent / "laser-train-rm"
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "prefs.jsonl", Path(tmp) / "rm"
        write_toy([str(data), "--n", "2000"])
        command = [
            str(script),
            f"data.train={data}",
            f"output_dir={out}",
            "progress=false",
            f"hydra.run.dir={tmp}/hydra",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - start
        metrics = json.loads((out / "metrics.json").read_text())
    row = {
        "pairs": 2000,
        "eval_pairs": 200,
        "epochs": 3,
        "wall_s": round(wall, 1),
        "train_s": round(metrics["time_s"], 1),
        "eval_accuracy": round(metrics["eval_accuracy"], 4),
        "final_train_loss": round(metrics["loss"], 4),
    }
    print(row)
    write_csv(RESULTS / "train_rm_toy.csv", [row])


if __name__ == "__main__":
    main()
