"""EXP3 (Auer, Cesa-Bianchi, Freund & Schapire 2002, "The nonstochastic multiarmed bandit
problem", Fig. 1): the adversarial baseline. Context-free; x is ignored.

    p_k = (1 - gamma) * w_k / sum_j w_j + gamma / K
    on reward r in [0, 1] for the played arm a:  w_a <- w_a * exp(gamma * (r / p_a) / K)

Weights are kept in log space (and shifted by their max) so long runs cannot overflow.
Rewards must lie in [0, 1]: wrap raw feedback in a normaliser (``laser.bandits.normalizers``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laser.bandits.base import (
    SelectorBase,
    check_arm,
    check_positive_int,
    check_reward,
    check_unit_interval,
    make_rng,
)


class EXP3(SelectorBase):
    """EXP3 with exploration rate ``gamma`` in (0, 1]; ``probabilities`` are exact."""

    def __init__(self, num_arms: int, gamma: float = 0.1, seed: int | None = None) -> None:
        self.gamma = check_unit_interval("gamma", gamma, low_open=True)
        self.log_w = np.zeros(check_positive_int("num_arms", num_arms))
        self.rng = make_rng(seed)

    @property
    def num_arms(self) -> int:
        return self.log_w.shape[0]

    def _hparams(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def probabilities(self, x: Any = None) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        return (1.0 - self.gamma) * w / w.sum() + self.gamma / self.num_arms

    def scores(self, x: Any = None) -> np.ndarray:
        """EXP3's index is its selection probability."""
        return self.probabilities(x)

    def select(self, x: Any = None) -> int:
        return int(self.rng.choice(self.num_arms, p=self.probabilities(x)))

    def update(self, arm: int, x: Any, reward: float) -> None:
        arm = check_arm(arm, self.num_arms)
        r = check_reward(reward)
        if not 0.0 <= r <= 1.0:
            raise ValueError(
                f"EXP3 needs rewards in [0, 1], got {r!r}: wrap the feedback in a normaliser "
                "(PercentileNormalizer maps any stream to [0, 1])"
            )
        p = self.probabilities()[arm]
        self.log_w[arm] += self.gamma * (r / p) / self.num_arms
        self.log_w -= self.log_w.max()

    def add_arm(self) -> int:
        """A new arm starts with the largest current weight, so it is explored promptly."""
        self.log_w = np.append(self.log_w, self.log_w.max())
        return self.num_arms - 1

    def remove_arm(self, arm: int) -> None:
        self.log_w = np.delete(self.log_w, self._check_removal(arm))

    def _state(self) -> dict[str, Any]:
        return {"log_w": self.log_w.copy()}

    def _load_state(self, state: dict[str, Any]) -> None:
        log_w = np.asarray(state["log_w"], dtype=np.float64)
        if log_w.ndim != 1 or log_w.size == 0 or not np.all(np.isfinite(log_w)):
            raise ValueError("state_dict log_w must be a non-empty finite 1-D array")
        self.log_w = log_w.copy()
