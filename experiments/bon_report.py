"""``laser-bon``'s report: results.md, results.csv, seeds.csv and best_of_n.png.

The per-(method, seed) summaries follow ``experiments.report``'s schema, so routing accuracy
(``routing_accuracy``: share of prompts after the warm-up sent to the RM best on their domain,
or to any RM within ``TIER`` of it) and the paired statistics (``paired``: stratified
bootstrap CI over (seed, domain) cells and the exact McNemar test) are the comparison's own.
"""

from __future__ import annotations

import csv
import fnmatch
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from experiments.report import TIER, method_rows, paired, pool_size
from experiments.stats import macro_mean


def is_paper_row(method: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(method, p) for p in patterns)


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def _routing(row: dict, summaries: list[dict], warmup: float) -> str:
    if "routing_tier_mean" not in row:
        return "—"
    worst = []
    for s in (s for s in summaries if s["method"] == row["method"]):
        first = math.ceil(warmup * len(s["eval_scores"]))
        worst.append(np.mean(to_worst(s)[first:]))
    return f"{row['routing_mean']:.2f} / {row['routing_tier_mean']:.2f} / {np.mean(worst):.2f}"


def after_warmup(summaries: list[dict], method: str, warmup: float) -> tuple[float, float]:
    """Mean ± std over seeds of the accuracy on the prompts after the first ``warmup`` share
    (macro over domains): what the selector does once it has learnt."""
    values = []
    for s in summaries:
        if s["method"] == method:
            first = math.ceil(warmup * len(s["eval_scores"]))
            values.append(macro_mean(s["eval_scores"][first:], s["eval_domains"][first:]))
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def markdown(config, rows: list[dict], comparisons: dict, summaries: list[dict]) -> str:
    ref, domains = config.reference, summaries[0]["domains"]
    k = max(pool_size(summaries), 1)
    lines = [
        f"Best-of-n without training: per prompt, n = {config.n} samples from the fixed SFT "
        f"policy (temperature {config.temperature}), drawn once per seed and shared by every "
        f"method; the method's RM picks its top-scored sample. Gold accuracy of the picked "
        f"samples on {config.prompts} `{config.split}` prompts per seed, mean ± std over "
        f"{len(config.seeds)} seeds ({', '.join(map(str, config.seeds))}); "
        f"{config.batch_size} prompts per bandit step; K = {k} RMs.",
        "",
        f"| method | rows from | {' | '.join(domains)} | mean | after {config.warmup:.0%} "
        f"| vs {ref}: diff [95% CI], seeds ahead | RM forward samples | routing after "
        f"{config.warmup:.0%}: best RM / best tier / worst RM |",
        "|---|---|" + "---:|" * (len(domains) + 5),
    ]
    for r in sorted(rows, key=lambda r: -r["acc_mean"]):
        name = f"**{r['method']}**" if r["method"] == ref else r["method"]
        src = "paper" if is_paper_row(r["method"], config.paper) else "ours"
        c = comparisons.get(r["method"])
        vs = (
            f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], {c['seed_wins']}/{c['seeds']}"
            if c
            else "—"
        )
        cells = " | ".join(_fmt(r[f"{d}_mean"], r[f"{d}_std"]) for d in domains)
        late = _fmt(*after_warmup(summaries, r["method"], config.warmup))
        lines.append(
            f"| {name} | {src} | {cells} | {_fmt(r['acc_mean'], r['acc_std'])} | {late} | {vs} "
            f"| {r['rm_forward_samples']:,.0f} | {_routing(r, summaries, config.warmup)} |"
        )
    lines += [
        "",
        f"mean: over all prompts, the warm-up included; after {config.warmup:.0%}: over the "
        f"prompts after the first {config.warmup:.0%}. "
        f"vs {ref}: the row's method minus {ref}, paired on the same prompts and samples "
        "(95% bootstrap CI over prompts, stratified by seed and domain; seeds on which the "
        f"row scored higher than {ref}). RM forward samples: per "
        f"seed (mean over seeds), every sample an RM scored, audits included; the routed RM "
        f"alone costs n = {config.n} per prompt. Routing: share of prompts after the first "
        f"{config.warmup:.0%} sent to the RM the world's report rates best on their domain / "
        f"to any RM within {TIER} of it / to the RM it rates worst there (the one that "
        f"believes the domain's shortcut); chance is 1/K = {1 / k:.2f} for the first and last.",
    ]
    return "\n".join(lines) + "\n"


