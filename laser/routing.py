"""The router core: contexts -> a Decision (an RM per batch or per prompt) -> each group of
samples scored by its own RM only -> feedback credited per arm through one normalisation path.

The LASER loop (``laser.orchestrator``) and the TRL adapter (``laser.integrations.trl``) both
route through :class:`Router`; only where the samples and the update come from differs.

Granularity is a small strategy object (``laser.granularity``): ``PerBatch`` (LASeR's rule:
one RM for the batch, context = the mean of its prompts' features) or ``PerPrompt`` (one RM
per prompt, each prompt's own context; the prompts routed to an RM form its group). With several
processes the decision covers every rank's prompts: contexts are gathered, every rank runs
the same decision on the same inputs (so stochastic selectors draw alike), and feedback is
gathered before the selector update, so every rank holds the same selector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from laser.arms import Arms
from laser.bandits.base import Bandit
from laser.bandits.normalizers import NormalizedBandit, Normalizer
from laser.distributed import Distributed
from laser.feedback import ArmBatch, Counterfactual, Feedback, FeedbackSignal
from laser.granularity import Credit, Granularity, Groups, PerPrompt
from laser.logging import DecisionWriter
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel, RewardModelError, score_checked


@dataclass
class Decision:
    """One routing decision for this rank's prompts."""

    prompts: Groups  # arm -> prompt indices
    samples: Groups  # arm -> sample indices (the samples of those prompts)
    names: dict[int, str]  # arm -> RM name, as the pool stood when deciding
    propensities: list[float]  # per prompt: probability of the arm it got
    contexts: torch.Tensor  # (B, d) per-prompt contexts
    batch_context: torch.Tensor | None  # (d,) the global batch context (per-batch mode)
    group: torch.Tensor  # (N,) prompt index of each sample

    def routes(self) -> list[str]:
        """The RM name of each prompt, in prompt order."""
        out = [""] * len(self.propensities)
        for arm, prompts in self.prompts.items():
            for p in prompts:
                out[p] = self.names[arm]
        return out

    @property
    def mean_propensity(self) -> float:
        return sum(self.propensities) / len(self.propensities)


@dataclass
class Scores:
    """Each sample's reward from its own RM (0 where that RM failed) and the failed arms."""

    rewards: torch.Tensor  # (N,)
    failed: set[int]

    def working(self, decision: Decision) -> list[int]:
        return [arm for arm in decision.prompts if arm not in self.failed]


@dataclass
class Samples:
    """What the RMs score, one entry per sample (a ``Rollout`` has the same fields)."""

    prompts: list[str]
    completions: list[str]
    metadata: dict[str, list]  # per-sample columns (domain, answer, ...)


@dataclass
class FeedbackResult:
    """The normalised values the selector learnt from this step, and the raw signal values."""

    given: list[float]
    raw: list[float]
    counterfactual: int = 0  # updates of arms not chosen (full-information signals)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.counterfactual:
            out["bandit/counterfactual_updates"] = float(self.counterfactual)
        if self.raw:
            out["bandit/feedback_raw"] = sum(self.raw) / len(self.raw)
        if self.given:
            out["bandit/feedback"] = sum(self.given) / len(self.given)
        return out


def check_refit(selector: Bandit, normalizer: Normalizer, granularity: Granularity) -> None:
    """Refuse what ``feedback.signal.refit`` cannot work with, naming the setting."""
    if not hasattr(selector, "refit"):
        raise ValueError(
            f"feedback.signal.refit=true refits a linear selector (bandit=lints, linucb or "
            f"linelim); {type(selector).__name__} has no per-arm regression to refit"
        )
    selector.check_refit()
    if not hasattr(normalizer, "rescale_all"):
        raise ValueError(
            f"feedback.signal.refit=true rescales the values with the percentile normaliser; "
            f"{type(normalizer).__name__} cannot rescale a set of values at once"
        )
    if not isinstance(granularity, PerPrompt):
        raise ValueError(
            "feedback.signal.refit=true fits the selector on each audited prompt's context: "
            "it needs loop.selection=prompt"
        )


def samples_of(group: torch.Tensor, prompts: list[int]) -> list[int]:
    """Indices of the samples whose prompt index is in ``prompts``."""
    chosen = set(prompts)
    return [i for i, g in enumerate(group.tolist()) if g in chosen]


