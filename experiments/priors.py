"""Offline priors vs cold start (issue 16): fit every seed's priors, then run the comparison.

    python -m experiments.priors [--seeds 0 1 2] [laser-compare overrides ...]

For each seed: ``laser-fit-prior`` on all domains' train-split pairs (prior_all) and on
``sort``'s only (prior_sort, the wrong prior), centred and raw (``_raw``), into
<cache_dir>/priors; then
``laser-compare compare=priors hydra.sweep.dir=experiments/results/priors`` (conf/compare/
priors.yaml: LASER cold, with the prior, with the wrong prior, LinTS cold, BayesianRouter-style
LinTS + prior, classifier selection, the agreement and mean ensembles).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.compare import launch
from laser.fit_prior import main as fit_prior

# file name -> laser-fit-prior flags: centred (the default) and raw, on every domain and on sort
MIXES = {
    "all": [],
    "sort": ["--domains", "sort"],
    "all_raw": ["--no-center"],
    "sort_raw": ["--domains", "sort", "--no-center"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache-dir", default=".cache/laser")
    parser.add_argument("overrides", nargs="*", help="more laser-compare overrides")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        for mix, flags in MIXES.items():
            out = Path(args.cache_dir) / "priors" / f"prior_{mix}_seed{seed}.json"
            fit_prior(
                ["--out", str(out), *flags, f"loop.seed={seed}", f"cache_dir={args.cache_dir}"]
            )
    seeds = ",".join(str(s) for s in args.seeds)
    sys.exit(
        launch(
            "compare=priors",
            f"seed={seeds}",
            f"cache_dir={args.cache_dir}",
            "hydra.sweep.dir=experiments/results/priors",
            *args.overrides,
        )
    )


if __name__ == "__main__":
    main()
