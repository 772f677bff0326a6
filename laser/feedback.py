"""Bandit feedback: what the selector learns from after a policy update with the chosen RM.

Each signal has ``before(loop, rm_name)`` (measured before the update; may return None) and
``after(loop, rm_name, stats, before) -> float | None`` (the raw feedback; None when the update
taught nothing, e.g. DPO found no preference pair). The loop passes the raw value through a
normaliser from ``laser.bandits.normalizers`` before the bandit sees it. An RM whose scores
taught nothing earns the normaliser's floor, like a failed one: otherwise an RM that scores
everything alike would never be updated and a UCB rule could keep picking it. In per-prompt
mode each chosen RM is measured separately by the probe signals; NegLoss is the loss of the
one joint update, shared by the RMs of the batch.

- ``NegLoss`` (the LASeR paper): minus the policy's training loss on the batch built with the
  chosen RM (``StepStats.train_loss``). Free: no extra forward pass.
- ``RewardGain``: change of the chosen RM's mean reward on a fixed held-out probe batch
  (greedy completions before vs after the update). Costs two probe generations and two RM
  passes per step, counted in the RM cost.
- ``GoldGain``: change of gold accuracy on a small held-out probe set, for users who have a
  dev set with a checker. Costs two probe generations per step; no RM pass.
"""

from __future__ import annotations

from typing import Any, Protocol

from laser.policy.stats import StepStats
from laser.rewards.base import score_checked
from laser.tasks.base import Example, metadata_columns
from laser.world.sft import greedy_completions


class FeedbackSignal(Protocol):
    name: str

    def before(self, loop: Any, rm_name: str) -> Any: ...

    def after(self, loop: Any, rm_name: str, stats: StepStats, before: Any) -> float | None: ...


class NegLoss:
    """-train_loss of the update (LASeR, Nguyen et al. 2024, Sec. 3.2).

    Meaningful for DPO (the paper's update): the DPO + NLL loss on pairs ranked by the chosen
    RM. With PPO run as a single on-policy pass the surrogate loss is -mean(whitened A) = 0 by
    construction, so this signal carries nothing there: use reward_gain or gold_gain.
    """

    name = "neg_loss"

    def before(self, loop: Any, rm_name: str) -> None:
        return None

    def after(self, loop: Any, rm_name: str, stats: StepStats, before: Any) -> float | None:
        return None if stats.train_loss is None else -stats.train_loss


class _ProbeSignal:
    """Shared by the probe-based signals: a fixed set of held-out examples."""

    def __init__(self, probe: list[Example], max_new_tokens: int = 8) -> None:
        if not probe:
            raise ValueError(f"{type(self).__name__} needs a non-empty probe set")
        self.probe = list(probe)
        self.max_new_tokens = max_new_tokens

    def _completions(self, loop: Any) -> list[str]:
        return greedy_completions(
            loop.trainer.policy, loop.tokenizer, [e.prompt for e in self.probe], self.max_new_tokens
        )


class RewardGain(_ProbeSignal):
    """Mean reward of the chosen RM on the probe batch, after minus before the update."""

    name = "reward_gain"

    def _mean_reward(self, loop: Any, rm_name: str) -> float:
        completions = self._completions(loop)
        scores = score_checked(
            loop.pool[rm_name],
            [e.prompt for e in self.probe],
            completions,
            **metadata_columns(self.probe),
        )
        return float(scores.mean())

    def before(self, loop: Any, rm_name: str) -> float:
        return self._mean_reward(loop, rm_name)

    def after(self, loop: Any, rm_name: str, stats: StepStats, before: Any) -> float:
        return self._mean_reward(loop, rm_name) - before


class GoldGain(_ProbeSignal):
    """Gold accuracy on the probe set (the task's checker), after minus before the update."""

    name = "gold_gain"

    def _accuracy(self, loop: Any) -> float:
        completions = self._completions(loop)
        return sum(
            loop.task.evaluate(e.prompt, c, e.meta()) for e, c in zip(self.probe, completions)
        ) / len(self.probe)

    def before(self, loop: Any, rm_name: str) -> float:
        return self._accuracy(loop)

    def after(self, loop: Any, rm_name: str, stats: StepStats, before: Any) -> float:
        return self._accuracy(loop) - before
