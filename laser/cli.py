"""Command-line entry points. The only place that touches Hydra: configs become typed
dataclasses here and plain objects are passed on.

``laser-train-rm``: train and save a reward model (conf/train_rm.yaml).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from laser.rewards.config import TrainRMConfig

# conf/ sits beside the package in a source checkout (pip install -e .)
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("laser")


def to_train_rm_config(cfg: DictConfig) -> TrainRMConfig:
    """Validate a composed config against the dataclass: wrong types and unknown keys fail."""
    schema = OmegaConf.structured(TrainRMConfig)
    merged = OmegaConf.merge(schema, cfg)
    return OmegaConf.to_object(merged)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train_rm")
def train_rm(cfg: DictConfig) -> None:
    from laser.rewards.run import run_train_rm

    config = to_train_rm_config(cfg)
    logger = instantiate(config.logger)
    try:
        metrics = run_train_rm(config, logger)
    finally:
        logger.close()
    acc = metrics.get("eval_accuracy")
    summary = (
        f"eval pairwise accuracy {acc:.4f}"
        if acc is not None
        else (f"eval loss {metrics['eval_loss']:.4f}")
    )
    print(
        f"saved reward model to {config.output_dir}: {summary}, "
        f"train loss {metrics['loss']:.4f}, {metrics['time_s']:.1f} s"
    )
