"""Aggregate ``laser-compare`` job summaries: results.csv, results.md and the plots."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.plots import plot_arm_selection, plot_curves, plot_rm_cost
from experiments.stats import mcnemar_exact, paired_bootstrap, seed_interval
from laser.world.quality import TIER


def routing_accuracy(
    summary: dict[str, Any], warmup: float, tier: float = 0.0, early: bool = False
) -> float | None:
    """Share of prompts, after the first ``warmup`` share of steps (``early``: within it, the
    cold start an offline prior is meant to fix), sent to the RM with the best held-out
    accuracy on their domain (``tier`` > 0: to any RM within ``tier`` of it). None for an
    ensemble or the gold reward (no RM is chosen) and for runs without a world report."""
    if summary["kind"] in ("ensemble", "gold"):
        return None
    matrix = summary.get("rm_domain_accuracy") or {}
    if tier > 0 and not matrix:
        return None  # best tier needs the world's report
    best = summary["best_rm"]
    if not best:  # an external world without a report: no best RM to measure against
        return None
    right = total = 0
    for domain, rm, count in _routed(summary, warmup, early):
        good = rm == best[domain] or (
            tier > 0 and matrix[rm][domain] >= matrix[best[domain]][domain] - tier
        )
        right += count * good
        total += count
    return right / total if total else None


def _routed(summary: dict[str, Any], warmup: float, early: bool):
    """(domain, RM, prompts) of every routing count after the first ``warmup`` share of steps
    (``early``: within it)."""
    first = math.ceil(warmup * len(summary["routes"]))
    steps = summary["routes"][:first] if early else summary["routes"][first:]
    for step in steps:
        for key, count in step.items():
            domain, rm = key.split("|", 1)
            yield domain, rm, count


def routing_regret(summary: dict[str, Any], warmup: float, early: bool = False) -> float | None:
    """Mean, per prompt routed in the steps :func:`routing_accuracy` counts, of the held-out
    pairwise accuracy the chosen RM gives up against the best RM of the prompt's domain
    (matrix[best][d] - matrix[chosen][d], the world report's numbers): the selector's regret
    in accuracy units, 0 for the oracle router. ``early``: over the first ``warmup`` share of
    steps, the cold start. None where routing_accuracy has no answer or no matrix."""
    matrix = summary.get("rm_domain_accuracy") or {}
    if summary["kind"] in ("ensemble", "gold") or not matrix or not summary["best_rm"]:
        return None
    gap = total = 0.0
    for domain, rm, count in _routed(summary, warmup, early):
        gap += count * (matrix[summary["best_rm"][domain]][domain] - matrix[rm][domain])
        total += count
    return gap / total if total else None


def pool_size(summaries: list[dict]) -> int:
    """K, the RMs a selector chooses from: the largest pool of the sweep (an ensemble's or
    the gold reward's run has a pool of one arm)."""
    return max(len(s["pool"]) for s in summaries)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def method_rows(summaries: list[dict], warmup: float) -> list[dict[str, Any]]:
    """One row per method (in first-seen order): means and stds over seeds."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        by_method[s["method"]].append(s)
    rows = []
    for method, runs in by_method.items():
        domains = runs[0]["domains"]
        row: dict[str, Any] = {"method": method, "kind": runs[0]["kind"], "seeds": len(runs)}
        row["acc_mean"], row["acc_std"] = _mean_std([r["final"]["mean"] for r in runs])
        for d in domains:
            row[f"{d}_mean"], row[f"{d}_std"] = _mean_std([r["final"][d] for r in runs])
        row["rm_forward_samples"] = float(np.mean([r["rm_forward_samples"] for r in runs]))
        row["wall_s"] = float(np.mean([r["wall_s"] for r in runs]))
        routing = [routing_accuracy(r, warmup) for r in runs]
        if all(v is not None for v in routing):
            row["routing_mean"], row["routing_std"] = _mean_std(routing)
            tiered = [routing_accuracy(r, warmup, TIER) for r in runs]
            if all(v is not None for v in tiered):
                row["routing_tier_mean"], row["routing_tier_std"] = _mean_std(tiered)
            early = [routing_accuracy(r, warmup, early=True) for r in runs]
            if all(v is not None for v in early):
                row["routing_early_mean"], row["routing_early_std"] = _mean_std(early)
            regret = [routing_regret(r, warmup, early=True) for r in runs]
            if all(v is not None for v in regret):
                row["regret_early_mean"], row["regret_early_std"] = _mean_std(regret)
        rows.append(row)
    return rows


def paired(summaries: list[dict], a: str, b: str) -> dict[str, float]:
    """Method a vs method b over the seeds both ran: per-prompt paired bootstrap CI of the
    accuracy difference (strata: seed x domain) and the exact McNemar test."""
    runs_a = {s["seed"]: s for s in summaries if s["method"] == a}
    runs_b = {s["seed"]: s for s in summaries if s["method"] == b}
    seeds = sorted(runs_a.keys() & runs_b.keys())
    if not seeds:
        raise ValueError(f"methods {a!r} and {b!r} share no seed")
    xs, ys, strata = [], [], []
    for seed in seeds:
        ra, rb = runs_a[seed], runs_b[seed]
        if ra["eval_domains"] != rb["eval_domains"]:
            raise ValueError(f"seed {seed}: {a!r} and {b!r} were evaluated on different prompts")
        xs += ra["eval_scores"]
        ys += rb["eval_scores"]
        strata += [(seed, d) for d in ra["eval_domains"]]
    out = paired_bootstrap(xs, ys, strata)
    out.update(mcnemar_exact(xs, ys))
    out["seeds"] = len(seeds)
    # the CI above resamples eval prompts: it does not see training-seed variance, so also
    # count the seeds on which a beat b, and give the t interval over seeds
    diffs = [runs_a[s]["final"]["mean"] - runs_b[s]["final"]["mean"] for s in seeds]
    out["seed_wins"] = sum(d > 0 for d in diffs)
    over_seeds = seed_interval(diffs)
    out["seed_low"], out["seed_high"] = over_seeds["low"], over_seeds["high"]
    return out


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def _interval(low: float, high: float) -> str:
    """[low, high], or a dash where it is undefined (one seed)."""
    return "—" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"


def markdown(
    rows: list[dict],
    comparisons: dict[str, dict],
    reference: str,
    warmup: float,
    summaries: list[dict],
) -> str:
    domains = summaries[0]["domains"]
    k = pool_size(summaries)
    lines = [
        f"Final greedy gold accuracy on held-out prompts (mean ± std over seeds; "
        f"{summaries[0]['steps']} steps per run, {len(domains)} domains, K = {k} RMs).",
        "",
        "| method | kind | " + " | ".join(domains) + " | mean | RM forward samples | wall s "
        f"| routing acc. (after {warmup:.0%}) | best-tier routing | routing (first {warmup:.0%}) "
        f"| regret per prompt (first {warmup:.0%}) |",
        "|---|---|" + "---:|" * (len(domains) + 7),
    ]
    for r in sorted(rows, key=lambda r: -r["acc_mean"]):
        name = f"**{r['method']}**" if r["method"] == reference else r["method"]
        cells = [_fmt(r[f"{d}_mean"], r[f"{d}_std"]) for d in domains]
        routing = [
            _fmt(r[f"{key}_mean"], r[f"{key}_std"]) if f"{key}_mean" in r else "—"
            for key in ("routing", "routing_tier", "routing_early", "regret_early")
        ]
        lines.append(
            f"| {name} | {r['kind']} | "
            + " | ".join(cells)
            + f" | {_fmt(r['acc_mean'], r['acc_std'])} "
            f"| {r['rm_forward_samples']:,.0f} | {r['wall_s']:.1f} | " + " | ".join(routing) + " |"
        )
    lines += [
        "",
        f"Routing accuracy: share of prompts sent to the RM with the best held-out pairwise "
        f"accuracy on their domain; chance is 1/K = {1 / k:.2f}. Best-tier routing: to any RM "
        f"within {TIER} of that best (in the built-in world two experts per domain are equally "
        "good, so both count). Regret per prompt: the held-out accuracy the chosen RM gives up "
        "against its domain's best, averaged over the prompts of the first steps (the cold start).",
        "",
        f"Paired comparisons of {reference} (same seeds, same eval prompts): difference in mean "
        "accuracy with a 95% bootstrap CI over eval prompts (stratified by seed and domain), the "
        "exact McNemar test on per-prompt outcomes, and the seeds on which "
        f"{reference} scored higher. The CI and p-value treat the training runs as given; the "
        "last column is a Student t interval of the per-seed differences, which also carries "
        "the training runs' own noise (wide with few seeds: the same recipe with other "
        "posterior draws lands up to 0.08 apart on these worlds).",
        "",
        f"| {reference} vs | difference | 95% CI (eval prompts) | prompts only {reference} / only "
        f"other got right | McNemar p | seeds {reference} ahead | 95% CI over seeds (t) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for other, c in comparisons.items():
        lines.append(
            f"| {other} | {c['diff']:+.3f} | [{c['low']:+.3f}, {c['high']:+.3f}] "
            f"| {c['a_wins']} / {c['b_wins']} | {c['p']:.3g} | {c['seed_wins']}/{c['seeds']} "
            f"| {_interval(c['seed_low'], c['seed_high'])} |"
        )
    return "\n".join(lines) + "\n"


def eval_at_start(summaries: list[dict]) -> bool:
    return all(s["curve"] and s["curve"][0]["step"] == 0 for s in summaries)


def write_results(out: Path, summaries: list[dict], *, reference: str, warmup: float) -> str:
    """results.csv, results.md, accuracy_curves.png, rm_cost.png, arm_selection_<m>.png; with
    several update rules (``algo``) one table per rule and the plots suffixed ``_<algo>``.
    Jobs refused at build time (a feedback that carries nothing for the update) are listed."""
    if not summaries:
        raise ValueError(f"no job summaries found under {out}: did every job fail?")
    out = Path(out)
    ran = [s for s in summaries if not s.get("refused")]
    algos = list(dict.fromkeys(s.get("algo", "") for s in ran))
    sections, csv_rows = [], []
    for algo in algos:
        part = [s for s in ran if s.get("algo", "") == algo]
        suffix = f"_{algo}" if len(algos) > 1 else ""
        rows = method_rows(part, warmup)
        csv_rows += [{"algo": algo, **r} for r in rows]
        methods = [r["method"] for r in rows]
        comparisons = {}
        if reference in methods:
            for other in (m for m in methods if m != reference):
                comparisons[other] = paired(part, reference, other)
        heading = f"## Update rule: {algo}\n\n" if len(algos) > 1 else ""
        goals = ""
        if eval_at_start(part):
            from experiments.goals import goals_markdown  # goals.py imports this module

            goals = goals_markdown(part, reference, warmup)
        goals = f"\nGoals (experiments/goals.py):\n\n{goals}" if goals else ""
        sections.append(heading + markdown(rows, comparisons, reference, warmup, part) + goals)
        plot_curves(part, out / f"accuracy_curves{suffix}.png", reference)
        plot_rm_cost(part, out / f"rm_cost{suffix}.png", reference)
        for r in rows:
            if r["kind"] not in ("ensemble", "gold"):
                name = f"arm_selection{suffix}_{r['method']}.png"
                plot_arm_selection(part, r["method"], out / name)
    refused = sorted(
        {(s.get("algo", ""), s["method"], s["refused"]) for s in summaries if s.get("refused")}
    )
    if refused:
        sections.append(
            "Refused at build time (the feedback carries nothing for the update):\n\n"
            + "\n".join(f"- {algo} / {method}: {why}" for algo, method, why in refused)
            + "\n"
        )
    fields = list(dict.fromkeys(k for r in csv_rows for k in r))
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    table = "\n".join(sections)
    (out / "results.md").write_text(table)
    return table


def main(argv: list[str] | None = None) -> None:
    """Re-aggregate a finished (or partly finished) sweep directory:
    ``python -m experiments.report <sweep dir> [--reference laser] [--warmup 0.2]``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--reference", default="laser")
    parser.add_argument("--warmup", type=float, default=0.2)
    args = parser.parse_args(argv)
    paths = sorted(args.sweep_dir.rglob("summary.json"))
    summaries = [json.loads(p.read_text()) for p in paths]
    print(write_results(args.sweep_dir, summaries, reference=args.reference, warmup=args.warmup))


if __name__ == "__main__":
    main()
