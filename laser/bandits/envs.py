"""Synthetic contextual bandit environments with known regret, for tests and benchmarks.

``LinearEnv``: K arms with hidden weights theta_k; context x uniform on the unit sphere;
reward = x . theta_k + N(0, noise^2). ``change_every`` makes it drift: every that many steps
the weights rotate (theta_k <- theta_{k+1}), so the best arm for every context changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from laser.bandits.base import Bandit


@dataclass
class LinearEnv:
    num_arms: int = 4
    dim: int = 8
    noise: float = 0.1
    change_every: int | None = None
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)
    theta: np.ndarray = field(init=False, repr=False)  # (K, d)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.theta = self.rng.normal(size=(self.num_arms, self.dim))

    def context(self) -> np.ndarray:
        x = self.rng.normal(size=self.dim)
        return x / np.linalg.norm(x)

    def expected(self, x: np.ndarray) -> np.ndarray:
        """Expected reward of every arm for context x, shape (K,)."""
        return self.theta @ x

    def reward(self, arm: int, x: np.ndarray) -> float:
        return float(self.theta[arm] @ x + self.noise * self.rng.normal())

    def step_end(self, t: int) -> None:
        """Called after step t (0-based); rotates the weights at each change point."""
        if self.change_every and (t + 1) % self.change_every == 0:
            self.theta = np.roll(self.theta, -1, axis=0)


def run_bandit(selector: Bandit, env: LinearEnv, steps: int) -> np.ndarray:
    """Play ``steps`` rounds; return the per-step (pseudo-)regret, shape (steps,)."""
    regret = np.empty(steps)
    for t in range(steps):
        x = env.context()
        arm = selector.select(x)
        means = env.expected(x)
        regret[t] = means.max() - means[arm]
        selector.update(arm, x, env.reward(arm, x))
        env.step_end(t)
    return regret
