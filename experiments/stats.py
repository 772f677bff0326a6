"""Paired statistics for comparing two methods run on the same seeds and eval prompts.

Units are (seed, eval prompt) pairs: for a given seed every method sees the same training
batches and is evaluated on the same prompts, so per-prompt outcomes pair up exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest, t


def _cells(strata: Sequence) -> list[np.ndarray]:
    labels = list(strata)
    order = list(dict.fromkeys(labels))
    return [np.array([i for i, s in enumerate(labels) if s == key]) for key in order]


def macro_mean(values: Sequence[float], strata: Sequence) -> float:
    """Mean of the per-stratum means (strata = e.g. (seed, domain): every cell counts equally,
    matching the domain-unweighted accuracy the loop reports)."""
    v = np.asarray(values, dtype=float)
    return float(np.mean([v[idx].mean() for idx in _cells(strata)]))


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    strata: Sequence,
    *,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Macro-mean difference a - b with a percentile bootstrap confidence interval.

    Pairs are resampled with replacement within each stratum (the same indices for a and b,
    which keeps the pairing), and the statistic is the mean over strata of the mean paired
    difference (Efron & Tibshirani 1993, ch. 13; stratified resampling keeps every cell's
    size fixed).
    """
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape or a_.ndim != 1 or len(strata) != len(a_) or len(a_) == 0:
        raise ValueError(
            f"paired_bootstrap needs equal-length 1-D a, b, strata; got {a_.shape}, "
            f"{b_.shape}, {len(strata)}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    diff = a_ - b_
    cells = _cells(strata)
    boot = np.zeros(n_boot)
    for idx in cells:
        draws = rng.integers(0, len(idx), size=(n_boot, len(idx)))
        boot += diff[idx][draws].mean(axis=1)
    boot /= len(cells)
    tail = (1.0 - confidence) / 2.0
    return {
        "diff": float(np.mean([diff[idx].mean() for idx in cells])),
        "low": float(np.quantile(boot, tail)),
        "high": float(np.quantile(boot, 1.0 - tail)),
    }


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Exact McNemar test on paired binary outcomes: among the discordant pairs, is "a right,
    b wrong" as likely as the reverse? Two-sided binomial p-value (McNemar 1947)."""
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape or not np.isin(a_, (0.0, 1.0)).all() or not np.isin(b_, (0, 1)).all():
        raise ValueError("mcnemar_exact needs paired outcomes of equal length, each 0 or 1")
    a_wins = int(((a_ == 1) & (b_ == 0)).sum())
    b_wins = int(((a_ == 0) & (b_ == 1)).sum())
    n = a_wins + b_wins
    p = 1.0 if n == 0 else float(binomtest(a_wins, n, 0.5).pvalue)
    return {"a_wins": a_wins, "b_wins": b_wins, "p": p}


def seed_interval(diffs: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean of per-seed differences a - b (each seed's whole run against the other's) with a
    Student t interval over seeds: mean +- t_{n-1} s / sqrt(n).

    Why beside :func:`paired_bootstrap`: that one resamples eval prompts of fixed runs and
    cannot see training noise; on the built-in worlds the same recipe with other posterior
    draws lands up to 0.08 apart (experiments/results/audit_decay/README.md), far outside
    those intervals. This one is wide with three seeds, as it should be. NaN bounds with one
    seed."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or len(d) == 0 or not np.isfinite(d).all():
        raise ValueError(f"seed_interval needs a non-empty 1-D array of finite values, got {diffs}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = float(d.mean())
    if len(d) < 2:
        return {"diff": mean, "low": float("nan"), "high": float("nan")}
    half = float(t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return {"diff": mean, "low": mean - half, "high": mean + half}
