"""Naive LinUCB, as the LASeR authors' code computes it: every selection inverts every A_k.

O(K d^3) per decision. Kept as the ground truth for tests and the speed baseline for
benchmarks/bandit_speed.py; never use it in training.
"""

from __future__ import annotations

import numpy as np


class NaiveLinUCB:
    """Disjoint LinUCB with a fresh ``np.linalg.inv`` per arm per decision.

    Same model as :class:`laser.bandits.LinUCB`: A_k <- gamma A_k + (1-gamma) l2_lambda I for
    every arm on each update, then A_a += x x^T, b_a += r x for the played arm (b decays too).
    Ties go to the lowest index.
    """

    def __init__(
        self,
        num_arms: int,
        dim: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
    ) -> None:
        self.alpha, self.l2_lambda, self.gamma = alpha, l2_lambda, gamma
        self.A = [l2_lambda * np.eye(dim) for _ in range(num_arms)]
        self.b = [np.zeros(dim) for _ in range(num_arms)]

    def scores(self, x: np.ndarray) -> np.ndarray:
        out = []
        for A, b in zip(self.A, self.b):
            A_inv = np.linalg.inv(A)
            out.append(x @ A_inv @ b + self.alpha * np.sqrt(x @ A_inv @ x))
        return np.array(out)

    def select(self, x: np.ndarray) -> int:
        return int(np.argmax(self.scores(x)))

    def update(self, arm: int, x: np.ndarray, reward: float) -> None:
        eye = np.eye(len(x))
        for k in range(len(self.A)):
            self.A[k] = self.gamma * self.A[k] + (1 - self.gamma) * self.l2_lambda * eye
            self.b[k] = self.gamma * self.b[k]
        self.A[arm] = self.A[arm] + np.outer(x, x)
        self.b[arm] = self.b[arm] + reward * x
