"""Bandit feedback: what the selector learns from after a policy update with the chosen RM.

Each signal has ``before(loop, rm_name)`` (measured before the update; may return None) and
``after(loop, rm_name, stats, before, batch) -> float | dict[int, float] | None``, where
``batch`` (:class:`ArmBatch`) holds the prompts the RM was chosen for and their samples. A
float is shared by all of the RM's prompts; a dict gives each prompt its own value (prompts
left out get no update: nothing was learnt about them); None means the update taught nothing
(e.g. DPO found no preference pair) and earns the normaliser's floor, like a failed RM:
otherwise an RM that scores everything alike would never be updated and a UCB rule could
keep picking it. The loop passes raw values through a normaliser from
``laser.bandits.normalizers`` before the bandit sees them.

Per-prompt values matter with per-prompt selection: one batch then holds prompts routed to
several RMs, and a single batch-level number would credit every RM with the others' outcome.

- ``NegLoss`` (the LASeR paper): minus the policy's training loss on the prompts scored by the
  chosen RM (per prompt for DPO, ``StepStats.group_loss``). Free: no extra forward pass.
- ``GoldAgreement``: per prompt, how well the chosen RM's ranking of the prompt's samples
  agrees with the task's gold checker (pairwise accuracy on sample pairs of different gold
  score). Needs gold answers (or a verifier) for the TRAINING prompts; no extra pass.
- ``RewardGain``: change of the chosen RM's mean reward on a fixed held-out probe batch
  (greedy completions before vs after the update). Costs two probe generations and two RM
  passes per step, counted in the RM cost.
- ``GoldGain``: change of gold accuracy on a small held-out probe set, for users who have a
  dev set with a checker. Costs two probe generations per step; no RM pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from laser.policy.rollout import Rollout
from laser.policy.stats import StepStats
from laser.rewards.base import score_checked
from laser.tasks.base import Example, metadata_columns
from laser.world.sft import greedy_completions


@dataclass
class ArmBatch:
    """What one RM was chosen for in a step: prompt ids (``rollout.group`` values), the
    indices of their samples in ``rollout``, and the rewards it gave them."""

    prompts: list[int]
    samples: list[int]
    rollout: Rollout
    rewards: torch.Tensor  # (B,) rewards of the whole rollout

    def prompt_samples(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {p: [] for p in self.prompts}
        for i in self.samples:
            out[int(self.rollout.group[i])].append(i)
        return out


Feedback = float | dict[int, float] | None


class FeedbackSignal(Protocol):
    name: str

    def before(self, loop: Any, rm_name: str) -> Any: ...

    def after(
        self, loop: Any, rm_name: str, stats: StepStats, before: Any, batch: ArmBatch
    ) -> Feedback: ...


class NegLoss:
    """-train_loss of the update (LASeR, Nguyen et al. 2024, Sec. 3.2).

    Meaningful for DPO (the paper's update): the DPO + NLL loss on pairs ranked by the chosen
    RM, per prompt (``StepStats.group_loss``, measured before the update). What it measures:
    with the reference refreshed every step (``ref_sync``) the policy equals its reference
    when the loss is taken, so the DPO term is log 2 for every pair and -loss reduces to
    minus the per-token NLL of the RM's top-ranked sample: how likely the policy already finds
    the sample the RM prefers. It rewards RMs that agree with the policy, not RMs that are
    right. With PPO run as a single on-policy pass the surrogate loss is -mean(whitened A) = 0
    by construction, so this signal carries nothing there: use another signal.
    """

    name = "neg_loss"

    def before(self, loop: Any, rm_name: str) -> None:
        return None

    def after(
        self, loop: Any, rm_name: str, stats: StepStats, before: Any, batch: ArmBatch
    ) -> Feedback:
        if stats.train_loss is None:
            return None
        if stats.group_loss is None:  # PPO/A2C: one batch-level number
            return -stats.train_loss
        mine = {p: -stats.group_loss[p] for p in batch.prompts if p in stats.group_loss}
        return mine or None  # no pair among this RM's prompts: it taught nothing


def pairwise_agreement(
    rewards: torch.Tensor, gold: torch.Tensor, groups: dict[Any, list[int]]
) -> dict[Any, float]:
    """Per group of samples (one prompt's), the share of pairs with different gold scores that
    ``rewards`` order the same way (reward ties count half). Groups without such a pair carry
    no information and are left out."""
    out = {}
    for key, idx in groups.items():
        agree = pairs = 0.0
        for a in idx:
            for b in idx:
                if gold[a] > gold[b]:
                    pairs += 1
                    diff = float(rewards[a] - rewards[b])
                    agree += 1.0 if diff > 0 else 0.5 if diff == 0 else 0.0
        if pairs:
            out[key] = agree / pairs
    return out


class GoldAgreement:
    """Per prompt: the share of the prompt's sample pairs with different gold scores that the
    chosen RM orders like the gold checker does (ties in the RM's scores count half).

    The RM's pairwise accuracy on the policy's own samples, which is what decides whether DPO
    with that RM helps. Prompts whose samples all have the same gold score carry no
    information and get no update. Uses the task's gold checker on TRAINING prompts: only
    for tasks with gold answers or a verifier (GSM8K, MMLU, StrategyQA in the paper).
    """

    name = "gold_agreement"

    def before(self, loop: Any, rm_name: str) -> None:
        return None

    def after(
        self, loop: Any, rm_name: str, stats: StepStats, before: Any, batch: ArmBatch
    ) -> Feedback:
        r = batch.rollout
        gold = torch.zeros(len(r.completions))
        for i in batch.samples:
            meta = {k: v[i] for k, v in r.metadata.items()}
            gold[i] = loop.task.evaluate(r.prompts[i], r.completions[i], meta)
        return pairwise_agreement(batch.rewards, gold, batch.prompt_samples())


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

    def after(
        self, loop: Any, rm_name: str, stats: StepStats, before: Any, batch: ArmBatch
    ) -> Feedback:
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

    def after(
        self, loop: Any, rm_name: str, stats: StepStats, before: Any, batch: ArmBatch
    ) -> Feedback:
        return self._accuracy(loop) - before
