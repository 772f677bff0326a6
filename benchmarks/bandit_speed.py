"""Select+update latency of LinUCB: ours (Sherman-Morrison) vs naive per-decision inversion
(what the LASeR code does) vs MABWiser's LinUCB (one inverse per update), if installed.

    python benchmarks/bandit_speed.py                 # K=4, d = 64, 768, 4096, CPU
    python benchmarks/bandit_speed.py --device cuda   # ours on the GPU

Prints a table and writes benchmarks/results/bandit_speed.csv (with the command and machine).
Target (issue 2): at d=4096, >= 150x faster than naive in the same run and < 50 ms per
select+update on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _common import RESULTS, machine, write_csv
from laser.bandits import LinUCB
from laser.bandits.reference import NaiveLinUCB


def _time_per_step(step: Callable[[np.ndarray, float], None], contexts, rewards, reps) -> float:
    """Median wall time (ms) of ``step`` over ``reps`` calls, after one warm-up call."""
    step(contexts[0], rewards[0])
    times = []
    for i in range(reps):
        start = time.perf_counter()
        step(contexts[i + 1], rewards[i + 1])
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _warm(bandit, contexts, rewards, n):
    """Give every arm some history so the timed steps are typical, not prior-only."""
    for i in range(n):
        bandit.update(i % 4, contexts[i], rewards[i])


def bench_ours(K, d, contexts, rewards, reps, device):
    bandit = LinUCB(K, d, alpha=0.1, device=device)
    _warm(bandit, contexts, rewards, 8)

    def step(x, r):
        bandit.update(bandit.select(x), x, r)

    return _time_per_step(step, contexts, rewards, reps)


def bench_naive(K, d, contexts, rewards, reps):
    bandit = NaiveLinUCB(K, d, alpha=0.1)
    _warm(bandit, contexts, rewards, 8)

    def step(x, r):
        bandit.update(bandit.select(x), x, r)

    return _time_per_step(step, contexts, rewards, reps)


def bench_mabwiser(K, d, contexts, rewards, reps):
    try:
        from mabwiser.mab import MAB, LearningPolicy
    except ImportError:
        return None
    policy = LearningPolicy.LinUCB(alpha=0.1, l2_lambda=1.0)
    mab = MAB(arms=list(range(K)), learning_policy=policy)
    mab.fit(decisions=[i % K for i in range(8)], rewards=rewards[:8], contexts=contexts[:8])

    def step(x, r):
        arm = mab.predict(x[None, :])
        mab.partial_fit(decisions=[arm], rewards=[r], contexts=x[None, :])

    return _time_per_step(step, contexts, rewards, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 768, 4096])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS / "bandit_speed.csv"))
    args = parser.parse_args()

    print(f"machine: {machine()}")
    rows = []
    for d in args.dims:
        rng = np.random.default_rng(d)
        contexts = rng.normal(size=(300, d)) / np.sqrt(d)
        rewards = rng.uniform(size=300)
        # fewer repetitions where one naive step takes seconds
        reps_ours, reps_naive = (200, 50) if d <= 128 else (50, 5) if d <= 1024 else (20, 2)
        ours = bench_ours(args.arms, d, contexts, rewards, reps_ours, args.device)
        naive = bench_naive(args.arms, d, contexts, rewards, reps_naive)
        mabw = bench_mabwiser(args.arms, d, contexts, rewards, reps_naive)
        for impl, ms in [("laser", ours), ("naive", naive), ("mabwiser", mabw)]:
            if ms is None:
                continue
            rows.append(
                {
                    "impl": impl,
                    "device": args.device if impl == "laser" else "cpu",
                    "arms": args.arms,
                    "dim": d,
                    "ms_per_select_update": round(ms, 4),
                    "speedup_of_laser": round(ms / ours, 1),
                }
            )
    header = ("impl", "device", "K", "d", "ms/step", "laser is x faster")
    print("\n{:>9} {:>6} {:>3} {:>5} {:>10} {:>18}".format(*header))
    for r in rows:
        print(
            f"{r['impl']:>9} {r['device']:>6} {r['arms']:>3} {r['dim']:>5} "
            f"{r['ms_per_select_update']:>10.3f} {r['speedup_of_laser']:>18.1f}"
        )
    write_csv(Path(args.out), rows)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
