"""Ensembles of reward models: the baselines LASER's single-RM selection must beat.

Each ensemble is itself a RewardModel and runs EVERY member on every call: its
``forward_samples`` is the sum over members, which is exactly the K-fold cost LASER avoids.

Members have different scales (a verifier gives 0/1, a classifier any real number), so the
score-combining ensembles first standardise each member's scores:

- ``standardize="running"`` (default): z-score with each member's running mean/std over every
  score it has produced so far, this batch included (Welford). Keeps levels comparable across
  batches.
- ``"batch"``: z-score within the current batch (a batch of one scores 0).
- ``"none"``: raw scores (only when members share a scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from laser.rewards.base import RewardModel, check_batch, score_checked

_EPS = 1e-8


class _RunningStats:
    """Welford mean/variance over all values seen."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: torch.Tensor) -> None:
        for v in values.double().tolist():
            self.count += 1
            delta = v - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (v - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


class _Ensemble:
    """Scores every member (checked), standardises, then ``combine``s the (K, B) matrix."""

    kind = "ensemble"

    def __init__(
        self,
        members: Sequence[RewardModel],
        *,
        standardize: str = "running",
        name: str | None = None,
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 reward models, got {len(members)}")
        if standardize not in ("running", "batch", "none"):
            raise ValueError(
                f"standardize must be 'running', 'batch' or 'none', got {standardize!r}"
            )
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"ensemble members need distinct names, got {names}")
        self.members = list(members)
        self.standardize = standardize
        self.name = name or f"{self.kind}({','.join(names)})"
        self.forward_samples = 0
        self._stats = [_RunningStats() for _ in members]

    def member_scores(
        self, prompts: list[str], completions: list[str], **metadata: Any
    ) -> torch.Tensor:
        """Raw scores of every member, (K, B)."""
        check_batch(self.name, prompts, completions)
        rows = []
        for member in self.members:
            # counted when called: a member that fails (e.g. returns NaN) still spent compute
            self.forward_samples += len(prompts)
            rows.append(score_checked(member, prompts, completions, **metadata))
        return torch.stack(rows)

    def _standardized(self, raw: torch.Tensor) -> torch.Tensor:
        if self.standardize == "none":
            return raw
        if self.standardize == "batch":
            mean = raw.mean(dim=1, keepdim=True)
            std = raw.std(dim=1, unbiased=False, keepdim=True)
            return torch.where(
                std > _EPS, (raw - mean) / std.clamp_min(_EPS), torch.zeros_like(raw)
            )
        out = torch.empty_like(raw)
        for k, stats in enumerate(self._stats):
            stats.update(raw[k])
            std = stats.std
            out[k] = (raw[k] - stats.mean) / std if std > _EPS else torch.zeros_like(raw[k])
        return out

    def combine(self, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        check_batch(self.name, prompts, completions)
        if not prompts:
            return torch.empty(0)
        raw = self.member_scores(prompts, completions, **metadata)
        return self.combine(self._standardized(raw), prompts).float()

    def state_dict(self) -> dict[str, Any]:
        return {"stats": [(s.count, s.mean, s.m2) for s in self._stats]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["stats"]) != len(self._stats):
            raise ValueError(
                f"state has {len(state['stats'])} members, ensemble has {len(self._stats)}"
            )
        for s, (count, mean, m2) in zip(self._stats, state["stats"]):
            s.count, s.mean, s.m2 = int(count), float(mean), float(m2)


class MeanEnsemble(_Ensemble):
    """Mean of the members' standardised scores: the LASeR paper's "RM score ensemble"."""

    kind = "mean"

    def combine(self, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        return z.mean(dim=0)


class MinEnsemble(_Ensemble):
    """Worst case over members (Coste et al. 2023, "Reward model ensembles help mitigate
    overoptimization", WCO): a sample is only as good as its harshest judge."""

    kind = "min"

    def combine(self, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        return z.min(dim=0).values


class UncertaintyEnsemble(_Ensemble):
    """Mean minus ``lam`` times the members' standard deviation (uncertainty-weighted, after
    Coste et al. 2023, UWO): disagreement between RMs lowers the reward."""

    kind = "mean_minus_std"

    def __init__(self, members: Sequence[RewardModel], lam: float = 1.0, **kwargs: Any) -> None:
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        self.lam = float(lam)
        super().__init__(members, **kwargs)

    def combine(self, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        return z.mean(dim=0) - self.lam * z.std(dim=0, unbiased=False)


class AgreementEnsemble(_Ensemble):
    """Majority agreement on pairwise preferences within each prompt's samples.

    For every pair (i, j) of samples with the same prompt, each member votes for the one it
    scores higher (a tie is half a vote each); the pair goes to the majority (a split vote is a
    draw, half a win each). A sample's score is its share of pairwise wins among its prompt's
    samples, in [0, 1]; a prompt with a single sample scores 0.5. Scale-free, so members are not
    standardised.
    """

    kind = "agreement"

    def __init__(self, members: Sequence[RewardModel], **kwargs: Any) -> None:
        kwargs.setdefault("standardize", "none")
        super().__init__(members, **kwargs)

    def combine(self, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p, []).append(i)
        out = torch.full((len(prompts),), 0.5, dtype=torch.float64)
        for idx in groups.values():
            if len(idx) < 2:
                continue
            s = z[:, idx].double()  # (K, n)
            votes = (s[:, :, None] > s[:, None, :]).double().sum(0)  # (n, n): members preferring i
            votes += 0.5 * (s[:, :, None] == s[:, None, :]).double().sum(0)
            half = z.shape[0] / 2.0
            wins = (votes > half).double() + 0.5 * (votes == half).double()
            wins.fill_diagonal_(0.0)
            out[idx] = wins.sum(dim=1) / (len(idx) - 1)
        return out
