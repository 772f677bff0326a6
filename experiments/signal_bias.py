"""How faithfully does each gold-free consensus signal rank the RMs, per domain? (issue 14)

    python -m experiments.signal_bias [--world-seed 1] [--world-threads 2] [--prompts 240] [--n 8]
                                      [--checkpoint RUN/checkpoints/ckpt-00000150.pt]

Draws ``n`` samples per training prompt from the world's SFT policy (the policy every run
starts from, where the bandit's first choices are made), or with ``--checkpoint`` from the
policy a run had trained by then (the samples the bandit's late feedback is computed on),
scores every sample with EVERY RM of
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
  so it comes from how the RMs' errors vary from prompt to prompt, not from sample size;
- ``spectral_decided``: the pooled fit on the pairs gold orders only (a labelled diagnostic,
  not a signal): if the fit misranks RMs because most pairs are two samples gold rates alike
  (both right or both wrong, where RMs order by whatever else they share), this column is
  right where ``spectral_pooled`` is wrong; if it is wrong too, the RMs' errors are correlated
  on the pairs that matter, and no reweighting of pairs repairs the fit.

and, per domain, whether each signal's best RM is a best-tier RM by gold. A signal whose
reference changes with the arm it grades can misrank arms: dropping a good RM from the
reference makes the reference worse exactly when a good RM is graded.
Writes ``<out>/signal_bias_<tag>.md`` and the scores, ``<out>/scores_<tag>.pt``.

    python -m experiments.signal_bias --tally late experiments/results/signal_bias/scores_*ckpt*.pt

recomputes the tables from saved scores (no sampling) and counts, per signal, the (file,
domain) cells where its best RM is a best-tier RM and where it orders the RMs like gold;
writes ``<out>/tally_<name>.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from experiments.report import TIER  # the report's best tier
from laser.consensus import consensus_reference
from laser.feedback import margin_agreement, pairwise_agreement
from laser.spectral import agreement_matrix, pair_signs, rank_one_fit

SIGNALS = (
    "gold",
    "others",
    "pool",
    "pool_margin",
    "spectral",
    "spectral_pooled",
    "spectral_decided",
)


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
    every = torch.cat(list(signs.values()), dim=1)
    pooled = rank_one_fit(agreement_matrix(every))
    decided = torch.cat([pair_signs(gold.float()[None], idx)[0] for idx in groups.values()]) != 0
    on_decided = rank_one_fit(agreement_matrix(every[:, decided]))
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
            "spectral_decided": float(on_decided[k]),
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


def domain_tables(data: dict) -> dict[str, dict]:
    """{domain: agreement_table} of saved scores (``scores``, ``gold``, ``domains``, ``n``)."""
    n = data["n"]
    tables = {}
    for domain in dict.fromkeys(data["domains"]):
        groups = {
            p: list(range(p * n, (p + 1) * n)) for p, d in enumerate(data["domains"]) if d == domain
        }
        tables[domain] = agreement_table(data["scores"], data["gold"], groups)
    return tables


def verdicts(table: dict) -> dict[str, tuple[str, bool, bool]]:
    """Per signal: its best RM, whether that RM is a best-tier RM by gold, and whether the
    signal orders the RMs like gold (:func:`ranks_like_gold`)."""
    best_gold = max(r["gold"] for r in table.values())
    ordered = ranks_like_gold(table)
    out = {}
    for key in SIGNALS[1:]:
        pick = max(table, key=lambda m: table[m][key])
        out[key] = (pick, table[pick]["gold"] >= best_gold - TIER, ordered[key])
    return out


def report(data: dict, title: str, command: str) -> list[str]:
    """The markdown report of one set of saved scores."""
    lines = [
        title,
        "",
        command,
        "",
        "| domain | RM | gold | others (before) | pool | pool, margin-weighted | spectral "
        "| spectral, pooled over the domain | pooled, gold-ordered pairs only (labelled) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for domain, table in domain_tables(data).items():
        for name, row in table.items():
            lines.append(f"| {domain} | {name} | " + " | ".join(f"{row[k]:.3f}" for k in SIGNALS))
        for key, (pick, tier, ordered) in verdicts(table).items():
            rows.append(
                f"| {domain} | {key} | {pick} | {table[pick]['gold']:.3f} | "
                f"{'yes' if tier else 'NO'} | {'yes' if ordered else 'NO'} |"
            )
    return [
        *lines,
        "",
        f"Best tier: within {TIER} of the domain's best gold agreement. Ordered: every pair of "
        f"RMs whose gold agreements differ by more than {TIER} is ordered the same way.",
        "",
        "| domain | signal | its best RM | that RM's gold agreement | best tier? "
        "| ordered like gold? |",
        "|---|---|---|---:|:---:|:---:|",
        *rows,
    ]


def tally(paths: list[Path]) -> list[str]:
    """Per signal, over every (file, domain) cell: how often its best RM is best-tier and how
    often it orders the RMs like gold."""
    counts = {key: [0, 0] for key in SIGNALS[1:]}
    cells = 0
    for path in paths:
        for table in domain_tables(torch.load(path, weights_only=False)).values():
            cells += 1
            for key, (_, tier, ordered) in verdicts(table).items():
                counts[key][0] += tier
                counts[key][1] += ordered
    lines = [
        f"{cells} (file, domain) cells from {len(paths)} score files: "
        + ", ".join(f"`{p.name}`" for p in paths),
        "",
        "| signal | best RM is best-tier | orders the RMs like gold |",
        "|---|---:|---:|",
    ]
    return lines + [f"| {k} | {t}/{cells} | {o}/{cells} |" for k, (t, o) in counts.items()]


def sample_scores(args: argparse.Namespace) -> dict:
    """Every RM's score of ``args.n`` samples per training prompt of the SFT policy (or the
    checkpoint's), with their gold scores."""
    from laser.bon import draw_candidates
    from laser.build import build_pool, load_world, typed
    from laser.checkpoint import load_checkpoint
    from laser.cli import compose_train
    from laser.rewards.base import score_checked
    from laser.tasks.base import metadata_columns

    world_overrides = [f"world.seed={args.world_seed}", f"world.threads={args.world_threads}"]
    config = typed(compose_train([*world_overrides, "progress=false"]))
    world, task = load_world(config)
    policy, tokenizer = world.policy().eval(), world.tokenizer()
    if args.checkpoint:
        policy.load_state_dict(load_checkpoint(args.checkpoint)["trainer"]["policy"])
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
    domains = [e.domain for e in examples]
    return {"scores": scores, "gold": cand.gold, "domains": domains, "n": args.n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--world-threads", type=int, default=2, help="world.threads of the world")
    ap.add_argument("--prompts", type=int, default=240)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="a laser-train checkpoint of this world: sample from its trained policy",
    )
    ap.add_argument(
        "--tally",
        nargs="+",
        metavar=("NAME", "SCORES"),
        help="NAME then saved scores_*.pt files: count each signal's verdicts over them",
    )
    ap.add_argument("--out", default="experiments/results/signal_bias")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tally:
        if len(args.tally) < 2:
            ap.error("--tally needs a NAME and at least one scores file")
        name, *paths = args.tally
        lines = [
            f"# Label-free signals vs gold over saved samples: {name}",
            "",
            f"`python -m experiments.signal_bias --tally {name} {' '.join(paths)}`",
            "",
            *tally([Path(p) for p in paths]),
        ]
        path = out / f"tally_{name}.md"
    else:
        tag = f"world{args.world_seed}" + (
            "" if args.world_threads == 2 else f"_t{args.world_threads}"
        )
        if args.checkpoint:  # e.g. world0_dpo_laser_full_seed0_ckpt-00000150
            run = Path(args.checkpoint).resolve().parents[1]
            tag += "_" + "_".join([*run.parts[-3:], Path(args.checkpoint).stem])
        data = sample_scores(args)
        # every RM's score of every sample, to study other signals without resampling
        torch.save(data, out / f"scores_{tag}.pt")
        command = (
            f"`python -m experiments.signal_bias --world-seed {args.world_seed} --world-threads "
            f"{args.world_threads} --prompts {args.prompts} --n {args.n}"
            + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
            + f"`: {args.prompts} training prompts x {args.n} samples of "
            + ("the checkpoint's trained policy" if args.checkpoint else "the SFT policy")
            + "; mean per-prompt pairwise agreement of each RM with the reference."
        )
        title = (
            f"# Consensus signals vs gold, world seed {args.world_seed}, {args.world_threads} "
            "build thread(s)"
        )
        lines = report(data, title, command)
        path = out / f"signal_bias_{tag}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
