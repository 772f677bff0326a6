"""The typed configuration of a run: the ONE source of defaults.

``TrainConfig`` (laser-train) and ``PrepareConfig`` (laser-prepare) are registered with
Hydra's ConfigStore as ``train_schema`` / ``prepare_schema`` and head the defaults lists of
conf/train.yaml and conf/prepare.yaml: YAML files only override them, and a wrong type or an
unknown key fails when the config is composed, before any work. ``bandit``, ``features``,
``feedback`` and ``logger`` are Hydra ``_target_`` nodes, instantiated by ``laser.build``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from laser.policy.config import PolicyConfig
from laser.world.config import PrepareConfig, WorldConfig
from laser.world.external import ExternalConfig


@dataclass
class LoopConfig:
    steps: int = 200
    batch_size: int = 8  # prompts per step
    samples_per_prompt: int = 8
    max_new_tokens: int = 8
    temperature: float = 1.0
    selection: str = "prompt"  # prompt: an RM per prompt | batch: one RM per batch (LASeR)
    eval_every: int = 50  # 0: only at the end
    eval_size: int = 300
    eval_max_new_tokens: int = 10  # greedy decoding length of the held-out evaluation
    checkpoint_every: int = 50  # 0: only at the end
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
            "eval_size",
            "eval_max_new_tokens",
            "quarantine_after",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"loop.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"loop.{name} must be >= 0 (0: at the end only)")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(
                f"loop.temperature must be a finite number > 0, got {self.temperature}"
            )


@dataclass
class TrainConfig:
    world: WorldConfig = field(default_factory=WorldConfig)
    # set: a world of existing models and datasets instead of the built-in one
    external: ExternalConfig | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    # individual: one arm per RM | ensemble: one arm, all RMs | gold: one arm, the task's
    # gold checker as the reward (the ceiling of what RL can do in this world)
    pool: str = "individual"
    ensemble: str = "mean"  # mean | min | mean_minus_std | agreement (pool=ensemble)
    cache_dir: str = ".cache/laser"
    output_dir: str = "outputs/run"
    resume: str | None = None  # a run directory or a checkpoint file
    keep_checkpoints: int = 2
    progress: bool = True
    # RM placement: RMs load lazily (an RM never chosen never loads) and score on rm_device;
    # rm_offload parks each on CPU after it scored, so one RM at a time holds the accelerator
    rm_device: str = "cpu"
    rm_offload: bool = False
    # where the policy (and its reference copy) trains: cpu | cuda | cuda:N; under DDP "cuda"
    # means each rank's own GPU (cuda:LOCAL_RANK)
    device: str = "cpu"
    # robustness experiments (laser/rewards/wrappers.py): Gaussian noise of this many score
    # spreads added to every RM's scores; the RM named rm_turns_bad negates its scores from
    # training step rm_turns_bad_after on
    rm_noise: float = 0.0
    rm_turns_bad: str | None = None
    rm_turns_bad_after: int = 0
    # RMs of the world left out of this run's pool (resume without them to add them mid-run)
    pool_exclude: list[str] = field(default_factory=list)
    # an offline prior (laser-fit-prior; laser/bandits/prior.py) loaded into the linear
    # selector's arms before the first step: BayesianRouter's warm start
    bandit_prior: str | None = None
    # Hydra _target_ nodes (conf groups of the same names), built by laser.build
    bandit: Any = None
    features: Any = None
    feedback: Any = None
    logger: Any = None

    def __post_init__(self) -> None:
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if not (math.isfinite(self.rm_noise) and self.rm_noise >= 0):
            raise ValueError(f"rm_noise must be a finite number >= 0, got {self.rm_noise}")
        if self.rm_turns_bad_after < 0:
            raise ValueError(f"rm_turns_bad_after must be >= 0, got {self.rm_turns_bad_after}")
        if self.pool not in ("individual", "ensemble", "gold"):
            raise ValueError(f"pool must be individual, ensemble or gold, got {self.pool!r}")


TARGETS = ("bandit", "features", "feedback", "logger")


def register_configs() -> None:
    """Put the schemas where conf/*.yaml's defaults lists find them (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
