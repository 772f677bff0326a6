"""Bandit feedback: what the selector learns from after a policy update with the chosen RM.

A signal is built with everything it needs (a task's checker, the policy and its tokenizer,
a probe set) and then sees only the RM and what that RM was chosen for:

- ``before(rm)``: measured before the update (may return None);
- ``after(rm, stats, before, batch) -> float | dict[int, float] | None``, where ``stats`` is
  the update's :class:`StepStats` (None where the trainer reports none, e.g. inside TRL) and
  ``batch`` (:class:`ArmBatch`) holds the prompts the RM was chosen for and their samples.

A float is shared by all of the RM's prompts; a dict gives each prompt its own value (prompts
left out get no update: nothing was learnt about them); None means the update taught nothing
(e.g. DPO found no preference pair) and earns the normaliser's floor, like a failed RM:
otherwise an RM that scores everything alike would never be updated and a UCB rule could
keep picking it. The router (``laser.routing``) normalises raw values before the bandit sees
them. ``check_update(policy)`` refuses, at build time, an update rule the signal carries
nothing for.

Per-prompt values matter with per-prompt selection: one batch then holds prompts routed to
several RMs, and a single batch-level number would credit every RM with the others' outcome.

- ``NegLoss`` (the LASeR paper): minus the policy's training loss on the prompts scored by the
  chosen RM (per prompt for DPO, ``StepStats.group_loss``). Free: no extra forward pass.
- ``GoldAgreement``: per prompt, how well the chosen RM's ranking of the prompt's samples
  agrees with a gold checker (pairwise accuracy on sample pairs of different gold score).
  Needs gold answers (or a verifier) for the TRAINING prompts; no extra pass.
- ``MajorityAgreement``: per prompt, agreement of the chosen RM's ranking with the policy's own
  majority answer (pseudo-gold from self-consistency). No gold, no extra pass.
- ``ConsensusAgreement`` / ``SpectralAgreement`` (in ``laser.consensus`` / ``laser.spectral``):
  per audited prompt, agreement of the chosen RM's ranking with the pool's consensus / the
  chosen RM's reliability from the pool's agreement matrix. No gold; the audits' RM passes
  are counted. ``PooledSpectralAgreement`` (``spectral_pooled``) fits that matrix pooled
  over all audits so far, regressed on the prompt's context, instead of one prompt's pairs.
- ``ConsensusPick`` / ``GoldPick`` (in ``laser.bon``): for best-of-n selection, where only
  the chosen RM's top-scored sample matters: the peers' consensus score / the gold score of it.
- ``RewardGain``: change of the chosen RM's mean reward on a fixed held-out probe batch
  (greedy completions before vs after the update). Costs two probe generations and two RM
  passes per step, counted in the RM cost.
- ``GoldGain``: change of gold accuracy on a small held-out probe set, for users who have a
  dev set with a checker. Costs two probe generations per step; no RM pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from laser.evaluation import greedy_completions
from laser.policy.config import PolicyConfig
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel, score_checked
from laser.tasks.base import Example, Task, first_answer, metadata_columns


class Counterfactual(NamedTuple):
    """Full-information feedback: the chosen RM's values (per prompt) and, on the same
    prompts, the values the RMs NOT chosen would have earned. Only for a signal whose value
    does not depend on which RM trained on the prompt (an audit's agreement: every RM scored
    the audited samples), so the other arms' values are observed, not guessed. Why: a bandit
    that learns only about the arm it plays can lock onto a worse one early and never look
    again; with every arm's value, each audit teaches every arm (the full-information
    setting, Cesa-Bianchi & Lugosi 2006 ch. 2, against the bandit one, ch. 6)."""

    chosen: dict[int, float]
    others: dict[str, dict[int, float]]  # RM name -> {prompt: value}


Feedback = float | dict[int, float] | Counterfactual | None
# the TRL reward-function signature: fn(prompts, completions, **columns) -> list[float]
Checker = Callable[..., list[float]]


@dataclass
class ArmBatch:
    """What one RM was chosen for in a step: prompt ids (values of ``group``), the indices of
    their samples, and the whole step's samples (``texts``/``completions``/``metadata`` are
    per sample, N long) with the rewards each sample's own RM gave it."""

    prompts: list[int]
    samples: list[int]
    texts: list[str]  # (N,) each sample's prompt
    completions: list[str]  # (N,)
    group: torch.Tensor  # (N,) prompt id of each sample
    rewards: torch.Tensor  # (N,)
    metadata: dict[str, list]  # per-sample columns
    contexts: torch.Tensor | None = None  # (B, d) the router's context of each prompt id

    def prompt_samples(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {p: [] for p in self.prompts}
        for i in self.samples:
            out[int(self.group[i])].append(i)
        return out


class FeedbackSignal(Protocol):
    name: str

    def check_update(self, policy: PolicyConfig) -> None: ...

    def before(self, rm: RewardModel) -> Any: ...

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback: ...


class _Signal:
    """Defaults: works with every update rule, measures nothing before the update."""

    name = "signal"

    @classmethod
    def check_update(cls, policy: PolicyConfig) -> None:
        return None

    def before(self, rm: RewardModel) -> Any:
        return None


class NoFeedback(_Signal):
    """Measures nothing and costs nothing: for selectors that do not learn (a fixed RM, random,
    round-robin, the oracle router, an ensemble), so a baseline pays no feedback's RM passes."""

    name = "none"

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        return {}  # no prompt carries a value: no selector update


class NegLoss(_Signal):
    """-train_loss of the update (LASeR, Nguyen et al. 2024, Sec. 3.2).

    Meaningful for DPO (the paper's update): the DPO + NLL loss on pairs ranked by the chosen
    RM, per prompt (``StepStats.group_loss``, measured before the update). What it measures:
    with the reference refreshed every step (``ref_sync``) the policy equals its reference
    when the loss is taken, so the DPO term is log 2 for every pair and -loss reduces to
    minus the per-token NLL of the RM's top-ranked sample: how likely the policy already finds
    the sample the RM prefers. It rewards RMs that agree with the policy, not RMs that are
    right. With PPO run as a single on-policy pass the surrogate loss is -mean(whitened A) = 0
    by construction, so this signal carries nothing there and the build refuses it.
    """

    name = "neg_loss"

    @classmethod
    def check_update(cls, policy: PolicyConfig) -> None:
        single_pass = policy.ppo_epochs * policy.num_minibatches == 1
        if policy.algo == "ppo" and single_pass and policy.whiten_advantages:
            raise ValueError(
                "feedback=neg_loss carries no signal with policy.algo=ppo in a single on-policy "
                "pass (ppo_epochs=1, num_minibatches=1, whitened advantages): the clipped "
                "surrogate is -mean(whitened A) = 0 for every RM. Use policy=dpo (the LASeR "
                "update) or a feedback that does not read the loss (e.g. feedback=gold_agreement)"
            )

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        if stats is None or stats.train_loss is None:
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


def margin_agreement(
    rewards: torch.Tensor, reference: torch.Tensor, groups: dict[Any, list[int]]
) -> dict[Any, float]:
    """Per group, pairwise agreement of ``rewards`` with a real-valued ``reference``, each pair
    weighted by the reference's margin on it:

        A = sum_{a,b: m_ab > 0} m_ab * 1[r_a > r_b] / sum_{a,b: m_ab > 0} m_ab,
        m_ab = ref_a - ref_b

    (reward ties count half). A consensus of RM scores is sure of few pairs (a correct sample
    against a wrong one) and guesses on the rest (two wrong samples it scores alike); the
    unweighted agreement counts the guesses as much as the sure pairs, so an RM that shares
    the pool's arbitrary order among wrong samples scores like one that finds the right one.
    Margins of z-scores are on a common scale, so the weights mean the same across prompts.
    Groups where the reference is flat carry no information and are left out."""
    out = {}
    for key, idx in groups.items():
        r, ref = rewards[idx].double(), reference[idx].double()
        margin = (ref[:, None] - ref[None, :]).clamp_min(0.0)  # (n, n): a over b
        if not float(margin.sum()) > 0:
            continue
        diff = r[:, None] - r[None, :]
        agree = (diff > 0).double() + 0.5 * (diff == 0).double()
        out[key] = float((margin * agree).sum() / margin.sum())
    return out


def task_checker(task: Task) -> Checker:
    """A task's gold checker with the TRL reward-function signature."""

    def check(prompts: list[str], completions: list[str], **columns: list) -> list[float]:
        rows = [{k: v[i] for k, v in columns.items()} for i in range(len(prompts))]
        return [task.evaluate(p, c, m) for p, c, m in zip(prompts, completions, rows)]

    return check


class GoldAgreement(_Signal):
    """Per prompt: the share of the prompt's sample pairs with different gold scores that the
    chosen RM orders like the gold checker does (ties in the RM's scores count half).

    The RM's pairwise accuracy on the policy's own samples, which is what decides whether DPO
    with that RM helps. Prompts whose samples all have the same gold score carry no
    information and get no update. ``checker`` has the TRL reward-function signature (a
    verifier such as exact match against an answer column, or :func:`task_checker`): only
    for tasks with gold answers or a verifier (GSM8K, MMLU, StrategyQA in the paper).
    """

    name = "gold_agreement"

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def gold(self, batch: ArmBatch) -> torch.Tensor:
        """(N,) the checker's score of the RM's samples (0 elsewhere)."""
        idx = batch.samples
        columns = {k: [v[i] for i in idx] for k, v in batch.metadata.items()}
        values = self.checker(
            [batch.texts[i] for i in idx], [batch.completions[i] for i in idx], **columns
        )
        gold = torch.zeros(len(batch.completions))
        gold[idx] = torch.as_tensor([float(v) for v in values])
        return gold

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        return pairwise_agreement(batch.rewards, self.gold(batch), batch.prompt_samples())


class MajorityAgreement(_Signal):
    """Per prompt: how well the chosen RM's ranking of the prompt's samples agrees with the
    policy's own majority answer, taken as pseudo-gold (self-consistency, Wang et al. 2022,
    arXiv 2203.11171; majority-vote rewards, TTRL, Zuo et al. 2025, arXiv 2504.16084).

    Needs no gold and no extra RM pass, only answers that can be compared (``extract``, e.g.
    the first line of a completion). Prompts where no answer reaches ``min_share`` of the
    samples, where every sample agrees, or whose majority answer is empty carry no
    information and get no update. Its blind spot: where the policy is consistently wrong,
    the RM that shares the policy's error looks right.
    """

    name = "majority_agreement"

    def __init__(self, extract: Callable[[str], str] = first_answer, min_share: float = 0.5):
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min_share must lie in (0, 1], got {min_share}")
        self.extract, self.min_share = extract, min_share

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        pseudo = torch.zeros(len(batch.completions))
        informative: dict[int, list[int]] = {}
        for prompt, idx in batch.prompt_samples().items():
            answers = [self.extract(batch.completions[i]) for i in idx]
            top, count = Counter(answers).most_common(1)[0]
            if not top or count == len(idx) or count < self.min_share * len(idx):
                continue
            pseudo[idx] = torch.tensor([float(a == top) for a in answers])
            informative[prompt] = idx
        return pairwise_agreement(batch.rewards, pseudo, informative)


class _ProbeSignal(_Signal):
    """Shared by the probe-based signals: a fixed set of held-out examples, decoded greedily
    by the (training) policy before and after each update."""

    def __init__(
        self,
        probe: list[Example],
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_new_tokens: int = 8,
    ) -> None:
        if not probe:
            raise ValueError(f"{type(self).__name__} needs a non-empty probe set")
        self.probe = list(probe)
        self.policy, self.tokenizer = policy, tokenizer
        self.max_new_tokens = max_new_tokens

    def _completions(self) -> list[str]:
        prompts = [e.prompt for e in self.probe]
        return greedy_completions(self.policy, self.tokenizer, prompts, self.max_new_tokens)


class RewardGain(_ProbeSignal):
    """Mean reward of the chosen RM on the probe batch, after minus before the update."""

    name = "reward_gain"

    def before(self, rm: RewardModel) -> float:
        return self._mean_reward(rm)

    def _mean_reward(self, rm: RewardModel) -> float:
        prompts = [e.prompt for e in self.probe]
        scores = score_checked(rm, prompts, self._completions(), **metadata_columns(self.probe))
        return float(scores.mean())

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        return self._mean_reward(rm) - before


class GoldGain(_ProbeSignal):
    """Gold accuracy on the probe set (the task's checker), after minus before the update."""

    name = "gold_gain"

    def __init__(
        self,
        probe: list[Example],
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        task: Task,
        max_new_tokens: int = 8,
    ) -> None:
        super().__init__(probe, policy, tokenizer, max_new_tokens)
        self.task = task

    def before(self, rm: RewardModel) -> float:
        return self._accuracy()

    def _accuracy(self) -> float:
        completions = self._completions()
        return sum(
            self.task.evaluate(e.prompt, c, e.meta()) for e, c in zip(self.probe, completions)
        ) / len(self.probe)

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        return self._accuracy() - before


_MOVED = ("ConsensusAgreement", "consensus_reference", "group_zscores", "audited")


def __getattr__(name: str) -> Any:
    # the consensus family lived here until it got its own module; configs and code written
    # then name laser.feedback.ConsensusAgreement etc. (PEP 562: no import cycle)
    if name in _MOVED:
        import laser.consensus

        return getattr(laser.consensus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
