"""The world report: RM x domain accuracy matrix (table, CSV, heatmap) and SFT accuracy."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def format_table(
    matrix: dict[str, dict[str, float]],
    sft: dict[str, float],
    trap: dict[str, dict[str, float]] | None = None,
) -> str:
    domains = list(next(iter(matrix.values())))
    width = max(len(n) for n in list(matrix) + ["SFT policy (gold acc.)"]) + 2
    lines = [
        "pairwise accuracy of each RM on held-out pairs (gold vs the domain's shortcut or a "
        "same-shape corruption), by domain",
        "".ljust(width) + "".join(f"{d:>10}" for d in domains) + f"{'mean':>10}",
    ]
    for name, row in matrix.items():
        mean = sum(row.values()) / len(row)
        lines.append(
            name.ljust(width) + "".join(f"{row[d]:>10.3f}" for d in domains) + f"{mean:>10.3f}"
        )
    lines.append(
        "SFT policy (gold acc.)".ljust(width)
        + "".join(f"{sft[d]:>10.3f}" for d in domains)
        + f"{sft['mean']:>10.3f}"
    )
    if trap:
        lines += ["", "length trap: share of prompts where the RM prefers a longer WRONG answer"]
        for name, row in trap.items():
            lines.append(name.ljust(width) + "".join(f"{row[d]:>10.3f}" for d in domains))
    return "\n".join(lines)


def write_report(
    out: Path,
    matrix: dict[str, dict[str, float]],
    sft: dict[str, float],
    trap: dict[str, dict[str, float]] | None = None,
) -> str:
    """Write report.txt, rm_domain_accuracy.csv, sft_accuracy.csv and rm_domain_accuracy.png."""
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(matrix, sft, trap)
    (out / "report.txt").write_text(table + "\n")
    domains = list(next(iter(matrix.values())))
    with (out / "rm_domain_accuracy.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rm", *domains])
        for name, row in matrix.items():
            writer.writerow([name, *(f"{row[d]:.4f}" for d in domains)])
    with (out / "sft_accuracy.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["domain", "accuracy"])
        for d, v in sft.items():
            writer.writerow([d, f"{v:.4f}"])
    fig, ax = plt.subplots(figsize=(1.4 * len(domains) + 2.5, 0.6 * len(matrix) + 1.6))
    values = [[matrix[n][d] for d in domains] for n in matrix]
    im = ax.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(domains)), domains)
    ax.set_yticks(range(len(matrix)), list(matrix))
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title("RM pairwise accuracy on held-out pairs")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / "rm_domain_accuracy.png", dpi=120)
    plt.close(fig)
    return table
