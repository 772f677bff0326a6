"""Compare methods across several sweep directories of one world:

    python -m experiments.pairs REFERENCE DIR [DIR ...] [--warmup 0.2]

Reads every job ``summary.json`` under the directories (the first directory that has a
(rule, method, seed) wins; refused jobs are skipped), then prints per update rule each
method's mean accuracy, best-tier routing and RM cost (a share of ``mean_ensemble``'s, when
the sweeps ran it), and REFERENCE minus every other method: the
paired 95% bootstrap CI over eval prompts (``experiments.report.paired``) and the seeds on
which REFERENCE scored higher, and the t interval of the per-seed differences (it carries
the training runs' noise). For studies that add methods to an earlier sweep without
re-running it (the same seeds give the same eval prompts; ``paired`` checks that).

``--reseeded SUFFIX`` counts a method named ``X<SUFFIX>`` (e.g. ``laser_reseed``: the same
recipe with other posterior draws, ``bandit.seed=1000``) as more runs of ``X``, at seed
``seed + 1000``, so a recipe's two sets of runs pair with another recipe's two sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.report import method_rows, paired

RESEED_OFFSET = 1000  # a reseeded run's seed: its run seed + this (compare.yaml's bandit.seed)


def reseeded(summaries: list[dict], suffix: str) -> list[dict]:
    """Runs of ``X<suffix>`` as runs of ``X`` at seed + RESEED_OFFSET; others unchanged."""
    out = []
    for s in summaries:
        if s["method"].endswith(suffix):
            s = {**s, "method": s["method"][: -len(suffix)], "seed": s["seed"] + RESEED_OFFSET}
        out.append(s)
    return out


def load(dirs: list[Path]) -> list[dict]:
    """The job summaries under ``dirs``, one per (rule, method, seed), first directory first."""
    seen, out = set(), []
    for d in dirs:
        if not d.is_dir():
            raise ValueError(f"{d} is not a directory")
        for path in sorted(d.rglob("summary.json")):
            s = json.loads(path.read_text())
            key = (s["algo"], s["method"], s["seed"])
            if "refused" not in s and key not in seen:
                seen.add(key)
                out.append(s)
    return out


def lines(summaries: list[dict], reference: str, warmup: float) -> list[str]:
    out = []
    for algo in sorted({s["algo"] for s in summaries}):
        runs = [s for s in summaries if s["algo"] == algo]
        rows = sorted(method_rows(runs, warmup), key=lambda r: -r["acc_mean"])
        # RM forward samples as a share of the ensemble's, where the sweeps ran it
        ensemble = next((r for r in rows if r["method"] == "mean_ensemble"), None)
        cells = []
        for r in rows:
            tier = r.get("routing_tier_mean")
            notes = [] if tier is None else [f"tier {tier:.2f}"]  # 0.00 is a value too
            if ensemble is not None and r is not ensemble:
                notes.append(f"cost {r['rm_forward_samples'] / ensemble['rm_forward_samples']:.2f}")
            shown = f" ({', '.join(notes)})" if notes else ""
            cells.append(f"{r['method']} {r['acc_mean']:.3f}{shown}")
        out.append(f"{algo}: " + ", ".join(cells))
        if reference not in {r["method"] for r in rows}:
            continue
        for r in rows:
            if r["method"] != reference:
                c = paired(runs, reference, r["method"])
                out.append(
                    f"  {reference} - {r['method']}: {c['diff']:+.3f} "
                    f"[{c['low']:+.3f}, {c['high']:+.3f}], {c['seed_wins']}/{c['seeds']}, "
                    f"over seeds [{c['seed_low']:+.3f}, {c['seed_high']:+.3f}]"
                )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--reseeded", metavar="SUFFIX", help="X<SUFFIX> counts as runs of X")
    args = parser.parse_args(argv)
    summaries = load(args.dirs)
    if args.reseeded:
        summaries = reseeded(summaries, args.reseeded)
    if not summaries:
        raise SystemExit(f"no job summaries under {[str(d) for d in args.dirs]}")
    print("\n".join(lines(summaries, args.reference, args.warmup)))


if __name__ == "__main__":
    main()