class Router:
    """Decide, score, credit. ``arms`` holds the pool and its health; ``bandit`` is the
    selector behind its feedback normaliser (the one normalisation path)."""

    def __init__(
        self,
        pool: dict[str, RewardModel],
        selector: Bandit,
        normalizer: Normalizer,
        granularity: Granularity,
        signal: FeedbackSignal,
        *,
        quarantine_after: int = 3,
        dist: Distributed | None = None,
        decisions: DecisionWriter | None = None,
    ) -> None:
        if selector.num_arms != len(pool):
            raise ValueError(f"selector has {selector.num_arms} arms for {len(pool)} RMs")
        self.arms = Arms(pool, quarantine_after)
        self.bandit = NormalizedBandit(selector, normalizer)
        self.granularity, self.signal = granularity, signal
        self.dist = dist or Distributed()
        # a signal says whether its state is fitted on its own prompts; one with a state_dict
        # and no say is taken to be
        stateful = getattr(signal, "stateful", hasattr(signal, "state_dict"))
        if self.dist.enabled and stateful:
            raise ValueError(
                f"feedback {signal.name!r} keeps state fitted on each process's own prompts "
                "(spectral_pooled's agreement model, or audit_decay's record of the contexts "
                "seen), which would differ between processes: run it in one process (or use "
                "feedback=spectral_agreement with audit_decay=null)"
            )
        if getattr(signal, "refit", False):
            check_refit(selector, normalizer, granularity)
        self.decisions = decisions  # decisions.jsonl for off-policy evaluation (laser-ope)

    @property
    def selector(self) -> Bandit:
        return self.bandit.bandit

    @property
    def normalizer(self) -> Normalizer:
        return self.bandit.normalizer

    # ------------------------------------------------------------------ decide and score
    def decide(self, contexts: torch.Tensor, group: torch.Tensor) -> Decision:
        """Route this rank's prompts (``contexts`` (B, d)); ``group`` maps samples to prompts."""
        xs = self.dist.gather(contexts)  # every rank's (B_r, d) contexts
        context, per_rank = self.dist.broadcast(self.granularity.choose(self.selector, xs))
        prompts, propensities = per_rank[self.dist.rank]
        return Decision(
            prompts=prompts,
            samples={arm: samples_of(group, ps) for arm, ps in prompts.items()},
            names={arm: self.arms.names[arm] for arm in prompts},
            propensities=propensities,
            contexts=contexts,
            batch_context=context,
            group=group,
        )

    def score(self, decision: Decision, samples: Samples, step: int) -> Scores:
        """Each group's samples scored by its own RM ONLY; an RM that fails is recorded."""
        rewards = torch.zeros(len(samples.completions))
        failed: set[int] = set()
        for arm, idx in decision.samples.items():
            name = decision.names[arm]
            try:
                rewards[idx] = score_checked(
                    self.arms.rms[name],
                    [samples.prompts[i] for i in idx],
                    [samples.completions[i] for i in idx],
                    **{k: [v[i] for i in idx] for k, v in samples.metadata.items()},
                )
                self.arms.succeeded(name)
            except RewardModelError as exc:
                failed.add(arm)
                self.arms.failed(name, exc, step)
        return Scores(rewards, failed)

    def training_rewards(self, decision: Decision, scores: Scores) -> torch.Tensor:
        """With several working RMs in one batch (per-prompt selection), each RM's rewards
        z-scored so their different scales do not mix in one update; one RM's pass as is."""
        working = scores.working(decision)
        if len(working) < 2:
            return scores.rewards
        out = scores.rewards.clone()
        for arm in working:
            idx = decision.samples[arm]
            values = scores.rewards[idx]
            out[idx] = (values - values.mean()) / values.std(unbiased=False).clamp_min(1e-6)
        return out

    # ------------------------------------------------------------------------ feedback
    def _measure(self, fn, name: str, step: int, *args: Any) -> Any:
        """A feedback measurement; an RM failing during it counts as that RM's failure."""
        try:
            return fn(self.arms.rms[name], *args)
        except RewardModelError as exc:
            self.arms.failed(name, f"feedback probe failed: {exc}", step)
            return None

    def before(self, decision: Decision, scores: Scores, step: int) -> dict[int, Any]:
        """The signal's measurement before the update, for each working arm."""
        return {
            arm: self._measure(self.signal.before, decision.names[arm], step)
            for arm in scores.working(decision)
        }

    @staticmethod
    def arm_batch(decision: Decision, scores: Scores, arm: int, samples: Samples) -> ArmBatch:
        """What ``arm`` was chosen for in this step."""
        return ArmBatch(
            decision.prompts[arm],
            decision.samples[arm],
            samples.prompts,
            samples.completions,
            decision.group,
            scores.rewards,
            samples.metadata,
            decision.contexts,
        )

    def feedback(
        self,
        decision: Decision,
        scores: Scores,
        stats: StepStats | None,
        before: dict[int, Any] | None,
        samples: Samples,
        step: int,
    ) -> FeedbackResult:
        """Measure each working arm's outcome (``before`` None: no update happened, every arm
        earns the floor), credit it per arm, normalise, update the selector. A
        :class:`Counterfactual` also updates the arms not chosen, after the chosen ones, at
        the same prompts; those updates are not decisions and stay out of the decision log."""
        raw: dict[int, Feedback] = {arm: None for arm in decision.prompts}
        others: list[Credit] = []
        for arm in scores.working(decision) if before is not None else []:
            measured = self.arm_batch(decision, scores, arm, samples)
            raw[arm] = self._measure(
                self.signal.after, decision.names[arm], step, stats, before[arm], measured
            )
            if isinstance(raw[arm], Counterfactual):
                others += self.counterfactual_credits(raw[arm].others, decision)
                raw[arm] = raw[arm].chosen
        local = [
            Credit(arm, context, value, decision.propensities[p])
            for arm, prompts in decision.prompts.items()
            for p, context, value in self.granularity.credit(
                raw[arm], prompts, decision.contexts, decision.batch_context
            )
        ]
        everyone = [c for part in self.dist.gather(local) for c in part]
        result = self.apply(self.granularity.reduce(everyone, self.dist), step)
        if not getattr(self.signal, "all_arms", False):  # the same on every rank
            return result
        unchosen = [c for part in self.dist.gather(others) for c in part]
        unchosen = self.granularity.reduce(unchosen, self.dist)
        result.counterfactual = len(self.apply(unchosen, step, log=False).given)
        if getattr(self.signal, "refit", False):
            self.refit_selector()
        return result

    def refit_selector(self) -> None:
        """A ``refit`` signal: every arm's data become the signal's CURRENT values at every
        audited context so far, rescaled together by the normaliser's percentiles
        (:meth:`PercentileNormalizer.rescale_all`), in place of the values given at each
        audit (which stay in the decision log). Updates at the floor (an RM that failed) are
        replaced too; the failures still count towards quarantine."""
        data = self.signal.current_values()
        if data is None:
            return
        xs, values, seen = data
        scaled = torch.full_like(values, float("nan"))
        scaled[seen] = torch.as_tensor(self.normalizer.rescale_all(values[seen].numpy()))
        for j, name in enumerate(self.signal.names):
            if name in self.arms.names:  # a quarantined RM has no arm any more
                rows = seen[:, j]
                arm = self.arms.names.index(name)
                self.selector.refit(arm, xs[rows].numpy(), scaled[rows, j].numpy())

    def counterfactual_credits(
        self, others: dict[str, dict[int, float]], decision: Decision
    ) -> list[Credit]:
        """The updates of the RMs not chosen, credited as their prompts would have been
        (per prompt, or one for the batch); RMs no longer in the pool are skipped. Their
        propensity is 0: no policy chose them."""
        out = []
        for name, values in others.items():
            if name not in self.arms.names or not values:
                continue
            arm = self.arms.names.index(name)
            for _, context, value in self.granularity.credit(
                values, sorted(values), decision.contexts, decision.batch_context
            ):
                out.append(Credit(arm, context, value, 0.0))
        return out

    def apply(self, credits: list[Credit], step: int, log: bool = True) -> FeedbackResult:
        """The one normalisation path: raw -> normalised (or the floor) -> selector update;
        ``log``: write each update to the decision log (decisions only)."""
        given, raws = [], []
        for arm, context, value, propensity in credits:
            if value is None:
                fb = self.bandit.update_floor(arm, context)
            else:
                raws.append(value)
                fb = self.bandit.update(arm, context, value)
            given.append(fb)
            if log and self.decisions is not None:  # for off-policy evaluation (laser-ope)
                name = self.arms.names[arm]
                self.decisions.write(step, context, name, arm, propensity, fb)
        return FeedbackResult(given, raws)

    # --------------------------------------------------------------------- after a step
    def record(self, decision: Decision, scores: Scores) -> dict[str, float]:
        """Count the picks, quarantine failing RMs; the step's routing metrics."""
        metrics: dict[str, float] = {"bandit/propensity": decision.mean_propensity}
        for arm, prompts in decision.prompts.items():
            name = decision.names[arm]
            self.arms.picks[name] += len(prompts)
            values = scores.rewards[decision.samples[arm]]
            metrics[f"reward/{name}/mean"] = float(values.mean())
            metrics[f"reward/{name}/std"] = float(values.std(unbiased=False))
        if len(decision.prompts) == 1:
            metrics["bandit/arm"] = float(next(iter(decision.prompts)))
        total = sum(self.arms.picks.values())
        for name in self.arms.rms:
            metrics[f"bandit/arm_frac/{name}"] = self.arms.picks[name] / total
        self.arms.quarantine_failing(self.selector, self.dist)  # arm indices change here
        return metrics

    # --------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        out = {
            **self.arms.state_dict(),
            "selector": self.selector.state_dict(),
            "normalizer": self.normalizer.state_dict(),
        }
        if hasattr(self.signal, "state_dict"):  # spectral_pooled's model, audit_decay's contexts
            out["signal"] = self.signal.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.selector.load_state_dict(state["selector"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.arms.load_state_dict(state, self.selector)
        if hasattr(self.signal, "load_state_dict") and "signal" in state:
            self.signal.load_state_dict(state["signal"])
