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
from laser.spectral import label_free_check
from laser.tasks.base import Example


def order_signs(pool: dict, examples: list[Example], chosen: list[str], rejected: list[str]):
    """(n, K) array: sign(r_k(chosen[i]) - r_k(rejected[i])), +1 where RM k orders pair i as
    its label does (``> 0`` is the correctness the prior is fitted on; a tie counts wrong)."""
    prompts = [e.prompt for e in examples]
    meta = {"domain": [e.domain for e in examples]}
    columns = []
    for rm in pool.values():  # score_checked: an RM that throws or gives NaN is named
        good = score_checked(rm, prompts, chosen, **meta)
        bad = score_checked(rm, prompts, rejected, **meta)
        columns.append(torch.sign(good - bad).double().numpy())
    return np.stack(columns, axis=1)


def check_lines(
    signs: np.ndarray, names: list[str], domains: list[str], tolerance: float = 0.05
) -> list[str]:
    """The label-free check (laser.spectral.label_free_check) over all pairs and per domain,
    as lines to print: each RM's labelled accuracy and the spectral feedback's estimate of it,
    and a warning wherever the RM the feedback rates best is more than ``tolerance`` less
    accurate by the labels than the labels' best (a near-tie between two good RMs is no
    problem for routing). With domains, the warning looks at each domain (routing is per
    prompt), else at all pairs."""
    groups = {"all": np.ones(len(domains), dtype=bool)}
    if len(set(domains)) > 1:
        groups |= {d: np.asarray(domains) == d for d in sorted(set(domains))}
    lines, wrong = [], []
    for group, mask in groups.items():
        check = label_free_check(torch.from_numpy(signs[mask].T))
        if check is None:
            continue
        labelled, free = check["labelled"].numpy(), check["label_free"].numpy()
        best, pick = int(labelled.argmax()), int(free.argmax())
        cells = ", ".join(f"{n} {a:.2f}/{f:.2f}" for n, a, f in zip(names, labelled, free))
        lines.append(f"  {group} ({int(mask.sum())} pairs): {cells}")
        regret = float(labelled[best] - labelled[pick])
        if regret > tolerance and (group != "all" or len(groups) == 1):
            wrong.append(
                f"{group} (labels: {names[best]} {labelled[best]:.2f}, label-free: "
                f"{names[pick]} {labelled[pick]:.2f})"
            )
    if not lines:
        return ["label-free check skipped: it needs >= 3 RMs and >= 20 pairs"]
    head = "label-free check, labelled accuracy / spectral_agreement's estimate per RM:"
    if not wrong:
        verdict = f"the label-free feedback's best RM is within {tolerance} of the labels' best"
        return [head, *lines, f"{verdict} on every {'domain' if len(groups) > 1 else 'pair set'}"]
    warning = (
        f"WARNING: the label-free feedback rates another RM best than your labels on "
        f"{'; '.join(wrong)}: the RMs share errors there, so online "
        "feedback=spectral_pooled / spectral_agreement will favour the wrong RM. Prefer this "
        "prior without online learning (bandit=linucb bandit.alpha=0 feedback=none, the "
        "classifier) or labelled feedback "
        "(feedback=gold_agreement)."
    )
    return [head, *lines, warning]


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
    from laser.rewards.data import load_source, preference_pairs

    pairs = preference_pairs(path)  # raises on any bad row, so rows and pairs align
    ds, _ = load_source(path)
    domains = ds["domain"] if "domain" in ds.column_names else ["data"] * len(pairs)
    examples = [Example(p.prompt, p.chosen, str(d)) for p, d in zip(pairs, domains)]
    return examples, [p.chosen for p in pairs], [p.rejected for p in pairs]


def fit(args: argparse.Namespace) -> tuple[ArmPrior, list[str]]:
    """The fitted prior and the label-free check's lines."""
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
    signs = order_signs(pool, examples, chosen, rejected)
    correct = (signs > 0).astype(np.float64)
    with torch.no_grad():
        contexts = featurizer(examples).double().cpu().numpy()
    means = fit_prior_means(contexts, correct, args.l2)
    if args.center:
        means = center_prior_means(means)
    prior = ArmPrior(
        names=list(pool),
        means=means.tolist(),
        featurizer=describe_featurizer(featurizer),
        pairs=len(examples),
        domains=sorted({e.domain for e in examples}),
        pair_accuracy={n: float(correct[:, k].mean()) for k, n in enumerate(pool)},
        centered=args.center,
    )
    return prior, check_lines(signs, list(pool), [e.domain for e in examples])


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
    prior, check = fit(args)
    path = prior.save(Path(args.out))
    accuracy = ", ".join(f"{n} {a:.3f}" for n, a in prior.pair_accuracy.items())
    print(f"prior of {len(prior.names)} RMs on {prior.pairs} pairs ({accuracy}) -> {path}")
    print("\n".join(check))


if __name__ == "__main__":
    main()
