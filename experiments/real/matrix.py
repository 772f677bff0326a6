"""The real-model world's RM x domain matrix: each RM's pairwise accuracy per domain on
held-out pairs (the tasks' eval split, a right reply against a near miss, in the styles of
experiments/real/make_prefs.py, with no label noise or length bias).

    python experiments/real/matrix.py [--n 100] [--out experiments/results/real/rm_matrix.md]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from experiments.real.make_prefs import ALL, pairs
from experiments.real.world import real_world


def matrix(n: int) -> dict[str, dict[str, float]]:
    world = real_world("external.report=null")  # the report is what this writes
    held_out = pairs(world.task(), "clean", n, seed=1, split="eval", domains=ALL)
    out: dict[str, dict[str, float]] = {}
    for name, rm in world.reward_models(max_length=160).items():
        right = defaultdict(list)
        with torch.no_grad():
            good = rm.score([r["prompt"] for r in held_out], [r["chosen"] for r in held_out])
            bad = rm.score([r["prompt"] for r in held_out], [r["rejected"] for r in held_out])
        for r, g, b in zip(held_out, good.tolist(), bad.tolist()):
            right[r["domain"]].append(float(g > b))
        out[name] = {d: sum(right[d]) / len(right[d]) for d in ALL}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="held-out pairs per domain")
    ap.add_argument("--out", default="experiments/results/real/rm_matrix.md")
    ap.add_argument("--report", default=".cache/laser/real/report.json", help="the world's")
    args = ap.parse_args()
    m = matrix(args.n)
    domains = list(next(iter(m.values())))
    lines = [
        "| RM | " + " | ".join(domains) + " |",
        "|---|" + "---:|" * len(domains),
        *(
            f"| {rm} | " + " | ".join(f"{row[d]:.2f}" for d in domains) + " |"
            for rm, row in m.items()
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps({"rm_domain_accuracy": m}, indent=1))


if __name__ == "__main__":
    main()
