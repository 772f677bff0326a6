"""Cumulative regret of every selector on a synthetic linear contextual bandit, stationary
and drifting (the weights rotate every --change-every steps, so every context's best arm
changes).

    python benchmarks/bandit_regret.py                      # T=2000, K=4, d=8, 5 seeds

Writes benchmarks/results/bandit_regret.csv (mean and std of cumulative regret over seeds at
every 100 steps) and benchmarks/results/bandit_regret.png, and prints the final figures.
EXP3 and UCB1 assume rewards in [0, 1]: they get the LASeR percentile normaliser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import RESULTS, machine, write_csv  # noqa: E402
from laser.bandits import (  # noqa: E402
    EXP3,
    UCB1,
    EpsilonGreedy,
    LinTS,
    LinUCB,
    NormalizedBandit,
    PercentileNormalizer,
    RandomArm,
    RoundRobin,
)
from laser.bandits.envs import LinearEnv, run_bandit  # noqa: E402


def selectors(K: int, d: int, seed: int) -> dict:
    return {
        "LinUCB": LinUCB(K, d, alpha=0.5),
        "LinUCB gamma=0.98": LinUCB(K, d, alpha=0.5, gamma=0.98),
        "LinTS": LinTS(K, d, v=0.3, seed=seed),
        "EpsilonGreedy (ctx)": EpsilonGreedy(K, epsilon=0.05, dim=d, seed=seed),
        "UCB1": NormalizedBandit(UCB1(K), PercentileNormalizer()),
        "EXP3": NormalizedBandit(EXP3(K, gamma=0.1, seed=seed), PercentileNormalizer()),
        "RandomArm": RandomArm(K, seed=seed),
        "RoundRobin": RoundRobin(K),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--change-every", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "bandit_regret.csv"))
    args = parser.parse_args()
    print(f"machine: {machine()}")

    envs = {"stationary": None, "drifting": args.change_every}
    curves: dict[tuple[str, str], np.ndarray] = {}  # (env, selector) -> (seeds, steps)
    for env_name, change in envs.items():
        per_seed: dict[str, list[np.ndarray]] = {}
        for seed in range(args.seeds):
            for name, sel in selectors(args.arms, args.dim, seed).items():
                env = LinearEnv(args.arms, args.dim, noise=0.1, change_every=change, seed=seed)
                per_seed.setdefault(name, []).append(run_bandit(sel, env, args.steps).cumsum())
        for name, runs in per_seed.items():
            curves[(env_name, name)] = np.stack(runs)

    rows = []
    for (env_name, name), runs in curves.items():
        for t in range(99, args.steps, 100):
            rows.append(
                {
                    "env": env_name,
                    "selector": name,
                    "step": t + 1,
                    "regret_mean": round(float(runs[:, t].mean()), 3),
                    "regret_std": round(float(runs[:, t].std()), 3),
                }
            )
    out = Path(args.out)
    write_csv(out, rows)

    print(f"\ncumulative regret at T={args.steps} (mean +- std over {args.seeds} seeds)")
    print(f"{'selector':>22} {'stationary':>18} {'drifting':>18}")
    for name in selectors(args.arms, args.dim, 0):
        cells = [curves[(e, name)][:, -1] for e in envs]
        print(f"{name:>22} " + " ".join(f"{c.mean():>10.1f} +- {c.std():>5.1f}" for c in cells))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    for ax, env_name in zip(axes, envs):
        for name in selectors(args.arms, args.dim, 0):
            runs = curves[(env_name, name)]
            mean, std = runs.mean(0), runs.std(0)
            steps = np.arange(1, args.steps + 1)
            ax.plot(steps, mean, label=name)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
        change = envs[env_name]
        title = env_name if change is None else f"{env_name} (change every {change})"
        ax.set(title=title, xlabel="step", ylabel="cumulative regret")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=120)
    print(f"\nwrote {out} and {png}")


if __name__ == "__main__":
    main()
