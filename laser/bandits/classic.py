"""Context-free estimates and the classic rules built on them: epsilon-greedy and UCB1.

``EpsilonGreedy`` becomes contextual when given ``dim`` (greedy on the ridge estimate
x . theta_k, the same estimator LinUCB uses), which makes it a fair "LinUCB without the
confidence bonus" ablation. UCB1 is context-free and ignores x.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from laser.bandits.base import (
    EstimatorSelector,
    argmax_ties,
    check_arm,
    check_context,
    check_positive,
    check_positive_int,
    check_reward,
    check_unit_interval,
    check_update_magnitude,
    make_rng,
)
from laser.bandits.ridge import RidgeArms


class MeanArms:
    """Per-arm (optionally discounted) sample means.

    n_k = sum_s gamma^(t-s), s_k = sum_s gamma^(t-s) r_s over the updates s of arm k.

    With gamma < 1 this is the estimator of discounted UCB (Garivier & Moulines 2011): every
    update call ticks the clock for every arm.
    """

    def __init__(self, num_arms: int, gamma: float = 1.0) -> None:
        self.gamma = check_unit_interval("gamma", gamma, low_open=True)
        self.counts = np.zeros(check_positive_int("num_arms", num_arms))
        self.sums = np.zeros(num_arms)

    @property
    def num_arms(self) -> int:
        return self.counts.shape[0]

    def means(self) -> np.ndarray:
        """Sample means; an arm never played has mean 0."""
        safe = np.where(self.counts > 0, self.counts, 1.0)
        return np.where(self.counts > 0, self.sums / safe, 0.0)

    def update(self, k: int, reward: float) -> None:
        self.counts *= self.gamma
        self.sums *= self.gamma
        self.counts[k] += 1.0
        self.sums[k] += reward

    def add_arm(self) -> int:
        self.counts = np.append(self.counts, 0.0)
        self.sums = np.append(self.sums, 0.0)
        return self.num_arms - 1

    def remove_arm(self, k: int) -> None:
        self.counts = np.delete(self.counts, k)
        self.sums = np.delete(self.sums, k)

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.copy(), "sums": self.sums.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        counts, sums = np.asarray(state["counts"], float), np.asarray(state["sums"], float)
        if counts.shape != sums.shape or counts.ndim != 1:
            raise ValueError("state_dict counts/sums must be 1-D arrays of equal length")
        self.counts, self.sums = counts.copy(), sums.copy()


class EpsilonGreedy(EstimatorSelector):
    """With probability epsilon a uniformly random arm, otherwise the greedy one.

    Greedy = highest sample mean (``dim=None``) or highest ridge estimate x . theta_k
    (``dim`` given). Greedy ties are broken uniformly at random. ``probabilities`` is exact:
    epsilon / K + (1 - epsilon) / |ties| on the greedy arms.
    """

    def __init__(
        self,
        num_arms: int,
        epsilon: float = 0.1,
        dim: int | None = None,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        seed: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.epsilon = check_unit_interval("epsilon", epsilon)
        self.dim = dim
        self.estimator: MeanArms | RidgeArms
        if dim is None:
            self.estimator = MeanArms(num_arms, gamma)
        else:
            self.estimator = RidgeArms(num_arms, dim, l2_lambda, gamma, device=device)
        self.rng = make_rng(seed)

    def _hparams(self) -> dict[str, Any]:
        extra = {} if self.dim is None else {"l2_lambda": self.estimator.l2_lambda}
        return {"epsilon": self.epsilon, "dim": self.dim, "gamma": self.estimator.gamma, **extra}

    def scores(self, x: Any = None) -> np.ndarray:
        """The greedy estimates (sample means, or x . theta_k when contextual)."""
        if isinstance(self.estimator, MeanArms):
            return self.estimator.means()
        return self.estimator.predict(check_context(x, self.dim))[0]

    def select(self, x: Any = None) -> int:
        values = self.scores(x)
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_arms))
        return argmax_ties(values, self.rng)

    def probabilities(self, x: Any = None) -> np.ndarray:
        values = self.scores(x)
        greedy = values == values.max()
        return self.epsilon / self.num_arms + (1.0 - self.epsilon) * greedy / greedy.sum()

    def update(self, arm: int, x: Any, reward: float) -> None:
        arm = check_arm(arm, self.num_arms)
        r = check_reward(reward)
        if isinstance(self.estimator, MeanArms):
            self.estimator.update(arm, r)
        else:
            xv = check_context(x, self.dim)
            check_update_magnitude(xv, r)
            self.estimator.update(arm, xv, r)


class UCB1(EstimatorSelector):
    """UCB1 (Auer, Cesa-Bianchi & Fischer 2002), context-free; discounted UCB when gamma < 1.

        score_k = mean_k + c * sqrt(ln(n) / n_k),   n = sum_k n_k

    c = sqrt(2) is the original UCB1 (rewards in [0, 1]; use a normaliser). An arm never
    played scores +inf, so each arm is tried once, lowest index first. Deterministic: ties go
    to the lowest index; ``probabilities`` is one-hot.
    """

    def __init__(self, num_arms: int, c: float = math.sqrt(2.0), gamma: float = 1.0) -> None:
        self.c = check_positive("c", c, allow_zero=True)
        self.estimator = MeanArms(num_arms, gamma)

    def _hparams(self) -> dict[str, Any]:
        return {"c": self.c, "gamma": self.estimator.gamma}

    def scores(self, x: Any = None) -> np.ndarray:
        counts = self.estimator.counts
        total = counts.sum()
        log_total = math.log(total) if total > 1 else 0.0
        bonus = self.c * np.sqrt(log_total / np.where(counts > 0, counts, 1.0))
        return np.where(counts > 0, self.estimator.means() + bonus, np.inf)

    def select(self, x: Any = None) -> int:
        return argmax_ties(self.scores(x), None)

    def probabilities(self, x: Any = None) -> np.ndarray:
        probs = np.zeros(self.num_arms)
        probs[self.select(x)] = 1.0
        return probs

    def update(self, arm: int, x: Any, reward: float) -> None:
        arm = check_arm(arm, self.num_arms)
        self.estimator.update(arm, check_reward(reward))
