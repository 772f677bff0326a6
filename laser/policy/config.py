"""Typed configuration of the policy trainer (paper names: clip_coef, gae_lambda, vf_coef, beta)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

ALGOS = ("ppo", "a2c", "dpo")


@dataclass
class PolicyConfig:
    """The one source of the trainer's defaults (conf/policy/*.yaml only pick ``algo``)."""

    algo: str = "ppo"  # ppo | a2c | dpo
    lr: float = 1e-4
    optimizer: str = "adamw"  # adamw | adam | sgd
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    # --- PPO / A2C (Schulman et al. 2017; Mnih et al. 2016)
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    vf_clip: float | None = 0.2  # value clipping (PPO only); null disables
    ent_coef: float = 0.0
    kl_coef: float = 0.05  # KL-to-reference penalty folded into the per-token reward
    kl_estimator: str = "k1"  # k1 | k3
    ppo_epochs: int = 1  # one on-policy pass per rollout (TRL's num_iterations=1)
    num_minibatches: int = 1
    whiten_advantages: bool = True
    critic: str = "shared"  # shared: value head on the policy trunk | separate: own trunk copy
    # --- iterative DPO (Rafailov et al. 2023; LASeR: DPO + NLL on chosen)
    beta: float = 0.1
    dpo_loss: str = "sigmoid"  # sigmoid | ipo
    nll_coef: float = 1.0
    pair_scheme: str = "laser"  # laser | best_vs_worst
    max_pairs: int = 4
    dpo_epochs: int = 1
    ref_sync: bool = True  # refresh the reference to the policy after every DPO update
    # --- LoRA through peft (if installed); 0 disables
    lora_r: int = 0
    lora_alpha: int = 16
    lora_target_modules: tuple[str, ...] | None = None
    # adapt only the top N decoder layers (0: all). Nothing below them then needs a gradient,
    # so the backward pass stops at the lowest adapted layer: on a 30-layer 135M model on a
    # CPU the update costs a fraction of full-depth LoRA (benchmarks/real_update.py)
    lora_layers: int = 0

    def __post_init__(self) -> None:
        choices = {
            "algo": ALGOS,
            "optimizer": ("adamw", "adam", "sgd"),
            "kl_estimator": ("k1", "k3"),
            "critic": ("shared", "separate"),
            "dpo_loss": ("sigmoid", "ipo"),
            "pair_scheme": ("laser", "best_vs_worst"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"policy.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        positive = ("lr", "beta", "ppo_epochs", "num_minibatches", "max_pairs", "dpo_epochs")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"policy.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"policy.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("clip_coef", "vf_coef", "ent_coef", "kl_coef", "nll_coef", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"policy.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lora_layers < 0:
            raise ValueError(f"policy.lora_layers must be >= 0, got {self.lora_layers!r}")
        if self.lora_layers and not (self.lora_r > 0 and self.lora_target_modules):
            raise ValueError(
                "policy.lora_layers needs policy.lora_r > 0 and policy.lora_target_modules "
                "(peft restricts LoRA to chosen layers only for named target modules)"
            )
        for f in fields(self):  # inf/NaN pass every comparison above in one direction or other
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"policy.{f.name} must be finite, got {value!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