def routing_table(config, summaries: list[dict]) -> str:
    """Per selector (LASER's variants, random) and domain: the share of the domain's prompts
    after the warm-up sent to each RM (all seeds pooled), the domain's best RM marked."""
    learners = [
        m for m in dict.fromkeys(s["method"] for s in summaries) if _routed_selector(summaries, m)
    ]
    if not learners or not summaries[0]["best_rm"]:
        return ""
    pool = next(s["pool"] for s in summaries if s["method"] == learners[0])
    best = summaries[0]["best_rm"]
    lines = [
        f"Where each selector sends each domain's prompts after the first "
        f"{config.warmup:.0%} (share of the domain's prompts, {len(config.seeds)} seeds "
        "pooled; * = the RM the world's report rates best on the domain):",
        "",
        "| method | domain | " + " | ".join(pool) + " |",
        "|---|---|" + "---:|" * len(pool),
    ]
    for m in learners:
        counts: dict[str, Counter] = defaultdict(Counter)
        for s in (s for s in summaries if s["method"] == m):
            first = math.ceil(config.warmup * len(s["prompt_routes"]))
            for d, rm in zip(s["eval_domains"][first:], s["prompt_routes"][first:]):
                counts[d][rm] += 1
        for d in summaries[0]["domains"]:
            total = sum(counts[d].values()) or 1
            cells = [f"{counts[d][rm] / total:.2f}" + ("*" if rm == best[d] else "") for rm in pool]
            lines.append(f"| {m} | {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _routed_selector(summaries: list[dict], method: str) -> bool:
    return next(s["kind"] for s in summaries if s["method"] == method) == "selector" and any(
        s.get("prompt_routes") for s in summaries if s["method"] == method
    )


def signal_table(summaries: list[dict]) -> str:
    """Does the paper's signal rank the RMs like their accuracy? Per domain and RM (its fixed
    run): the gold accuracy of its picks and minus the mean per-token NLL of its picks."""
    fixed = [m for m in dict.fromkeys(s["method"] for s in summaries) if m.startswith("fixed_")]
    fixed = [m for m in fixed if all("pick_nll" in s for s in summaries if s["method"] == m)]
    if not fixed:
        return ""
    domains = summaries[0]["domains"]
    lines = [
        "The paper's signal per RM: for each domain, the gold accuracy of each fixed RM's picks "
        "and minus the mean per-token NLL of its picks (the signal LASER's `neg_loss` feeds "
        "back), seeds pooled. A signal that ranks the RMs like the accuracy can route.",
        "",
        "| domain | " + " | ".join(m.removeprefix("fixed_") for m in fixed) + " |",
        "|---|" + "---:|" * len(fixed),
    ]
    for d in domains:
        cells = []
        for m in fixed:
            runs = [s for s in summaries if s["method"] == m]
            acc = [o for s in runs for o, dd in zip(s["eval_scores"], s["eval_domains"]) if dd == d]
            nll = [v for s in runs for v, dd in zip(s["pick_nll"], s["eval_domains"]) if dd == d]
            cells.append(f"acc {np.mean(acc):.3f}, -NLL {-np.mean(nll):.3f}")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csvs(out: Path, rows: list[dict], comparisons: dict, summaries: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r)) + [
        "vs_ref_diff",
        "vs_ref_low",
        "vs_ref_high",
        "vs_ref_mcnemar_p",
        "vs_ref_seeds_ahead",
    ]
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            c = comparisons.get(r["method"])
            extra = {}
            if c:  # the row's method minus the reference
                extra = {
                    "vs_ref_diff": c["diff"],
                    "vs_ref_low": c["low"],
                    "vs_ref_high": c["high"],
                    "vs_ref_mcnemar_p": c["p"],
                    "vs_ref_seeds_ahead": c["seed_wins"],
                }
            writer.writerow({**r, **extra})
    domains = summaries[0]["domains"]
    with (out / "seeds.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", *domains, "mean", "rm_forward_samples", "wall_s"])
        for s in summaries:
            finals = [f"{s['final'][d]:.4f}" for d in ["mean", *domains]]
            writer.writerow(
                [s["method"], s["seed"], *finals[1:], finals[0], s["rm_forward_samples"]]
                + [f"{s['wall_s']:.2f}"]
            )


def best_tier(summary: dict) -> list[float]:
    """Per prompt: 1 if its RM is within TIER of the best on its domain (world's report)."""
    matrix, best = summary["rm_domain_accuracy"], summary["best_rm"]
    return [
        float(matrix[rm][d] >= matrix[best[d]][d] - TIER)
        for d, rm in zip(summary["eval_domains"], summary["prompt_routes"])
    ]


