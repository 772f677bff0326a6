"""Reward models made worse on purpose, for robustness experiments (issue 16, LASeR Sec. 5):

- ``NoisyReward``: the wrapped RM's scores plus Gaussian noise of standard deviation
  ``sigma`` in units of the RM's own score spread (LASeR adds sigma = 0.3 to RM scores);
- ``TurnsBad``: the wrapped RM until a given training step, its negated scores afterwards
  (an RM that breaks mid-run: a bad checkpoint swapped in, a silent data bug).

Both count the wrapped RM's forward samples and keep its name, so a run reports them like
the RM they stand for.
"""

from __future__ import annotations

from typing import Any

import torch

from laser.rewards.base import RewardModel, check_scores


class _Wrapper:
    def __init__(self, rm: RewardModel) -> None:
        self.rm, self.name = rm, rm.name

    @property
    def forward_samples(self) -> int:
        return int(getattr(self.rm, "forward_samples", 0))

    def _inner(self, prompts: list[str], completions: list[str], **metadata: Any):
        return check_scores(
            self.name, self.rm.score(prompts, completions, **metadata), len(prompts)
        )


class NoisyReward(_Wrapper):
    """``rm``'s scores + N(0, (sigma * spread)^2), spread = the running std of ``rm``'s scores
    (1 until two scores are seen), so sigma means the same for RMs of any scale."""

    def __init__(self, rm: RewardModel, sigma: float, seed: int = 0) -> None:
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        super().__init__(rm)
        self.sigma = float(sigma)
        self.generator = torch.Generator().manual_seed(seed)
        self._n, self._mean, self._m2 = 0, 0.0, 0.0  # Welford running moments of the scores

    def _spread(self, scores: torch.Tensor) -> float:
        for value in scores.tolist():
            self._n += 1
            delta = value - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (value - self._mean)
        return (self._m2 / self._n) ** 0.5 if self._n > 1 and self._m2 > 0 else 1.0

    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        scores = self._inner(prompts, completions, **metadata)
        noise = torch.randn(len(scores), generator=self.generator)
        return scores + self.sigma * self._spread(scores) * noise


class TurnsBad(_Wrapper):
    """``rm`` until training step ``after_step``, its negated scores from then on. The step
    comes from the ``step`` column the LASER loop passes with every RM call."""

    def __init__(self, rm: RewardModel, after_step: int) -> None:
        if after_step < 0:
            raise ValueError(f"after_step must be >= 0, got {after_step}")
        super().__init__(rm)
        self.after_step = int(after_step)

    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        scores = self._inner(prompts, completions, **metadata)
        if "step" not in metadata:
            raise ValueError(f"TurnsBad({self.name!r}) needs the loop's `step` column")
        bad = torch.tensor([int(s) > self.after_step for s in metadata["step"]])
        return torch.where(bad, -scores, scores)
