"""LASER's goals for one update rule, measured from a comparison's job summaries (issue 14):

1. LASER >= SFT start + 0.15 mean accuracy;
2. LASER >= best fixed RM + 0.05, with the paired 95% CI above 0;
3. LASER >= mean ensemble + 0.02, at 1/K of its RM cost;
4. LASER gains >= 80% of the oracle router's gain over the start;
5. routing accuracy >= 0.80 after the warm-up on every seed.

Each row states the measured value and whether the goal is met; nothing is rounded into a
pass. "Best fixed RM" is the best of the fixed-RM methods the sweep ran.
"""

from __future__ import annotations

import numpy as np

from experiments.report import TIER, paired, pool_size, routing_accuracy


def _mean(summaries: list[dict], method: str) -> float:
    return float(np.mean([s["final"]["mean"] for s in summaries if s["method"] == method]))


def _start(summaries: list[dict], method: str) -> float:
    """The SFT policy's accuracy: the curves' step-0 point (eval_at_start)."""
    points = [s["curve"][0] for s in summaries if s["method"] == method]
    if not points or points[0]["step"] != 0:
        raise ValueError("the goals need eval_at_start=true (the SFT start of every seed)")
    return float(np.mean([p["eval/accuracy"] for p in points]))


def _cost(summaries: list[dict], method: str) -> float:
    return float(np.mean([s["rm_forward_samples"] for s in summaries if s["method"] == method]))


def goal_rows(summaries: list[dict], reference: str, warmup: float) -> list[dict]:
    """[{goal, measured, met}] for ``reference`` (LASER) against the sweep's baselines."""
    methods = {s["method"]: s["kind"] for s in summaries}
    if reference not in methods:
        return []
    laser, start = _mean(summaries, reference), _start(summaries, reference)
    rows = [
        {
            "goal": "LASER >= SFT start + 0.15",
            "measured": f"{laser:.3f} vs start {start:.3f} ({laser - start:+.3f})",
            "met": laser >= start + 0.15,
        }
    ]
    fixed = [m for m, kind in methods.items() if kind == "fixed"]
    if fixed:
        best = max(fixed, key=lambda m: _mean(summaries, m))
        c = paired(summaries, reference, best)
        rows.append(
            {
                "goal": "LASER >= best fixed RM + 0.05, CI above 0",
                "measured": f"vs {best}: {c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]",
                "met": c["diff"] >= 0.05 and c["low"] > 0,
            }
        )
    ensembles = [m for m, kind in methods.items() if kind == "ensemble"]
    for ens in ensembles:
        c = paired(summaries, reference, ens)
        ratio = _cost(summaries, reference) / _cost(summaries, ens)
        k = pool_size(summaries)
        rows.append(
            {
                "goal": f"LASER >= {ens} + 0.02 at 1/K = {1 / k:.2f} of its RM cost",
                "measured": f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] at "
                f"{ratio:.2f} of its cost",
                "met": c["diff"] >= 0.02 and ratio <= 1 / k + 1e-9,
            }
        )
    oracles = [m for m, kind in methods.items() if kind == "oracle"]
    for oracle in oracles:
        gain, ogain = laser - start, _mean(summaries, oracle) - start
        ratio = gain / ogain if ogain > 0 else None
        share = f"{ratio:.0%}" if ratio is not None else "the oracle gained nothing"
        rows.append(
            {
                "goal": "LASER gains >= 80% of the oracle router's gain"
                + ("" if oracle == "oracle" else f" ({oracle})"),
                "measured": f"{gain:+.3f} of {ogain:+.3f} ({share})",
                "met": ratio is not None and ratio >= 0.8,
            }
        )
    runs = [s for s in summaries if s["method"] == reference]
    strict = [routing_accuracy(s, warmup) for s in runs]
    if all(v is not None for v in strict):
        tiered = [routing_accuracy(s, warmup, TIER) or 0.0 for s in runs]
        rows.append(
            {
                "goal": f"routing accuracy >= 0.80 after {warmup:.0%} warm-up, every seed",
                "measured": "best RM: "
                + ", ".join(f"{v:.2f}" for v in strict)
                + f"; best tier (within {TIER}): "
                + ", ".join(f"{v:.2f}" for v in tiered),
                "met": min(strict) >= 0.8,
            }
        )
    return rows


def goals_markdown(summaries: list[dict], reference: str, warmup: float) -> str:
    rows = goal_rows(summaries, reference, warmup)
    if not rows:
        return ""
    lines = ["| goal | measured | met |", "|---|---|:---:|"]
    lines += [f"| {r['goal']} | {r['measured']} | {'yes' if r['met'] else 'NO'} |" for r in rows]
    return "\n".join(lines) + "\n"
