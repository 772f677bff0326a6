"""Off-policy evaluation of RM selectors from logged decisions.

A LASER run with ``loop.log_decisions=true`` writes ``decisions.jsonl``: per decision the
context x_t, the arm a_t the logging selector chose, its propensity p_t = pi_0(a_t | x_t) and
the (normalised) feedback r_t the bandit received. For a target policy pi (any selector's
``probabilities``, evaluated without updating it) the value V(pi) = E_x[sum_a pi(a|x) r(x,a)]
is estimated by

- IPS (Horvitz & Thompson 1952):      V = 1/n sum_t w_t r_t,          w_t = pi(a_t|x_t) / p_t
- self-normalised IPS (Swaminathan & Joachims 2015):  V = sum_t w_t r_t / sum_t w_t
- doubly robust (Dudik, Langford & Li 2011):
      V = 1/n sum_t [ sum_a pi(a|x_t) q(x_t, a) + w_t (r_t - q(x_t, a_t)) ]
  with q a per-arm ridge regression of r on x fitted on the log itself.

All three need the logging policy to give every arm the target may choose a positive
probability (a deterministic logger such as LinUCB gives p_t = 1 for its own choice and 0
for the rest: then only targets that agree with it can be evaluated, and ``ess`` shows it).
The standard errors are those of the per-decision terms (n > 1); SNIPS's is the delta-method
one. Rewards from a non-stationary run (the policy improves as it trains) are treated as
i.i.d.: the estimate is of the average feedback the target would have collected on the
logged contexts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class DecisionLog:
    contexts: np.ndarray  # (n, d)
    arms: np.ndarray  # (n,) int
    propensities: np.ndarray  # (n,)
    rewards: np.ndarray  # (n,)

    def __post_init__(self) -> None:
        n = len(self.arms)
        if n == 0:
            raise ValueError("the decision log is empty")
        shapes = (self.contexts.shape[0], len(self.propensities), len(self.rewards))
        if shapes != (n, n, n) or self.contexts.ndim != 2:
            raise ValueError(f"decision log columns disagree in length: {n} arms, {shapes}")
        if not (np.isfinite(self.propensities).all() and (self.propensities > 0).all()):
            raise ValueError("propensities must be finite and > 0 (the logged arm was chosen)")
        if not np.isfinite(self.rewards).all() or not np.isfinite(self.contexts).all():
            raise ValueError("the decision log holds NaN/inf rewards or contexts")

    @property
    def num_arms(self) -> int:
        return int(self.arms.max()) + 1


def read_decisions(path: str | Path) -> DecisionLog:
    """Load ``decisions.jsonl`` (a run directory or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "decisions.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"no decision log at {path}: run laser-train with loop.log_decisions=true"
        )
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((row["context"], int(row["arm"]), float(row["propensity"]), row["reward"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{n}: malformed decision record ({exc})") from exc
    rows = [r for r in rows if r[3] is not None]  # decisions whose feedback never came
    if not rows:
        raise ValueError(f"{path} holds no decision with feedback")
    x, a, p, r = zip(*rows)
    return DecisionLog(
        np.asarray(x, float), np.asarray(a), np.asarray(p, float), np.asarray(r, float)
    )


def target_probabilities(target: Any, contexts: np.ndarray, num_arms: int) -> np.ndarray:
    """(n, K) probabilities of a target selector on every logged context (no updates)."""
    probs = np.stack([np.asarray(target.probabilities(x), float) for x in contexts])
    if probs.shape[1] != num_arms:
        raise ValueError(f"target has {probs.shape[1]} arms, the log {num_arms}")
    return probs


def ridge_q(log: DecisionLog, num_arms: int, l2_lambda: float = 1.0) -> np.ndarray:
    """(n, K) per-arm ridge regression of reward on context, fitted on the log (the DR
    direct-method part). An arm never logged predicts the mean logged reward."""
    x = np.hstack([log.contexts, np.ones((len(log.arms), 1))])  # with an intercept
    q = np.full((len(log.arms), num_arms), log.rewards.mean())
    for k in range(num_arms):
        mine = log.arms == k
        if mine.any():
            a = x[mine].T @ x[mine] + l2_lambda * np.eye(x.shape[1])
            q[:, k] = x @ np.linalg.solve(a, x[mine].T @ log.rewards[mine])
    return q


def _summary(terms: np.ndarray) -> tuple[float, float]:
    n = len(terms)
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(terms.mean()), se


def evaluate(log: DecisionLog, target_probs: np.ndarray, l2_lambda: float = 1.0) -> dict:
    """IPS, SNIPS and DR estimates (value, standard error) and the effective sample size."""
    n, k = target_probs.shape
    if n != len(log.arms):
        raise ValueError(f"target probabilities for {n} decisions, log has {len(log.arms)}")
    rows = np.arange(n)
    w = target_probs[rows, log.arms] / log.propensities
    ips, ips_se = _summary(w * log.rewards)
    total = w.sum()
    if total > 0:
        snips = float((w * log.rewards).sum() / total)
        snips_se = float(math.sqrt(((w * (log.rewards - snips)) ** 2).sum()) / total)
    else:
        snips, snips_se = float("nan"), float("nan")
    q = ridge_q(log, k, l2_lambda)
    dr_terms = (target_probs * q).sum(1) + w * (log.rewards - q[rows, log.arms])
    dr, dr_se = _summary(dr_terms)
    ess = float(total**2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return {
        "ips": ips,
        "ips_se": ips_se,
        "snips": snips,
        "snips_se": snips_se,
        "dr": dr,
        "dr_se": dr_se,
        "ess": ess,
        "n": n,
    }


def report(log: DecisionLog, target: Any, name: str, l2_lambda: float = 1.0) -> str:
    """A small text table: the target's estimates next to the logging policy's own value."""
    est = evaluate(log, target_probabilities(target, log.contexts, log.num_arms), l2_lambda)
    logged, logged_se = _summary(log.rewards)
    lines = [
        f"off-policy value of {name} on {est['n']} logged decisions "
        f"(effective sample size {est['ess']:.0f})",
        f"  {'estimator':<10} {'value':>8} {'s.e.':>8}",
        f"  {'IPS':<10} {est['ips']:8.4f} {est['ips_se']:8.4f}",
        f"  {'SNIPS':<10} {est['snips']:8.4f} {est['snips_se']:8.4f}",
        f"  {'DR':<10} {est['dr']:8.4f} {est['dr_se']:8.4f}",
        f"  {'logged':<10} {logged:8.4f} {logged_se:8.4f}   (the logging selector, on-policy)",
    ]
    return "\n".join(lines)
