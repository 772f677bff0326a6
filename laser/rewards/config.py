"""Typed configuration of reward-model training (what ``laser-train-rm`` reads).

Plain dataclasses: the Hydra entry point (``laser.cli``) merges conf/train_rm.yaml into them,
so a wrong type or an unknown key fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from laser.models import TinyGPT2Config


@dataclass
class RMModelConfig:
    # local checkpoint: a sequence classifier with num_labels=1, a bare encoder (a scalar head
    # is added), a causal LM with from_causal_lm=true (its transformer is reused, a scalar head
    # added), or a GGUF file (package:<module>/<file>.gguf; converted once, see laser/gguf.py);
    # null = tiny GPT-2
    path: str | None = None
    from_causal_lm: bool = False
    tokenizer: str | None = None  # defaults to `path`
    tiny: TinyGPT2Config = field(default_factory=TinyGPT2Config)  # used when path is null


@dataclass
class RMDataConfig:
    train: str = MISSING  # .jsonl/.json/.parquet/.csv file, or a hub id when online
    eval: str | None = None  # null: hold out `eval_fraction` of train
    eval_fraction: float = 0.1
    overlong: str = "truncate"  # or "drop": rows over max_length tokens


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0


@dataclass
class TrainRMConfig:
    model: RMModelConfig = field(default_factory=RMModelConfig)
    data: RMDataConfig = field(default_factory=RMDataConfig)
    loss: str = "bradley_terry"  # or "segment_regression"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0
    device: str | None = None  # null: cuda if available, else cpu
    output_dir: str = "outputs/rm"
    cache_dir: str = ".cache/laser"  # where a GGUF model.path is converted (laser/gguf.py)
    progress: bool = True
    logger: Any = field(default_factory=lambda: {"_target_": "laser.logging.NullLogger"})
