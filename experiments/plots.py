"""The comparison's figures (matplotlib, headless)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _by_method(summaries: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        out[s["method"]].append(s)
    return out


def _style(method: str, kind: str, reference: str, index: int) -> dict:
    """The reference in bold black, the oracle dashed; 20 distinct colours for the rest."""
    if method == reference:
        return {"linewidth": 2.8, "color": "black", "zorder": 5}
    color = plt.get_cmap("tab20")(index % 20)
    if kind == "oracle":
        return {"linestyle": "--", "linewidth": 1.5, "color": color}
    return {"linewidth": 1.2, "alpha": 0.85, "color": color}


def _finish(fig, ax, path: Path, ylabel: str, title: str) -> None:
    """Labels, legend, save, close: the line plots' common tail."""
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(summaries: list[dict], path: Path, reference: str) -> None:
    """Mean eval accuracy (over seeds) against training step, one line per method."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (method, runs) in enumerate(_by_method(summaries).items()):
        steps = [p["step"] for p in runs[0]["curve"]]
        acc = np.array([[p["eval/accuracy"] for p in r["curve"]] for r in runs])
        mean = acc.mean(axis=0)
        ax.plot(steps, mean, label=method, **_style(method, runs[0]["kind"], reference, i))
        if method == reference and len(runs) > 1:
            std = acc.std(axis=0, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, color="black", alpha=0.12)
    _finish(fig, ax, path, "gold accuracy (greedy, held-out)", "Accuracy (mean over seeds)")


def plot_rm_cost(summaries: list[dict], path: Path, reference: str) -> None:
    """Cumulative RM forward samples against step."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (method, runs) in enumerate(_by_method(summaries).items()):
        cost = np.mean([r["cost"] for r in runs], axis=0)
        steps = np.arange(1, len(cost) + 1)
        ax.plot(steps, cost, label=method, **_style(method, runs[0]["kind"], reference, i))
    _finish(fig, ax, path, "RM forward samples (cumulative)", "Reward-model compute")


def plot_arm_selection(summaries: list[dict], method: str, path: Path, windows: int = 10) -> None:
    """Per domain, the share of its prompts sent to each RM, in ``windows`` spans of training
    (summed over seeds); the RM best on the domain is marked in the panel title."""
    runs = [s for s in summaries if s["method"] == method]
    domains, pool, steps = runs[0]["domains"], runs[0]["pool"], len(runs[0]["routes"])
    edges = np.linspace(0, steps, min(windows, steps) + 1).astype(int)
    fig, axes = plt.subplots(1, len(domains), figsize=(3.2 * len(domains), 3.4), sharey=True)
    for ax, domain in zip(np.atleast_1d(axes), domains):
        counts = np.zeros((len(edges) - 1, len(pool)))
        for r in runs:
            for w in range(len(edges) - 1):
                for step in r["routes"][edges[w] : edges[w + 1]]:
                    for key, n in step.items():
                        d, rm = key.split("|", 1)
                        if d == domain:
                            counts[w, pool.index(rm)] += n
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        mids = (edges[:-1] + edges[1:]) / 2
        ax.stackplot(mids, share.T, labels=pool, alpha=0.85)
        ax.set_title(f"{domain} (best: {runs[0]['best_rm'][domain]})", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("share of the domain's prompts")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{method}: which RM scored each domain's prompts ({len(runs)} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
