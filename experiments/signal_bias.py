"""How faithfully does each gold-free consensus signal rank the RMs, per domain? (issue 14)

    python -m experiments.signal_bias [--world-seed 1] [--world-threads 2] [--prompts 240] [--n 8]

Draws ``n`` samples per training prompt from the world's SFT policy (the policy every run
starts from, where the bandit's first choices are made), scores every sample with EVERY RM of
the pool, and reports per (domain, RM):

- ``gold``: the RM's pairwise agreement with the gold checker on those samples (what the
  bandit should learn to rank by; it is what decides whether DPO with the RM helps);
- ``others``: agreement with the leave-one-out consensus of the OTHER RMs
  (``consensus_agreement`` with ``reference=others weight=none``, the default before);
- ``pool``: agreement with the consensus of the whole pool, the RM itself included
  (``reference=pool weight=none``): the same reference for every arm of a prompt;
- ``pool_margin``: the same, each sample pair weighted by the consensus's margin on it
  (``reference=pool weight=margin``);
- ``spectral``: the RM's reliability 2p - 1 from the rank-one fit of the pool's agreement
  matrix (``spectral_agreement``, laser/spectral.py), on a different scale: only its order
  of the RMs compares. Fitted per prompt, as the feedback does online, then averaged;
- ``spectral_pooled``: the same fit once, on the agreement matrix of every sample pair of
  the domain's prompts (28 pairs a prompt at n = 8). Measured: on the hard domain the
  per-prompt fits, averaged, rate a near-chance RM close to the experts where the pooled fit
  does not (README, "Other worlds"). Independent errors alone do not do that (a simulation
  with three RMs at 0.9 and one at chance, 28 pairs a prompt, gives both fits c ~ 0 for it),
  so it comes from how the RMs' errors vary from prompt to prompt, not from sample size.

and, per domain, whether each signal's best RM is a best-tier RM by gold. A signal whose
reference changes with the arm it grades can misrank arms: dropping a good RM from the
reference makes the reference worse exactly when a good RM is graded.
Writes ``<out>/signal_bias_world<seed>.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from experiments.report import TIER  # the report's best tier
from laser.consensus import consensus_reference
from laser.feedback import margin_agreement, pairwise_agreement
from laser.spectral import agreement_matrix, pair_signs, rank_one_fit

SIGNALS = ("gold", "others", "pool", "pool_margin", "spectral", "spectral_pooled")


def agreement_table(scores: dict[str, torch.Tensor], gold: torch.Tensor, groups: dict) -> dict:
    """{rm: {signal: mean per-prompt value}} for the gold reference and the label-free
    signals of the module docstring."""
    names = list(scores)
    pool = consensus_reference([scores[m] for m in names], groups)

    def mean(values: dict) -> float:
        return sum(values.values()) / max(len(values), 1)

    stacked = torch.stack([scores[m] for m in names])
    signs = {p: pair_signs(stacked, idx) for p, idx in groups.items()}
    spectral = {p: rank_one_fit(agreement_matrix(s)) for p, s in signs.items()}
    pooled = rank_one_fit(agreement_matrix(torch.cat(list(signs.values()), dim=1)))
    out = {}
    for k, name in enumerate(names):
        own = scores[name]
        others = consensus_reference([scores[m] for m in names if m != name], groups)
        out[name] = {
            "gold": mean(pairwise_agreement(own, gold, groups)),
            "others": mean(pairwise_agreement(own, others, groups)),
            "pool": mean(pairwise_agreement(own, pool, groups)),
            "pool_margin": mean(margin_agreement(own, pool, groups)),
            "spectral": mean({p: float(c[k]) for p, c in spectral.items()}),
            "spectral_pooled": float(pooled[k]),
        }
    return out


def ranks_like_gold(table: dict) -> dict[str, bool]:
    """Per signal: does it order the RMs of a domain like gold does, wherever their gold
    agreements differ by more than ``TIER`` (closer ones are the same tier: either order)?"""
    out = {}
    for key in SIGNALS[1:]:
        ok = True
        for a in table:
            for b in table:
                if table[a]["gold"] > table[b]["gold"] + TIER:
                    ok &= table[a][key] > table[b][key]
        out[key] = ok
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--world-threads", type=int, default=2, help="world.threads of the world")
    ap.add_argument("--prompts", type=int, default=240)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", default="experiments/results/signal_bias")
    args = ap.parse_args()

    from laser.bon import draw_candidates
    from laser.build import build_pool, load_world, typed
    from laser.cli import compose_train
    from laser.rewards.base import score_checked
    from laser.tasks.base import metadata_columns

    world_overrides = [f"world.seed={args.world_seed}", f"world.threads={args.world_threads}"]
    cfg = compose_train([*world_overrides, "progress=false"])
    config = typed(cfg)
    world, task = load_world(config)
    policy, tokenizer = world.policy().eval(), world.tokenizer()
    examples = task.examples("train", args.prompts, seed=12_345)
    cand = draw_candidates(
        policy,
        tokenizer,
        task,
        examples,
        n=args.n,
        max_new_tokens=config.loop.max_new_tokens,
        temperature=config.loop.temperature,
        seed=0,
    )
    pool = build_pool(config, world, task)
    prompts = [e.prompt for e in examples for _ in range(args.n)]
    columns = {
        k: [v for v in vals for _ in range(args.n)]
        for k, vals in metadata_columns(examples).items()
    }
    scores = {
        name: score_checked(rm, prompts, cand.completions, **columns).float()
        for name, rm in pool.items()
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"world{args.world_seed}" + ("" if args.world_threads == 2 else f"_t{args.world_threads}")
    torch.save(  # every RM's score of every sample, to study other signals without resampling
        {"scores": scores, "gold": cand.gold, "domains": [e.domain for e in examples], "n": args.n},
        out / f"scores_{tag}.pt",
    )
    lines = [
        f"# Consensus signals vs gold, world seed {args.world_seed}, {args.world_threads} "
        "build thread(s)",
        "",
        f"`python -m experiments.signal_bias --world-seed {args.world_seed} --world-threads "
        f"{args.world_threads} --prompts {args.prompts} --n {args.n}`: {args.prompts} "
        f"training prompts x {args.n} samples of "
        "the SFT policy; mean per-prompt pairwise agreement of each RM with the reference.",
        "",
        "| domain | RM | gold | others (before) | pool | pool, margin-weighted | spectral "
        "| spectral, pooled over the domain |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for domain in task.domains:
        groups = {
            p: list(range(p * args.n, (p + 1) * args.n))
            for p, e in enumerate(examples)
            if e.domain == domain
        }
        table = agreement_table(scores, cand.gold, groups)
        best_gold = max(r["gold"] for r in table.values())
        for name, row in table.items():
            lines.append(f"| {domain} | {name} | " + " | ".join(f"{row[k]:.3f}" for k in SIGNALS))
        ordered = ranks_like_gold(table)
        for key in SIGNALS[1:]:
            pick = max(table, key=lambda m: table[m][key])
            ok = table[pick]["gold"] >= best_gold - TIER
            verdicts.append(
                f"| {domain} | {key} | {pick} | {table[pick]['gold']:.3f} | "
                f"{'yes' if ok else 'NO'} | {'yes' if ordered[key] else 'NO'} |"
            )
    lines += [
        "",
        f"Best tier: within {TIER} of the domain's best gold agreement. Ordered: every pair of "
        f"RMs whose gold agreements differ by more than {TIER} is ordered the same way.",
        "",
        "| domain | signal | its best RM | that RM's gold agreement | best tier? "
        "| ordered like gold? |",
        "|---|---|---|---:|:---:|:---:|",
        *verdicts,
    ]
    path = out / f"signal_bias_{tag}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
