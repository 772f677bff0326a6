"""LASER as a reward function for TRL's GRPOTrainer and RLOOTrainer.

    selector = LaserRewardSelector(pool, LinUCB(len(pool), dim, alpha=1.0), featurizer,
                                   verifier=exact_match)          # or feedback="neg_loss"
    trainer = GRPOTrainer(model, reward_funcs=[selector], callbacks=[selector.callback()], ...)

Per call (one generation batch) it builds the context from the batch's distinct prompts,
lets the bandit pick ONE RM, scores every completion with that RM only and returns the
scores. After the optimiser step, :class:`LaserCallback` feeds the outcome back to the bandit:

- ``verifier=fn`` (TRL reward-function signature, e.g. an exact-match checker): the chosen
  RM's pairwise agreement with the verifier on each prompt's completions (the loop's
  ``gold_agreement``), averaged over the batch's prompts; calls whose completions all
  verify alike teach nothing and are dropped;
- ``feedback="neg_loss"`` (the LASeR paper's signal): minus the training loss TRL logs for
  the step; needs ``logging_steps=1`` so every step's loss is seen.

Metrics go through TRL's ``log_metric`` (averaged per logging step, reported next to
``rewards/laser/mean``): ``laser/arm_frac/<rm>`` (selection frequency),
``laser/propensity``, ``laser/feedback``, ``rewards/<rm>/mean`` (the chosen RM's scores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainerCallback

from laser.bandits.normalizers import PercentileNormalizer
from laser.features import batch_context
from laser.feedback import pairwise_agreement
from laser.rewards.base import RewardModel, score_checked
from laser.tasks.base import Example

TRL_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments", "completion_ids")


def _text(x: Any) -> str:
    """TRL passes plain strings or conversations (lists of {"role", "content"})."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and all(isinstance(m, dict) and "content" in m for m in x):
        return "\n".join(str(m["content"]) for m in x)
    raise TypeError(f"expected a string or a list of chat messages, got {type(x).__name__}")


class LaserRewardSelector:
    """A TRL reward function that routes each generation batch to one RM of ``pool``."""

    def __init__(
        self,
        pool: dict[str, RewardModel],
        selector: Any,
        featurizer: Callable[[list[Example]], torch.Tensor],
        *,
        verifier: Callable[..., list[float]] | None = None,
        feedback: str = "verifier",
        normalizer: Any = None,
        name: str = "laser",
    ) -> None:
        if not pool or selector.num_arms != len(pool):
            raise ValueError(f"selector has {selector.num_arms} arms for {len(pool)} RMs")
        if feedback not in ("verifier", "neg_loss"):
            raise ValueError(f"feedback must be 'verifier' or 'neg_loss', got {feedback!r}")
        if feedback == "verifier" and verifier is None:
            raise ValueError("feedback='verifier' needs a verifier function")
        self.pool, self.names = dict(pool), list(pool)
        self.selector, self.featurizer = selector, featurizer
        self.verifier, self.feedback = verifier, feedback
        self.normalizer = normalizer or PercentileNormalizer()
        self.__name__ = name  # TRL names the reward column after it
        self.pending: list[dict[str, Any]] = []  # decisions waiting for the step's outcome
        self.updates = 0

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float]:
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items() if k not in TRL_KWARGS}
        texts, outs = [_text(p) for p in prompts], [_text(c) for c in completions]
        distinct = list(dict.fromkeys(texts))
        examples = [Example(p, "", str(self._first(columns, texts, p, "domain"))) for p in distinct]
        context = batch_context(self.featurizer(examples))  # (d,)
        arm = self.selector.select(context)
        propensity = float(self.selector.probabilities(context)[arm])
        name = self.names[arm]
        scores = score_checked(self.pool[name], texts, outs, **columns)  # ONLY the chosen RM
        decision = {"arm": arm, "context": context, "propensity": propensity, "raw": None}
        if self.feedback == "verifier":
            gold = torch.tensor(self.verifier(prompts, completions, **columns), dtype=torch.float)
            groups = {p: [i for i, t in enumerate(texts) if t == p] for p in distinct}
            agree = pairwise_agreement(scores, gold, groups)
            decision["raw"] = sum(agree.values()) / len(agree) if agree else None
        self.pending.append(decision)
        if log_metric is not None:
            log_metric("laser/propensity", propensity)
            log_metric(f"rewards/{name}/mean", float(scores.mean()))
            for other in self.names:
                log_metric(f"laser/arm_frac/{other}", float(other == name))
        return scores.tolist()

    @staticmethod
    def _first(columns: dict, texts: list[str], prompt: str, key: str) -> Any:
        values = columns.get(key)
        return values[texts.index(prompt)] if values else "unknown"

    def apply_feedback(self, raw_for_all: float | None = None) -> list[float]:
        """Update the bandit with every pending decision (``raw_for_all`` replaces their own
        raw values: the step's -loss). Decisions without a value teach nothing and are
        dropped. Returns the normalised feedback given."""
        given = []
        for d in self.pending:
            raw = raw_for_all if raw_for_all is not None else d["raw"]
            if raw is None:
                continue
            value = self.normalizer.normalize(raw)
            self.selector.update(d["arm"], d["context"], value)
            given.append(value)
        self.pending.clear()
        self.updates += len(given)
        return given

    def callback(self) -> LaserCallback:
        return LaserCallback(self)


class LaserCallback(TrainerCallback):
    """Feeds each optimiser step's outcome back to the selector after the step."""

    def __init__(self, selector: LaserRewardSelector) -> None:
        self.selector = selector

    def on_train_begin(self, args, state, control, **kwargs):
        if self.selector.feedback == "neg_loss" and args.logging_steps != 1:
            raise ValueError(
                "LaserRewardSelector(feedback='neg_loss') reads each step's loss from the "
                f"trainer's logs: set logging_steps=1 (got {args.logging_steps})"
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.selector.feedback == "verifier":
            self.selector.apply_feedback()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.selector.feedback == "neg_loss" and logs and "loss" in logs:
            self.selector.apply_feedback(-float(logs["loss"]))