def to_worst(summary: dict) -> list[float]:
    """Per prompt: 1 if its RM is the one the world's report rates worst on its domain."""
    matrix = summary["rm_domain_accuracy"]
    worst = {d: min(summary["pool"], key=lambda rm: matrix[rm][d]) for d in summary["domains"]}
    return [
        float(rm == worst[d]) for d, rm in zip(summary["eval_domains"], summary["prompt_routes"])
    ]


def _windows(values: np.ndarray, window: int) -> tuple[list[float], list[float]]:
    edges = range(0, len(values), window)
    return [e + min(window, len(values) - e) / 2 for e in edges], [
        float(values[e : e + window].mean()) for e in edges
    ]


def plot(out: Path, summaries: list[dict], reference: str, window: int = 200) -> None:
    """Cumulative accuracy of the picks over prompts (every method), and per window of
    prompts the share routed to a best-tier RM and to the domain's worst RM (the routed
    methods but the fixed ones and the ensemble), means over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        by_method[s["method"]].append(s)
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(18, 5.2))
    colors = iter(plt.get_cmap("tab10").colors * 3)  # the selectors; references apart
    dotted = iter(plt.get_cmap("Dark2").colors * 3)
    for method, runs in by_method.items():
        kind = runs[0]["kind"]
        if method == reference:
            style = {"color": "black", "linewidth": 2.6, "zorder": 5}
        elif kind == "fixed":
            style = {"color": "grey", "linewidth": 0.9, "linestyle": "--", "alpha": 0.8}
        elif kind == "reference":
            style = {"color": next(dotted), "linewidth": 1.2, "linestyle": ":"}
        else:
            style = {"color": next(colors), "linewidth": 1.3}
        acc = np.mean([np.cumsum(r["eval_scores"]) for r in runs], axis=0)
        acc /= np.arange(1, len(acc) + 1)
        left.plot(np.arange(1, len(acc) + 1), acc, label=method, **style)
        if (
            runs[0].get("prompt_routes")
            and runs[0]["best_rm"]
            and kind not in ("fixed", "ensemble", "gold")
        ):
            mid.plot(*_windows(np.mean([best_tier(r) for r in runs], axis=0), window), **style)
            right.plot(*_windows(np.mean([to_worst(r) for r in runs], axis=0), window), **style)
    left.set_ylim(0.4, 1.0)
    left.set_ylabel("gold accuracy of the picked samples (cumulative)")
    left.set_title("Best-of-n accuracy (mean over seeds)")
    left.legend(fontsize=7, ncol=2, loc="lower right")
    mid.set_ylabel(f"share routed to a best-tier RM (per {window} prompts)")
    mid.set_title("Routing to the domain's best tier")
    right.set_ylabel(f"share routed to the domain's worst RM (per {window} prompts)")
    right.set_title("Routing to the RM that believes the shortcut")
    for ax in (left, mid, right):
        ax.set_xlabel("prompts seen")
    mid.set_ylim(0, 1.02)
    right.set_ylim(0, 1.02)
    fig.tight_layout()
    fig.savefig(out / "best_of_n.png", dpi=110)
    plt.close(fig)


def write_results(config, summaries: list[dict]) -> str:
    """results.md, results.csv, seeds.csv, best_of_n.png into ``config.output_dir``."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = method_rows(summaries, config.warmup)
    methods = [r["method"] for r in rows]
    comparisons = {}  # each method minus the reference, paired on prompts
    if config.reference in methods:
        comparisons = {
            m: paired(summaries, m, config.reference) for m in methods if m != config.reference
        }
    parts = [markdown(config, rows, comparisons, summaries)]
    parts += [routing_table(config, summaries), signal_table(summaries)]
    table = "\n".join(p for p in parts if p)
    (out / "results.md").write_text(table)
    write_csvs(out, rows, comparisons, summaries)
    plot(out, summaries, config.reference)
    return table


def main(argv: list[str] | None = None) -> None:
    """Re-render a finished run's report from its ``runs/``:
    ``python -m experiments.bon_report <output_dir>``."""
    import argparse
    import json

    from experiments.bon import BonConfig

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output_dir", type=Path)
    args = parser.parse_args(argv)
    runs = args.output_dir / "runs"
    config = BonConfig(**json.loads((runs / "config.json").read_text()))
    config.output_dir = str(args.output_dir)
    print(write_results(config, json.loads((runs / "summaries.json").read_text())))


if __name__ == "__main__":
    main()
