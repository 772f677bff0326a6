"""Best-of-n selection without training: per prompt, ``n`` samples from a FIXED policy; the RM
the router picks for the prompt scores them (that RM only) and its top-scored sample is the
answer; a gold-free signal about that choice goes back to the bandit.

LASeR (Nguyen et al., arXiv 2410.01735) uses this in its long-context setting, where the
policy is not trained: the bandit's reward there is minus the NLL of the selected response
under the policy. Here that is ``feedback=neg_loss`` unchanged: a best-of-n step reports the
per-token NLL of each prompt's picked sample as its ``StepStats.group_loss``, which is what
:class:`laser.feedback.NegLoss` negates (under iterative DPO it is the same quantity up to
the constant log 2 of each pair's DPO term: with the reference equal to the policy, -loss
reduces to minus the NLL of the RM's top-ranked sample).
The loop's other signals work unchanged: ``consensus_agreement`` (the chosen RM's ranking of
the prompt's samples against the other RMs' consensus on an audited share of prompts, those
RM passes counted), ``majority_agreement`` and ``gold_agreement`` (the labelled reference).
Best-of-n keeps only the top sample, so this module adds pick-only versions:
``consensus_pick`` (:class:`ConsensusPick`, the peers' consensus score of the pick) and
``gold_pick`` (:class:`GoldPick`, the pick's gold score). Signals that measure what a policy
update changed (``reward_gain``, ``gold_gain``) measure nothing here and are refused.

The policy is fixed, so the candidates are drawn ONCE (:func:`draw_candidates`) and every
method picks among the same samples: a paired comparison, and cheap. One bandit step is a
batch of prompts (:func:`bon_step`, numbered like the loop's phases); :func:`select` runs a
router over every prompt of a :class:`Candidates`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from laser.consensus import ConsensusAgreement
from laser.feedback import (
    ArmBatch,
    Feedback,
    GoldAgreement,
    GoldGain,
    RewardGain,
)
from laser.policy.losses import sequence_nll
from laser.policy.rollout import generate_rollout
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel
from laser.routing import FeedbackResult, Router, Samples
from laser.tasks.base import Example, Task, first_answer, metadata_columns


@dataclass
class Candidates:
    """``n`` samples for each of P prompts; sample ``j`` of prompt ``p`` sits at ``p * n + j``."""

    examples: list[Example]  # (P,)
    completions: list[str]  # (P * n,)
    nll: torch.Tensor  # (P * n,) per-token NLL of each sample under the policy
    gold: torch.Tensor  # (P * n,) gold score of each sample: reporting only, no method sees it
    n: int

    def __post_init__(self) -> None:
        size = len(self.examples) * self.n
        if self.n < 1 or len(self.completions) != size or self.nll.shape != (size,):
            raise ValueError(
                f"Candidates need n >= 1 and P * n = {size} completions and NLLs, got n = "
                f"{self.n}, {len(self.completions)} completions, NLL shape {tuple(self.nll.shape)}"
            )
        if self.gold.shape != (size,):
            raise ValueError(f"gold has shape {tuple(self.gold.shape)}, expected ({size},)")

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, prompts: range, step: int) -> tuple[Samples, torch.Tensor, torch.Tensor]:
        """(samples, group, nll) of the prompts ``prompts``: what the RMs score (metadata as the
        loop gives it: the examples' columns and the step), each sample's prompt index within
        the batch (B * n,), and the samples' NLLs (B * n,)."""
        examples = [self.examples[p] for p in prompts]
        idx = [p * self.n + j for p in prompts for j in range(self.n)]
        columns = {**metadata_columns(examples), "step": [step] * len(examples)}
        samples = Samples(
            prompts=[e.prompt for e in examples for _ in range(self.n)],
            completions=[self.completions[i] for i in idx],
            metadata={k: [v for v in vals for _ in range(self.n)] for k, vals in columns.items()},
        )
        group = torch.arange(len(examples)).repeat_interleave(self.n)
        return samples, group, self.nll[idx]


@torch.no_grad()
def draw_candidates(
    policy,
    tokenizer,
    task: Task,
    examples: list[Example],
    *,
    n: int,
    max_new_tokens: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 128,
    progress: bool = False,
) -> Candidates:
    """``n`` samples per prompt from the fixed ``policy`` (the loop's rollout code), with each
    sample's per-token NLL under the policy at ``temperature`` and its gold score.

    Prompts go ``chunk`` at a time; chunk ``c`` samples with the global RNG seeded
    ``seed * 100_003 + c``, so the candidates depend on the seed alone."""
    if not examples:
        raise ValueError("draw_candidates needs at least one prompt")
    completions: list[str] = []
    nll, gold = [], []
    starts = range(0, len(examples), chunk)
    for c, start in enumerate(tqdm(starts, desc="sampling", disable=not progress)):
        part = examples[start : start + chunk]
        rollout = generate_rollout(
            policy,
            policy,  # the "reference" log-probs are the policy's own: the NLL the paper uses
            tokenizer,
            [e.prompt for e in part],
            n=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            generator_seed=seed * 100_003 + c,
            behaviour_logprobs=False,
        )
        completions += rollout.completions
        nll.append(sequence_nll(rollout.ref_logprobs, rollout.response_mask).float().cpu())
        gold += [
            task.evaluate(e.prompt, rollout.completions[k * n + j], e.meta())
            for k, e in enumerate(part)
            for j in range(n)
        ]
    return Candidates(
        list(examples), completions, torch.cat(nll), torch.tensor(gold, dtype=torch.float32), n
    )


# ------------------------------------------------------------- feedback about the pick
def top_sample(rewards: torch.Tensor, idx: list[int]) -> int:
    """The sample among ``idx`` the RM scored highest, the first of ties: its best-of-n pick
    (``torch.argmax`` returns the first maximum). Samples are exchangeable draws, so that is
    a uniformly random tie-break that stays reproducible; duplicates score equally, so a tie
    between them does not change the answer."""
    return idx[int(torch.argmax(rewards[idx]))]


def informative_picks(
    rewards: torch.Tensor, values: torch.Tensor, groups: dict[int, list[int]]
) -> dict[int, float]:
    """Per group (one prompt's samples): ``values`` at the RM's top-scored sample, for groups
    where ``values`` differ (elsewhere any pick is as good as another: nothing to learn)."""
    return {
        p: float(values[top_sample(rewards, idx)])
        for p, idx in groups.items()
        if values[idx].max() > values[idx].min()
    }


class GoldPick(GoldAgreement):
    """Per prompt: the gold score of the chosen RM's top-scored sample, on prompts whose
    samples differ in gold score. The labelled reference for best-of-n selection, where only
    the pick matters, not the whole ranking ``gold_agreement`` scores. Binary: pair it with a
    normaliser that does not collapse when most picks are right (conf: RunningZScore)."""

    name = "gold_pick"

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        return informative_picks(batch.rewards, self.gold(batch), batch.prompt_samples())


class ConsensusPick(ConsensusAgreement):
    """Per audited prompt: the other RMs' consensus (mean per-prompt z-score) of the chosen
    RM's top-scored sample: how the rest of the pool rates its best-of-n pick. The pick-only
    version of ``consensus_agreement``, which scores the whole ranking; prompts where the
    consensus is flat are left out. Same audit share and counted RM passes."""

    name = "consensus_pick"

    def __init__(
        self,
        pool: dict[str, RewardModel],
        audit: float = 0.25,
        seed: int = 0,
        audit_decay: float | None = None,
    ):
        # graded by the OTHER RMs: the picker's own z-score is highest at its pick
        super().__init__(pool, audit, seed, reference="others", audit_decay=audit_decay)

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        consensus, groups = self.consensus(rm, batch)
        return informative_picks(batch.rewards, consensus, groups)


# ------------------------------------------------------------------------------ selection
def pick_best(rewards: torch.Tensor, group: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """(num_prompts,) index, within its prompt's samples (in order), of each prompt's
    top-scored sample; ties go to the earliest (:func:`top_sample`)."""
    if rewards.shape != group.shape or rewards.ndim != 1:
        raise ValueError(f"rewards {tuple(rewards.shape)} and group {tuple(group.shape)} differ")
    if not torch.isfinite(rewards).all():
        raise ValueError("pick_best got non-finite rewards")
    picks = torch.empty(num_prompts, dtype=torch.long)
    for p in range(num_prompts):
        idx = (group == p).nonzero().flatten().tolist()
        if not idx:
            raise ValueError(f"prompt {p} has no sample")
        picks[p] = idx.index(top_sample(rewards, idx))
    return picks


def picked(group: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
    """(P,) position, among all samples, of each prompt's picked sample."""
    firsts = torch.as_tensor(
        [int((group == p).nonzero()[0]) for p in range(len(picks))], dtype=torch.long
    )
    return firsts + picks


def selection_stats(rewards: torch.Tensor, nll: torch.Tensor, group, picks) -> StepStats:
    """What a best-of-n step reports: per prompt the per-token NLL of its picked sample as
    ``group_loss`` (the "loss" whose minus LASeR feeds back in its best-of-n setting), their
    mean as ``train_loss``; no policy update, so every update field is None."""
    chosen = nll[picked(group, picks)]  # (P,)
    return StepStats(
        loss=None,
        pg_loss=None,
        value_loss=None,
        entropy=None,
        approx_kl=None,
        clipfrac=None,
        kl_ref=None,
        reward_mean=float(rewards.mean()),
        reward_std=float(rewards.std(unbiased=False)),
        train_loss=float(chosen.mean()),
        group_loss={p: float(v) for p, v in enumerate(chosen)},
    )


def check_signal(signal) -> None:
    """Refuse a signal that measures what a policy update changed: best-of-n makes none."""
    if isinstance(signal, (RewardGain, GoldGain)):
        raise ValueError(
            f"feedback {signal.name!r} measures the change a policy update made; best-of-n "
            "selection updates no policy. Use neg_loss (the paper's: minus the NLL of the "
            "picked sample), consensus_agreement, consensus_pick, majority_agreement, "
            "gold_agreement or gold_pick"
        )


@dataclass
class StepPicks:
    """One best-of-n step: the pick per prompt (index within its samples), the RM per prompt
    and what the selector learnt (normalised values given, raw signal values)."""

    picks: torch.Tensor  # (B,)
    routes: list[str]  # (B,)
    feedback: FeedbackResult


def bon_step(
    router: Router,
    samples: Samples,
    group: torch.Tensor,
    nll: torch.Tensor,
    contexts: torch.Tensor,
    step: int,
) -> StepPicks:
    """One bandit step of best-of-n selection over a batch of B prompts."""
    decision = router.decide(contexts, group)  # 1. an RM per prompt (or per batch)
    scores = router.score(decision, samples, step)  # 2. ONLY the chosen RMs score
    # 3. each prompt's answer: its RM's top-scored sample (prompts whose RM failed score 0
    # everywhere and keep their first sample: no selection)
    picks = pick_best(scores.rewards, group, len(contexts))
    stats = selection_stats(scores.rewards, nll, group, picks)
    before = router.before(decision, scores, step)  # 4. the signal, per arm, to the bandit
    feedback = router.feedback(decision, scores, stats, before, samples, step)
    router.record(decision, scores)
    return StepPicks(picks, decision.routes(), feedback)


@dataclass
class Selection:
    """A method's picks over all prompts of a :class:`Candidates`."""

    picks: list[int]  # (P,) index of the picked sample within its prompt's n
    routes: list[str]  # (P,) the RM that scored each prompt
    cost: list[int]  # RM forward samples so far, after each step
    batch_size: int

    def outcomes(self, candidates: Candidates) -> list[float]:
        """(P,) gold score of each prompt's picked sample."""
        n = candidates.n
        return [float(candidates.gold[p * n + j]) for p, j in enumerate(self.picks)]


def select(
    router: Router,
    candidates: Candidates,
    contexts: torch.Tensor,
    batch_size: int,
    progress: bool = False,
    desc: str = "best-of-n",
) -> Selection:
    """Run ``router`` over every prompt, ``batch_size`` prompts per bandit step, in order.
    ``contexts`` (P, d) are the prompts' features (the policy is fixed, so they are too)."""
    if contexts.shape[0] != len(candidates):
        raise ValueError(f"{contexts.shape[0]} contexts for {len(candidates)} prompts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    picks: list[int] = []
    routes: list[str] = []
    cost: list[int] = []
    starts = range(0, len(candidates), batch_size)
    for step, start in enumerate(tqdm(starts, desc=desc, disable=not progress), 1):
        prompts = range(start, min(start + batch_size, len(candidates)))
        samples, group, nll = candidates.batch(prompts, step)
        out = bon_step(router, samples, group, nll, contexts[start : prompts.stop], step)
        picks += out.picks.tolist()
        routes += out.routes
        cost.append(router.arms.forward_samples())
    return Selection(picks, routes, cost, batch_size)


# --------------------------------------------------------------- references without an RM
def first_sample(candidates: Candidates) -> list[float]:
    """The floor: each prompt's first sample, no selection (the policy's sampling accuracy)."""
    n = candidates.n
    return [float(candidates.gold[p * n]) for p in range(len(candidates))]


def any_correct(candidates: Candidates) -> list[float]:
    """The ceiling of any selector (gold best-of-n, "pass@n"): the best gold score per prompt."""
    return candidates.gold.view(len(candidates), candidates.n).max(dim=1).values.tolist()


def likeliest(candidates: Candidates) -> list[float]:
    """Each prompt's sample of lowest per-token NLL under the policy (no RM): what the paper's
    signal, minus the NLL of the pick, rewards an RM for agreeing with."""
    per_prompt = candidates.nll.view(len(candidates), candidates.n)
    picks = per_prompt.argmin(dim=1)  # the first of ties
    return [float(candidates.gold[p * candidates.n + int(j)]) for p, j in enumerate(picks)]


def majority_vote(
    candidates: Candidates, extract: Callable[[str], str] = first_answer
) -> list[float]:
    """Self-consistency (Wang et al. 2022, arXiv 2203.11171) without any RM: each prompt's most
    frequent answer, ties to the answer drawn first; its gold score."""
    n, out = candidates.n, []
    for p in range(len(candidates)):
        answers = [extract(candidates.completions[p * n + j]) for j in range(n)]
        top = max(Counter(answers).items(), key=lambda kv: kv[1])[0]  # first of the ties
        out.append(float(candidates.gold[p * n + answers.index(top)]))
    return out
