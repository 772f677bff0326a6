"""Offline priors on the real-model world: does knowing each RM's reliability from labelled
pairs (BayesianRouter's warm start, Wu & Lu 2026) fix what LASER's label-free feedback cannot
see there, a flaw three of the four RMs share?

    python -m experiments.real.priors [--seeds 0] [--methods bayesian_router,classifier]
                                      [--algos dpo,ppo] [laser-compare overrides ...]

1. Labelled pairs the RMs never trained on: the tasks' TRAIN split (never the held-out
   prompts the policy is scored on), ``--pairs`` per domain, clean labels, drawn with another
   seed than the RMs' data (experiments/real/make_prefs.py, ``rm="clean"``), into
   <cache_dir>/real/prior_pairs.jsonl.
2. ``laser-fit-prior --data`` on them with the real world's pool and sentence features, per
   seed (the featurizer's projection follows the seed), into <cache_dir>/real/priors/.
3. ``laser-compare compare=real method=<methods>`` into experiments/results/real/train, beside
   the cold-start rows, so one results.md compares them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.compare import launch
from experiments.real.make_prefs import ALL, pairs, prompt_task
from laser.fit_prior import main as fit_prior

PAIRS_SEED = 7  # the RMs' preference data used seed 0 (make_prefs.py)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pairs", type=int, default=100, help="labelled pairs per domain")
    parser.add_argument("--methods", default="bayesian_router,classifier")
    parser.add_argument("--algos", default="dpo,ppo")
    parser.add_argument("--cache-dir", default=".cache/laser")
    parser.add_argument("overrides", nargs="*", help="more laser-compare overrides")
    args = parser.parse_args(argv)
    real = Path(args.cache_dir) / "real"
    data = real / "prior_pairs.jsonl"
    rows = pairs(prompt_task(), "clean", args.pairs, PAIRS_SEED, domains=ALL)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{data}: {len(rows)} labelled pairs ({args.pairs} per domain, train split)")
    for seed in args.seeds:
        out = real / "priors" / f"prior_seed{seed}.json"
        fit_prior(
            [
                "--out",
                str(out),
                "--data",
                str(data),
                "experiment=real_smollm2",
                "features=sentence",
                f"loop.seed={seed}",
                f"cache_dir={args.cache_dir}",
            ]
        )
    sys.exit(
        launch(
            "compare=real",
            f"seed={','.join(str(s) for s in args.seeds)}",
            f"algo={args.algos}",
            f"method={args.methods}",
            f"cache_dir={args.cache_dir}",
            "hydra.sweep.dir=experiments/results/real/train",
            *args.overrides,
        )
    )


if __name__ == "__main__":
    main()
