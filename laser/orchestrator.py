"""The LASER loop: per batch (or per prompt), a bandit picks ONE reward model; only that RM
scores the samples; the policy is updated; the outcome goes back to the bandit.

``Orchestrator.step()`` reads top to bottom in the numbered phases of ../shared/ARCHITECTURE.md
and returns a :class:`StepRecord`. Routing, scoring and feedback live in ``laser.routing``,
the held-out evaluation in ``laser.evaluation``, pool health in ``laser.arms``. Baselines
(fixed RM, random, round-robin, ensembles) run through the same loop: they are just other
selectors, or a pool holding one ensemble.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from laser.config import LoopConfig
from laser.distributed import Distributed
from laser.evaluation import EvalResult, Evaluator
from laser.features import Featurizer
from laser.logging import Logger
from laser.policy.rollout import generate_rollout, subset
from laser.policy.trainer import PolicyTrainer
from laser.routing import Router
from laser.tasks.base import Example, Task, metadata_columns


@dataclass
class StepRecord:
    """What one step did, for experiments and callbacks (``run(on_step=...)``)."""

    step: int
    metrics: dict[str, float]
    chosen: list[str]  # the RMs that scored this step, in decision order
    routes: list[tuple[str, str]]  # (domain, RM) of each prompt
    propensities: list[float]  # of each prompt's choice
    rm_cost: int  # RM forward samples of the run so far, this process
    evaluation: EvalResult | None = field(default=None)


class RunInterrupted(RuntimeError):
    """``run(stop=...)`` was asked to stop: the last finished step is checkpointed."""

    def __init__(self, step: int, checkpoint: Any) -> None:
        self.step, self.checkpoint = step, checkpoint
        saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpointer: nothing saved"
        super().__init__(f"stopped after step {step}; {saved}")


class Checkpointer(Protocol):
    def save(self, loop: Orchestrator) -> Any: ...


class Orchestrator:
    """Ties the policy trainer, the router (selector + RM pool + feedback), the featurizer,
    the evaluation, the logger and checkpoints together."""

    def __init__(
        self,
        *,
        trainer: PolicyTrainer,
        tokenizer: PreTrainedTokenizerBase,
        task: Task,
        router: Router,
        featurizer: Featurizer,
        evaluator: Evaluator,
        logger: Logger,
        config: LoopConfig,
        checkpointer: Checkpointer | None = None,
        dist: Distributed | None = None,
    ) -> None:
        self.trainer, self.tokenizer, self.task = trainer, tokenizer, task
        self.router, self.featurizer, self.evaluator = router, featurizer, evaluator
        self.logger, self.config, self.checkpointer = logger, config, checkpointer
        self.dist = dist or Distributed()  # several processes: see laser/distributed.py
        self.step_count = 0
        self.cost_offset = 0  # RM forward samples spent before a resume

    # ------------------------------------------------------------------ the LASER step
    def step(self) -> StepRecord:
        start, cfg, router = time.perf_counter(), self.config, self.router
        step = self.step_count + 1
        examples = self.next_batch()  # 1. prompts (+ metadata)
        x = self.featurizer(examples)  # 2. (B, d) context features
        group = torch.arange(len(examples)).repeat_interleave(cfg.samples_per_prompt)
        decision = router.decide(x, group)  # 3. an RM per batch, or per prompt
        rollout = generate_rollout(  # 4. n samples per prompt
            self.trainer.policy,
            self.trainer.ref_policy,
            self.tokenizer,
            [e.prompt for e in examples],
            n=cfg.samples_per_prompt,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            # every RM call also sees the step: RMs that change over time can be simulated
            metadata={**metadata_columns(examples), "step": [step] * len(examples)},
            behaviour_logprobs=False,
        )
        scores = router.score(decision, rollout, step)  # 5. ONLY the chosen RMs run
        keep = [i for arm in scores.working(decision) for i in decision.samples[arm]]
        metrics: dict[str, float] = {}
        stats = before = None
        if keep:  # 6. update the policy on the samples whose RM scored them
            before = router.before(decision, scores, step)
            rewards = router.training_rewards(decision, scores)
            stats = self.trainer.update(subset(rollout, sorted(keep)), rewards[sorted(keep)])
            metrics.update(stats.metrics())
        # 7. the outcome, per arm, back to the selector; metrics; failing RMs quarantined
        metrics.update(router.feedback(decision, scores, stats, before, rollout, step).metrics())
        metrics.update(router.record(decision, scores))
        seconds = time.perf_counter() - start
        metrics["cost/rm_forward_samples"] = float(self.global_rm_cost())
        metrics.update({"perf/step_time": seconds, "perf/samples_per_sec": len(group) / seconds})
        self.step_count = step
        self.logger.log(metrics, step)
        domains = [e.domain for e in examples]
        return StepRecord(
            step=step,
            metrics=metrics,
            chosen=list(decision.names.values()),
            routes=list(zip(domains, decision.routes())),
            propensities=decision.propensities,
            rm_cost=self.rm_cost(),
        )

    def next_batch(self) -> list[Example]:
        """A deterministic function of (seed, step, rank): resuming needs no sampler state."""
        seed = self.config.seed * 1_000_003 + self.step_count + self.dist.rank * 7_777_777
        return self.task.examples("train", self.config.batch_size, seed=seed)

    # --------------------------------------------------------------------- metrics
    def rm_cost(self) -> int:
        """RM forward samples of the whole run (including before a resume), this process."""
        return self.cost_offset + self.router.arms.forward_samples()

    def global_rm_cost(self) -> int:
        """RM forward samples over all processes (a collective: every rank calls it)."""
        return int(self.dist.sum(self.rm_cost()))

    def evaluate(self) -> EvalResult:
        """Gold accuracy per domain on the held-out set (greedy; sharded over ranks)."""
        result = self.evaluator(self.trainer.policy, self.step_count)
        self.logger.log(result.metrics, self.step_count)
        return result

    # ------------------------------------------------------------------------ run
    def run(
        self,
        progress: bool = True,
        on_step: Callable[[StepRecord], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> EvalResult:
        """Steps until ``config.steps``; ``on_step(record)`` runs after each step (and its
        evaluation, if one was due). Returns the final evaluation. When ``stop()`` turns True
        (on any rank) the run checkpoints the last finished step and raises RunInterrupted."""
        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=self.step_count, desc="LASER", disable=not progress)
        record = None
        while self.step_count < cfg.steps:
            record = self.step()
            bar.update(1)
            arm = record.chosen[0] if len(record.chosen) == 1 else "per-prompt"
            feedback = record.metrics.get("bandit/feedback")  # absent: no prompt audited
            bar.set_postfix(arm=arm, feedback="none" if feedback is None else f"{feedback:.2f}")
            if cfg.eval_every and self.step_count % cfg.eval_every == 0:
                record.evaluation = self.evaluate()
            if on_step is not None:
                on_step(record)
            if self.checkpointer and cfg.checkpoint_every:
                if self.step_count % cfg.checkpoint_every == 0:
                    self.checkpointer.save(self)
            if stop is not None and self.dist.sum(float(stop())) > 0:  # every rank agrees
                bar.close()
                saved = self.checkpointer.save(self) if self.checkpointer else None
                raise RunInterrupted(self.step_count, saved)
        bar.close()
        final = record.evaluation if record and record.evaluation else self.evaluate()
        if self.checkpointer:
            self.checkpointer.save(self)
        return final

    # ------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            **self.router.state_dict(),
            "rm_forward_samples": self.global_rm_cost(),
            "trainer": self.trainer.state_dict(),
            # each rank samples with its own RNG stream (the trainer's state holds rank 0's)
            "rank_rng": self.dist.gather(torch.get_rng_state()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a run; RMs added to the pool since get fresh arms, removed ones are dropped."""
        self.trainer.load_state_dict(state["trainer"])
        self.router.load_state_dict(state)
        streams = state.get("rank_rng") or []
        if len(streams) == self.dist.world_size:  # the same number of processes as saved
            torch.set_rng_state(streams[self.dist.rank])
        self.step_count = int(state["step"])
        spent_here = self.rm_cost() - self.cost_offset
        saved = int(state["rm_forward_samples"]) if self.dist.is_main else 0  # the global count
        self.cost_offset = saved - spent_here
