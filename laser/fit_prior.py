"""``laser-fit-prior``: fit each RM's offline reliability prior and save it for a run.

    laser-fit-prior --out priors/seed0.json [--data pairs.jsonl] [--domains reverse,sort]
                    [--pairs-per-domain 200] [laser-train overrides ...]

The trailing arguments are ``laser-train`` overrides (the same world, pool, ``features`` and
``loop.seed`` as the run that will use the prior: the prior belongs to that featurizer). For
every preference pair and RM: did the RM score the chosen answer above the rejected one? A
ridge fit per RM of that outcome on the prompt's context is the prior mean
(laser/bandits/prior.py). Pairs come from ``--data`` (a JSONL/CSV/JSON file of
prompt/chosen/rejected rows, the user's own preference data) or, for the built-in world, from
its task's TRAIN split (gold vs the domain's shortcut on half the prompts, vs a corruption on
the rest; never the prompts the policy is evaluated on). ``--domains`` restricts the pairs to
some domains: a prior fitted on another domain mix, to measure how the online updates recover.
Then: ``laser-train bandit_prior=priors/seed0.json`` (LinUCB or LinTS).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from laser.bandits.prior import (
    ArmPrior,
    center_prior_means,
    describe_featurizer,
    fit_prior_means,
)
from laser.rewards.base import score_checked
from laser.tasks.base import Example


def correctness(pool: dict, examples: list[Example], chosen: list[str], rejected: list[str]):
    """(n, K) array: 1 where RM k scores ``chosen[i]`` above ``rejected[i]``."""
    prompts = [e.prompt for e in examples]
    meta = {"domain": [e.domain for e in examples]}
    columns = []
    for rm in pool.values():  # score_checked: an RM that throws or gives NaN is named
        good = score_checked(rm, prompts, chosen, **meta)
        bad = score_checked(rm, prompts, rejected, **meta)
        columns.append((good > bad).double().numpy())
    return np.stack(columns, axis=1)


def world_pairs(task, per_domain: int, seed: int, domains: list[str] | None, share: float):
    """(examples, chosen, rejected) from the built-in task's train split."""
    from laser.world.pool import heldout_pairs

    unknown = [d for d in domains or [] if d not in task.domains]
    if unknown:
        raise ValueError(f"--domains {unknown} not in the task's domains {list(task.domains)}")
    pairs = heldout_pairs(task, per_domain, seed, share, split="train")
    rows = [r for d, rs in pairs.items() if not domains or d in domains for r in rs]
    examples = [Example(r["prompt"], r["chosen"], r["domain"]) for r in rows]
    return examples, [r["chosen"] for r in rows], [r["rejected"] for r in rows]


def file_pairs(path: str):
    """(examples, chosen, rejected) from the user's preference file (validated rows)."""
    from laser.rewards.data import preference_pairs

    pairs = preference_pairs(path)
    examples = [Example(p.prompt, p.chosen, "data") for p in pairs]
    return examples, [p.chosen for p in pairs], [p.rejected for p in pairs]


def fit(args: argparse.Namespace) -> ArmPrior:
    from laser.build import build_featurizer, build_pool, load_world, validate
    from laser.cli import compose_train

    cfg = compose_train(args.overrides)
    config = validate(cfg)
    if config.pool != "individual":
        raise ValueError(f"a prior is per RM: needs pool=individual, got pool={config.pool}")
    world, task = load_world(config)
    pool = build_pool(config, world, task)
    seed = config.loop.seed
    domains = list(task.domains)
    featurizer = build_featurizer(
        cfg.features,
        seed,
        policy=lambda: world.policy(),
        tokenizer=lambda: world.tokenizer(),
        domains=lambda: domains,
    )
    if args.data:
        examples, chosen, rejected = file_pairs(args.data)
    else:
        examples, chosen, rejected = world_pairs(
            task, args.pairs_per_domain, seed + 41, args.domains, args.shortcut_share
        )
    correct = correctness(pool, examples, chosen, rejected)
    with torch.no_grad():
        contexts = featurizer(examples).double().cpu().numpy()
    means = fit_prior_means(contexts, correct, args.l2)
    if args.center:
        means = center_prior_means(means)
    return ArmPrior(
        names=list(pool),
        means=means.tolist(),
        featurizer=describe_featurizer(featurizer),
        pairs=len(examples),
        domains=sorted({e.domain for e in examples}),
        pair_accuracy={n: float(correct[:, k].mean()) for k, n in enumerate(pool)},
        centered=args.center,
    )


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="laser-fit-prior", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the prior (JSON)")
    parser.add_argument("--data", help="preference pairs file (default: the world's task)")
    parser.add_argument(
        "--domains", type=lambda v: v.split(","), help="only pairs of these domains: a,b"
    )
    parser.add_argument("--pairs-per-domain", type=int, default=200)
    parser.add_argument("--shortcut-share", type=float, default=0.5)
    parser.add_argument("--l2", type=float, default=1.0, help="ridge of the offline fit")
    parser.add_argument(
        "--center",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store each RM's reliability relative to the pool's (default; --no-center: raw)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="laser-train overrides (world, features, seed)"
    )
    args = parser.parse_args(argv)
    if args.pairs_per_domain < 1:
        parser.error("--pairs-per-domain must be >= 1")
    prior = fit(args)
    path = prior.save(Path(args.out))
    accuracy = ", ".join(f"{n} {a:.3f}" for n, a in prior.pair_accuracy.items())
    print(f"prior of {len(prior.names)} RMs on {prior.pairs} pairs ({accuracy}) -> {path}")


if __name__ == "__main__":
    main()
