"""LASER as a reward function for TRL's GRPOTrainer and RLOOTrainer.

    selector = LaserRewardSelector(pool, LinUCB(len(pool), dim, alpha=1.0), featurizer,
                                   signal=GoldAgreement(exact_match))
    trainer = GRPOTrainer(model, reward_funcs=[selector], callbacks=[selector.callback()], ...)

Per call (one generation batch) it routes through the same core as the LASER loop
(``laser.routing.Router``): by default each distinct prompt gets its own RM from its own
context (``per_prompt=True``; ``False``: one RM for the batch, LASeR's rule), each prompt's
completions are scored by that RM ONLY, and the scores are returned. After the optimiser step
:class:`LaserCallback` measures the feedback signal on each RM's own prompts and updates the
bandit through the router's one normalisation path.

Feedback signals are those of ``laser.feedback``: ``GoldAgreement(verifier)`` (a TRL-signature
checker, e.g. exact match against the dataset's answer column: the chosen RM's pairwise
agreement with it on each prompt's completions), or ``NegLoss()`` (the LASeR paper's -loss,
read from TRL's logs; needs ``logging_steps=1``, and is refused with ``num_iterations=1``:
GRPO/RLOO's single-pass surrogate carries no signal about the RM).

An RM that raises or returns NaN is recorded (and quarantined after ``quarantine_after``
failures in a row); its completions get ``None``, TRL's "not applicable", so they carry no
reward into the update rather than a made-up one.

Metrics go through TRL's ``log_metric`` (averaged per logging step, reported next to
``rewards/laser/mean``): ``laser/arm_frac/<rm>`` (share of this batch's prompts per RM),
``laser/propensity``, ``laser/feedback``, ``rewards/<rm>/mean`` (each RM's scores).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from laser.bandits.base import Bandit
from laser.bandits.normalizers import Normalizer, PercentileNormalizer
from laser.features import Featurizer
from laser.feedback import FeedbackSignal, NegLoss
from laser.granularity import PerBatch, PerPrompt
from laser.policy.config import PolicyConfig
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel
from laser.routing import Router, Samples
from laser.tasks.base import Example

TRL_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments", "completion_ids")


def _text(x: Any) -> str:
    """TRL passes plain strings or conversations (lists of {"role", "content"})."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and all(isinstance(m, dict) and "content" in m for m in x):
        return "\n".join(str(m["content"]) for m in x)
    raise TypeError(f"expected a string or a list of chat messages, got {type(x).__name__}")


def loss_stats(loss: float) -> StepStats:
    """The part of an update's StepStats TRL reports: its training loss."""
    return StepStats(None, None, None, None, None, None, None, 0.0, 0.0, train_loss=loss)


class LaserRewardSelector:
    """A TRL reward function that routes each prompt (or batch) to one RM of ``pool``."""

    def __init__(
        self,
        pool: dict[str, RewardModel],
        selector: Bandit,
        featurizer: Featurizer,
        *,
        signal: FeedbackSignal,
        normalizer: Normalizer | None = None,
        per_prompt: bool = True,
        quarantine_after: int = 3,
        name: str = "laser",
    ) -> None:
        if not pool:
            raise ValueError("LaserRewardSelector needs at least one reward model")
        self.featurizer = featurizer
        self.router = Router(
            pool,
            selector,
            normalizer or PercentileNormalizer(),
            PerPrompt() if per_prompt else PerBatch(),
            signal,
            quarantine_after=quarantine_after,
        )
        self.__name__ = name  # TRL names the reward column after it
        self.pending: list[tuple] = []  # decisions waiting for the step's outcome
        self.updates = 0  # selector updates so far
        self.calls = 0

    @property
    def pool(self) -> dict[str, RewardModel]:
        return self.router.arms.rms

    @property
    def selector(self) -> Bandit:
        return self.router.selector

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items() if k not in TRL_KWARGS}
        samples = Samples([_text(p) for p in prompts], [_text(c) for c in completions], columns)
        distinct = list(dict.fromkeys(samples.prompts))
        index = {p: i for i, p in enumerate(distinct)}
        group = torch.tensor([index[p] for p in samples.prompts])
        domains = columns.get("domain") or ["unknown"] * len(prompts)
        first = {p: samples.prompts.index(p) for p in distinct}
        examples = [Example(p, "", str(domains[first[p]])) for p in distinct]
        self.calls += 1
        decision = self.router.decide(self.featurizer(examples), group)
        scores = self.router.score(decision, samples, self.calls)  # ONLY the chosen RMs
        before = self.router.before(decision, scores, self.calls)
        self.pending.append((decision, scores, before, samples))
        if log_metric is not None:
            log_metric("laser/propensity", decision.mean_propensity)
            for arm, name in decision.names.items():
                values = scores.rewards[decision.samples[arm]]
                log_metric(f"rewards/{name}/mean", float(values.mean()))
            routed = decision.routes()
            for other in self.pool:
                log_metric(f"laser/arm_frac/{other}", routed.count(other) / len(routed))
        rewards = scores.rewards.tolist()
        failed = {i for arm in scores.failed for i in decision.samples[arm]}
        return [None if i in failed else r for i, r in enumerate(rewards)]

    def apply_feedback(self, stats: StepStats | None = None) -> list[float]:
        """Credit every pending decision (``stats``: the step's StepStats, for signals that
        read the loss); returns the normalised feedback of each selector update."""
        given: list[float] = []
        for decision, scores, before, samples in self.pending:
            result = self.router.feedback(decision, scores, stats, before, samples, self.calls)
            given += result.given
        for decision, scores, _, _ in self.pending:  # only now may arm indices change
            self.router.record(decision, scores)  # picks; quarantine of failing RMs
        self.updates += len(given)
        self.pending.clear()
        return given

    def callback(self) -> LaserCallback:
        return LaserCallback(self)


class LaserCallback(TrainerCallback):
    """Feeds each optimiser step's outcome back to the selector after the step."""

    def __init__(self, selector: LaserRewardSelector) -> None:
        self.selector = selector

    @property
    def reads_loss(self) -> bool:
        return isinstance(self.selector.router.signal, NegLoss)

    def on_train_begin(self, args, state, control, **kwargs):
        signal = self.selector.router.signal
        # GRPO/RLOO optimise the PPO clipped surrogate on group-normalised advantages,
        # num_iterations passes per generation batch
        passes = int(getattr(args, "num_iterations", 1))
        signal.check_update(PolicyConfig(algo="ppo", ppo_epochs=passes))
        if self.reads_loss and args.logging_steps != 1:
            raise ValueError(
                f"feedback {signal.name!r} reads each step's loss from the trainer's logs: "
                f"set logging_steps=1 (got {args.logging_steps})"
            )

    def on_step_end(self, args, state, control, **kwargs):
        if not self.reads_loss:
            self.selector.apply_feedback()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.reads_loss and logs and "loss" in logs:
            self.selector.apply_feedback(loss_stats(float(logs["loss"])))
