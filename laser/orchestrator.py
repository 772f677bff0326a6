"""The LASER loop: per batch, a bandit picks ONE reward model; only that RM scores the samples;
the policy is updated; the outcome goes back to the bandit.

``Orchestrator.step()`` reads top to bottom in the numbered phases of ../shared/ARCHITECTURE.md.
Baselines (fixed RM, random, round-robin, ensembles) run through the same loop: they are just
other selectors, or a pool holding one ensemble.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from laser.distributed import Distributed
from laser.features import batch_context
from laser.feedback import ArmBatch, Feedback
from laser.policy.rollout import Rollout, generate_rollout, subset
from laser.policy.trainer import PolicyTrainer
from laser.rewards.base import RewardModelError, score_checked
from laser.tasks.base import Example, metadata_columns
from laser.world.sft import example_scores, macro_accuracy


@dataclass
class LoopConfig:
    steps: int = 100
    batch_size: int = 8  # prompts per step
    samples_per_prompt: int = 4
    max_new_tokens: int = 8
    temperature: float = 1.0
    selection: str = "batch"  # batch | prompt (prompts grouped by their chosen arm)
    eval_every: int = 0  # 0: only at the end
    eval_size: int = 200
    eval_max_new_tokens: int = 10  # greedy decoding length of the held-out evaluation
    checkpoint_every: int = 0  # 0: only at the end
    quarantine_after: int = 3  # consecutive failures of an RM before it leaves the pool
    seed: int = 0
    log_decisions: bool = False  # write decisions.jsonl for off-policy evaluation (laser-ope)

    def __post_init__(self) -> None:
        if self.selection not in ("batch", "prompt"):
            raise ValueError(f"loop.selection must be 'batch' or 'prompt', got {self.selection!r}")
        for name in (
            "steps",
            "batch_size",
            "samples_per_prompt",
            "max_new_tokens",
            "eval_max_new_tokens",
            "quarantine_after",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"loop.{name} must be >= 1, got {getattr(self, name)}")


class Orchestrator:
    """Ties selector, RM pool, policy trainer, featurizer, feedback and logger together.

    ``pool`` maps RM names to RewardModels; arm k of the selector is ``self.arms[k]``. Arms
    are removed when quarantined and added when a new RM joins on resume.
    """

    def __init__(
        self,
        *,
        trainer: PolicyTrainer,
        tokenizer: Any,
        task: Any,
        pool: dict,
        selector: Any,
        featurizer: Any,
        feedback: Any,
        normalizer: Any,
        logger: Any,
        config: LoopConfig,
        checkpointer: Any = None,
        decisions: Any = None,
        dist: Distributed | None = None,
    ) -> None:
        if selector.num_arms != len(pool):
            raise ValueError(f"selector has {selector.num_arms} arms for {len(pool)} RMs")
        self.trainer, self.tokenizer, self.task = trainer, tokenizer, task
        self.pool, self.arms = dict(pool), list(pool)
        self.selector, self.featurizer = selector, featurizer
        self.feedback, self.normalizer = feedback, normalizer
        self.logger, self.config, self.checkpointer = logger, config, checkpointer
        self.decisions = decisions  # a laser.logging.DecisionWriter, or None
        self.dist = dist or Distributed()  # several processes: see laser/distributed.py
        self.context: torch.Tensor | None = None  # this step's global batch context
        self.propensities: list[float] = []  # of this step's choices, per prompt
        self.step_count = 0
        self.failures: Counter[str] = Counter()  # consecutive failures per RM
        self.quarantined: list[str] = []
        self.picks: Counter[str] = Counter()
        self.cost_offset = 0  # RM forward samples spent before a resume
        self.last_eval: dict[str, float] | None = None
        self.last_eval_scores: list[float] = []
        self.last_choice: list[str] = []
        self.last_routes: list[tuple[str, str]] = []  # (domain, RM) per prompt, last step
        self.eval_examples = task.examples("eval", config.eval_size, seed=config.seed + 17)

    # ------------------------------------------------------------------ the LASER step
    def step(self) -> dict[str, float]:
        start = time.perf_counter()
        examples = self.next_batch()  # 1. prompts (+ metadata)
        x = self.featurizer(examples)  # 2. (B, d) context features
        groups, propensity = self.select(x)  # 3. arm per batch, or per prompt
        rollout = generate_rollout(  # 4. n samples per prompt
            self.trainer.policy,
            self.trainer.ref_policy,
            self.tokenizer,
            [e.prompt for e in examples],
            n=self.config.samples_per_prompt,
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            metadata=metadata_columns(examples),
            behaviour_logprobs=False,
        )
        rewards, ok = self.score(rollout, groups)  # 5. ONLY the chosen RMs run
        metrics = self.update(rollout, rewards, ok, groups, x)  # 6.-7. update, feedback
        metrics.update(self.step_metrics(groups, propensity, rewards, rollout, start))
        self.last_choice = [self.arms[a] for a in groups]  # names, before any quarantine
        self.last_routes = [
            (examples[i].domain, self.arms[a]) for a, idx in groups.items() for i in idx
        ]
        self.quarantine_failing()  # only now: arm indices above refer to this step's pool
        self.step_count += 1
        self.logger.log(metrics, self.step_count)
        return metrics

    def next_batch(self) -> list[Example]:
        """A deterministic function of (seed, step, rank): resuming needs no sampler state."""
        seed = self.config.seed * 1_000_003 + self.step_count + self.dist.rank * 7_777_777
        return self.task.examples("train", self.config.batch_size, seed=seed)

    def select(self, x: torch.Tensor) -> tuple[dict[int, list[int]], float]:
        """{arm: prompt indices} and the mean propensity of the choices made (each prompt's
        is kept in ``self.propensities`` for the decision log). With several processes the
        decision covers every rank's prompts and rank 0's is broadcast."""
        xs = self.dist.gather(x)  # every rank's (B_r, d) contexts
        context, per_rank = self.dist.broadcast(self._decide(xs))
        self.context = context  # the global batch context (per-batch mode)
        groups, self.propensities = per_rank[self.dist.rank]
        return groups, sum(self.propensities) / len(self.propensities)

    def _decide(self, xs: list[torch.Tensor]):
        """(global context or None, [(groups, propensities) per rank]). Every rank runs it on
        the same inputs, so stochastic selectors draw alike and their states stay equal."""
        if self.config.selection == "batch":
            context = batch_context(torch.cat(xs))
            arm = self.selector.select(context)
            prob = float(self.selector.probabilities(context)[arm])
            return context, [({arm: list(range(len(x)))}, [prob] * len(x)) for x in xs]
        out = []
        for x in xs:
            groups: dict[int, list[int]] = {}
            probs = []
            for i in range(x.shape[0]):
                arm = self.selector.select(x[i])
                probs.append(float(self.selector.probabilities(x[i])[arm]))
                groups.setdefault(arm, []).append(i)
            out.append((groups, probs))
        return None, out

    def score(
        self, rollout: Rollout, groups: dict[int, list[int]]
    ) -> tuple[torch.Tensor, dict[int, bool]]:
        """Rewards (B,) from each group's chosen RM; ok[arm] is False where the RM failed."""
        rewards = torch.zeros(rollout.batch_size)
        ok: dict[int, bool] = {}
        for arm, prompts in groups.items():
            idx = self._samples(rollout, prompts)
            name = self.arms[arm]
            meta = {k: [v[i] for i in idx] for k, v in rollout.metadata.items()}
            try:
                rewards[idx] = score_checked(
                    self.pool[name],
                    [rollout.prompts[i] for i in idx],
                    [rollout.completions[i] for i in idx],
                    **meta,
                )
                ok[arm] = True
                self.failures[name] = 0
            except RewardModelError as exc:
                ok[arm] = False
                self.failures[name] += 1
                tqdm.write(
                    f"step {self.step_count + 1}: {exc} (failure {self.failures[name]} "
                    f"of {self.config.quarantine_after} before quarantine)"
                )
        return rewards, ok

    def update(
        self,
        rollout: Rollout,
        rewards: torch.Tensor,
        ok: dict[int, bool],
        groups: dict[int, list[int]],
        x: torch.Tensor,
    ) -> dict[str, float]:
        """6. policy update on the samples whose RM scored them; 7. bandit feedback, for each
        chosen RM on its own prompts (per prompt where the signal gives per-prompt values)."""
        good_prompts = {p for arm, ps in groups.items() if ok[arm] for p in ps}
        keep = self._samples(rollout, good_prompts)
        metrics: dict[str, float] = {}
        raw: dict[int, Feedback] = {arm: None for arm in groups}  # None: the floor
        if keep:
            working = [a for a in groups if ok[a]]
            before = {a: self._measure(self.feedback.before, a) for a in working}
            stats = self.trainer.update(
                subset(rollout, keep), self.scaled(rewards, groups, ok, rollout)[keep]
            )
            metrics.update(stats.metrics())
            for arm in working:
                batch = ArmBatch(groups[arm], self._samples(rollout, groups[arm]), rollout, rewards)
                raw[arm] = self._measure(self.feedback.after, arm, stats, before[arm], batch)
        given, raws = [], []
        for arm, context, value, propensity in self._feedback_updates(raw, groups, x):
            if value is not None:
                raws.append(value)
            fb = self.normalizer.floor if value is None else self.normalizer.normalize(value)
            self.selector.update(arm, context, fb)
            given.append(fb)
            if self.decisions is not None:  # for off-policy evaluation (laser-ope)
                name = self.arms[arm]
                self.decisions.write(self.step_count + 1, context, name, arm, propensity, fb)
        if raws:
            metrics["bandit/feedback_raw"] = sum(raws) / len(raws)
        if given:
            metrics["bandit/feedback"] = sum(given) / len(given)
        return metrics

    def _feedback_updates(self, raw: dict[int, Feedback], groups, x: torch.Tensor) -> list:
        """(arm, context, raw value or None, propensity) of every selector update of this
        step, the same list on every rank: all ranks' per-prompt updates in rank order, or one
        per-batch update on the global context with the ranks' values averaged."""
        local = [
            (arm, context, value, self.propensities[p])
            for arm, prompts in groups.items()
            for p, context, value in self._arm_feedback(raw[arm], prompts, x)
        ]
        everyone = [u for part in self.dist.gather(local) for u in part]
        if self.config.selection == "prompt" or not self.dist.enabled or not everyone:
            return everyone
        values = [v for _, _, v, _ in everyone if v is not None]
        arm, _, _, propensity = everyone[0]  # one arm: the decision was global
        mean = sum(values) / len(values) if values else None
        return [(arm, self.context, mean, propensity)]

    def _arm_feedback(self, raw: Feedback, prompts: list[int], x: torch.Tensor):
        """(prompt, context, raw value or None) for one arm's selector updates: one per prompt
        in per-prompt mode, one for the batch otherwise (its first prompt standing for it);
        prompts a per-prompt signal left out (nothing learnt about them) get none."""
        if self.config.selection == "batch":
            if isinstance(raw, dict):
                if not raw:
                    return []
                raw = sum(raw.values()) / len(raw)
            return [(prompts[0], batch_context(x), raw)]
        if isinstance(raw, dict):
            return [(p, x[p], raw[p]) for p in prompts if p in raw]
        return [(p, x[p], raw) for p in prompts]

    @staticmethod
    def _samples(rollout: Rollout, prompts) -> list[int]:
        """Indices of the samples of ``prompts`` (prompt indices) in the rollout."""
        chosen = set(prompts)
        return [i for i, g in enumerate(rollout.group.tolist()) if g in chosen]

    def _measure(self, fn, arm: int, *args: Any) -> Any:
        """A feedback measurement; an RM failing during it counts as that RM's failure."""
        name = self.arms[arm]
        try:
            return fn(self, name, *args)
        except RewardModelError as exc:
            self.failures[name] += 1
            tqdm.write(f"step {self.step_count + 1}: feedback probe failed: {exc}")
            return None

    def scaled(
        self,
        rewards: torch.Tensor,
        groups: dict[int, list[int]],
        ok: dict[int, bool],
        rollout: Rollout,
    ) -> torch.Tensor:
        """With several RMs in one batch (per-prompt selection), z-score each RM's rewards so
        their different scales do not mix in one update; one RM's rewards pass unchanged."""
        if sum(ok.values()) < 2:
            return rewards
        out = rewards.clone()
        for arm, prompts in groups.items():
            if not ok[arm]:
                continue  # its samples are not trained on
            idx = self._samples(rollout, prompts)
            values = rewards[idx]
            out[idx] = (values - values.mean()) / values.std(unbiased=False).clamp_min(1e-6)
        return out

    def quarantine_failing(self) -> None:
        """Remove RMs that failed too often in a row (on any rank: all ranks remove alike)."""
        local = [n for n in self.arms if self.failures[n] >= self.config.quarantine_after]
        failing = {n for part in self.dist.gather(local) for n in part}
        for name in [n for n in self.arms if n in failing]:
            if len(self.arms) == 1:
                raise RewardModelError(
                    f"reward model {name!r} failed {self.failures[name]} "
                    "times in a row and it is the last one in the pool"
                )
            try:
                self.selector.remove_arm(self.arms.index(name))
            except ValueError as exc:  # e.g. FixedArm cannot lose the arm it always plays
                raise RewardModelError(
                    f"reward model {name!r} failed {self.failures[name]} "
                    f"times in a row and cannot be quarantined: {exc}"
                ) from exc
            self.arms.remove(name)
            self.quarantined.append(name)
            tqdm.write(
                f"quarantined reward model {name!r} after {self.failures[name]} "
                "consecutive failures; training continues without it"
            )

    # --------------------------------------------------------------------- metrics
    def rm_cost(self) -> int:
        """RM forward samples of the whole run (including before a resume), this process."""
        return self.cost_offset + sum(
            getattr(rm, "forward_samples", 0) for rm in self.pool.values()
        )

    def global_rm_cost(self) -> int:
        """RM forward samples over all processes (a collective: every rank calls it)."""
        return int(self.dist.sum(self.rm_cost()))

    def step_metrics(self, groups, propensity, rewards, rollout, start) -> dict[str, float]:
        metrics: dict[str, float] = {"bandit/propensity": propensity}
        for arm, prompts in groups.items():
            self.picks[self.arms[arm]] += len(prompts)
            idx = self._samples(rollout, prompts)
            metrics[f"reward/{self.arms[arm]}/mean"] = float(rewards[idx].mean())
            metrics[f"reward/{self.arms[arm]}/std"] = float(rewards[idx].std(unbiased=False))
        if len(groups) == 1:
            metrics["bandit/arm"] = float(next(iter(groups)))
        total = sum(self.picks.values())
        for name in self.pool:
            metrics[f"bandit/arm_frac/{name}"] = self.picks[name] / total
        seconds = time.perf_counter() - start
        metrics.update(
            {
                "cost/rm_forward_samples": float(self.global_rm_cost()),
                "perf/step_time": seconds,
                "perf/samples_per_sec": rollout.batch_size / seconds,
            }
        )
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Gold accuracy per domain on the held-out set (greedy decoding). With several
        processes each rank scores every world_size-th example and the scores are gathered."""
        step = self.dist.world_size
        mine = example_scores(
            self.trainer.policy,
            self.tokenizer,
            self.task,
            self.eval_examples[self.dist.rank :: step],
            self.config.eval_max_new_tokens,
        )
        scores: list[float] = [0.0] * len(self.eval_examples)
        for rank, part in enumerate(self.dist.gather(mine)):
            scores[rank::step] = part
        acc = macro_accuracy(scores, self.eval_examples)
        self.last_eval_scores = scores  # per example: paired comparisons between runs
        out = {f"task/{d}/accuracy": v for d, v in acc.items() if d != "mean"}
        out["eval/accuracy"] = acc["mean"]
        self.logger.log(out, self.step_count)
        self.last_eval = out
        return out

    # ------------------------------------------------------------------------ run
    def run(self, progress: bool = True, on_step: Any = None) -> dict[str, float]:
        """Steps until ``config.steps``; ``on_step(loop, metrics)`` runs after each step (and
        its evaluation, if one was due): experiments record what they need there."""
        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=self.step_count, desc="LASER", disable=not progress)
        while self.step_count < cfg.steps:
            m = self.step()
            bar.update(1)
            arm = self.last_choice[0] if len(self.last_choice) == 1 else "per-prompt"
            bar.set_postfix(arm=arm, feedback=f"{m.get('bandit/feedback', float('nan')):.2f}")
            if cfg.eval_every and self.step_count % cfg.eval_every == 0:
                self.evaluate()
            if on_step is not None:
                on_step(self, m)
            if (
                self.checkpointer
                and cfg.checkpoint_every
                and (self.step_count % cfg.checkpoint_every == 0)
            ):
                self.checkpointer.save(self)
        bar.close()
        evaluated_now = cfg.eval_every and self.step_count % cfg.eval_every == 0
        final = self.last_eval if evaluated_now and self.last_eval else self.evaluate()
        if self.checkpointer:
            self.checkpointer.save(self)
        return final

    # ------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "arms": list(self.arms),
            "quarantined": list(self.quarantined),
            "failures": dict(self.failures),
            "picks": dict(self.picks),
            "rm_forward_samples": self.global_rm_cost(),
            "trainer": self.trainer.state_dict(),
            "selector": self.selector.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            # each rank samples with its own RNG stream (the trainer's state holds rank 0's)
            "rank_rng": self.dist.gather(torch.get_rng_state()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a run; RMs added to the pool since get fresh arms, removed ones are dropped."""
        self.trainer.load_state_dict(state["trainer"])
        self.selector.load_state_dict(state["selector"])
        self.normalizer.load_state_dict(state["normalizer"])
        streams = state.get("rank_rng") or []
        if len(streams) == self.dist.world_size:  # the same number of processes as saved
            torch.set_rng_state(streams[self.dist.rank])
        self.step_count = int(state["step"])
        self.failures = Counter({k: int(v) for k, v in state["failures"].items()})
        self.picks = Counter({k: int(v) for k, v in state["picks"].items()})
        spent_here = self.rm_cost() - self.cost_offset
        saved = int(state["rm_forward_samples"]) if self.dist.is_main else 0  # the global count
        self.cost_offset = saved - spent_here
        self.quarantined = [n for n in state["quarantined"]]
        arms = list(state["arms"])
        for name in [n for n in arms if n not in self.pool]:
            self.selector.remove_arm(arms.index(name))
            arms.remove(name)
            tqdm.write(f"reward model {name!r} is no longer in the pool: its arm is dropped")
        for name in [n for n in self.pool if n not in arms and n not in self.quarantined]:
            self.selector.add_arm()
            arms.append(name)
            tqdm.write(f"reward model {name!r} joined the pool: new arm, fresh statistics")
        self.arms = arms
