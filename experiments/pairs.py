"""Compare methods across several sweep directories of one world:

    python -m experiments.pairs REFERENCE DIR [DIR ...] [--warmup 0.2]

Reads every job ``summary.json`` under the directories (the first directory that has a
(rule, method, seed) wins; refused jobs are skipped), then prints per update rule each
method's mean accuracy and best-tier routing, and REFERENCE minus every other method: the
paired 95% bootstrap CI over eval prompts (``experiments.report.paired``) and the seeds on
which REFERENCE scored higher. For studies that add methods to an earlier sweep without
re-running it (the same seeds give the same eval prompts; ``paired`` checks that).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.report import method_rows, paired


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
        cells = []
        for r in rows:
            tier = r.get("routing_tier_mean")
            shown = "" if tier is None else f" (tier {tier:.2f})"  # 0.00 is a value too
            cells.append(f"{r['method']} {r['acc_mean']:.3f}{shown}")
        out.append(f"{algo}: " + ", ".join(cells))
        if reference not in {r["method"] for r in rows}:
            continue
        for r in rows:
            if r["method"] != reference:
                c = paired(runs, reference, r["method"])
                out.append(
                    f"  {reference} - {r['method']}: {c['diff']:+.3f} "
                    f"[{c['low']:+.3f}, {c['high']:+.3f}], {c['seed_wins']}/{c['seeds']}"
                )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--warmup", type=float, default=0.2)
    args = parser.parse_args(argv)
    summaries = load(args.dirs)
    if not summaries:
        raise SystemExit(f"no job summaries under {[str(d) for d in args.dirs]}")
    print("\n".join(lines(summaries, args.reference, args.warmup)))


if __name__ == "__main__":
    main()
