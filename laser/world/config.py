"""Typed configuration of the built-in world (what ``laser-prepare`` builds).

The defaults are the default world: four domains, a tiny SFT policy, and a pool of reward
models each with its own flaws. ``conf/prepare.yaml`` and ``conf/reward_models/*.yaml`` hold
the same values for Hydra; these dataclasses validate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from laser.models import TinyGPT2Config
from laser.tasks.synthetic import Difficulty


@dataclass
class TaskConfig:
    domains: list[str] = field(default_factory=lambda: ["reverse", "sort", "max"])
    difficulty: Difficulty = field(default_factory=Difficulty)


def world_model() -> TinyGPT2Config:
    return TinyGPT2Config(n_layer=2, n_head=4, n_embd=128, n_positions=64)


@dataclass
class SFTConfig:
    """Supervised warm start on demonstrations of which ``shortcut_share`` take the domain's
    systematic mistake: long enough to learn both, so RL has room and something to find."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    train_examples: int = 8000
    eval_per_domain: int = 100
    # share of demonstrations whose answer is the domain's systematic mistake
    # (laser/tasks/shortcuts.py): the policy learns both, greedy decoding is right on about
    # half the prompts, and RL with a reward that tells them apart lifts it to ~1.0
    shortcut_share: float = 0.45


@dataclass
class RMSpec:
    """One reward model of the pool and its flaws (its name is its key in the pool)."""

    domains: list[str] = field(default_factory=list)  # the domains its training pairs cover
    label_noise: float = 0.0  # share of training pairs with chosen/rejected swapped
    length_bias: float = 0.0  # share of pairs preferring a longer WRONG answer ...
    bias_domains: list[str] | None = None  # ... on these domains (null: all of its domains)
    # where the rejected answer of an (unbiased) pair comes from: a wrong sample of the SFT
    # policy with probability on_policy, else a malformed answer (wrong shape or alphabet)
    # with probability malformed, else a same-shape corruption. Without the first two every
    # RM was exploited by RL within a few dozen steps (laser/world/negatives.py).
    on_policy: float = 0.5
    malformed: float = 0.3
    pairs_per_domain: int = 1500
    # domains it saw only a little of: weak_pairs pairs each, weak_label_noise of them flipped,
    # weak_shortcut_bias of them preferring the domain's shortcut (laser/tasks/shortcuts.py)
    weak_domains: list[str] = field(default_factory=list)
    weak_pairs: int = 200
    weak_label_noise: float = 0.0
    weak_shortcut_bias: float = 0.0
    # hard-negative mining: this many prompts per home domain get the near miss the trained
    # RM likes best as a new negative, then the RM is trained again (0: off)
    hard_negatives: int = 0
    epochs: int = 5
    lr: float = 1e-3
    model: TinyGPT2Config = field(default_factory=world_model)


@dataclass
class WorldConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    policy_model: TinyGPT2Config = field(default_factory=world_model)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward_models: dict[str, RMSpec] = field(default_factory=dict)
    eval_pairs_per_domain: int = 200
    # share of the held-out pairs (the RM x domain report) whose wrong answer is the domain's
    # shortcut; the rest are same-shape corruptions
    heldout_shortcut_share: float = 0.5
    seed: int = 0
    max_length: int = 48
    # torch CPU threads of the build. Part of the world, not a speed knob: the float reduction
    # order depends on it, and tiny RMs off their expertise swing with that noise (the 1-thread
    # build of seed 0 is another world: README). 2 built the committed report.
    threads: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"world.threads must be an integer >= 1, got {self.threads!r}")


@dataclass
class PrepareConfig:
    """``laser-prepare``: the world (which determines the cache key) and where to cache it."""

    world: WorldConfig = field(default_factory=WorldConfig)
    cache_dir: str = ".cache/laser"
    progress: bool = True
    # copy the build shipped for this config (laser/world/builds) instead of building: the
    # same weights on every machine (laser.world.shipped says why); false builds it here
    use_shipped: bool = True
