"""Command-line entry points. The only place that touches Hydra: configs become typed
dataclasses here and plain objects are passed on.

``laser-train-rm``: train and save a reward model (conf/train_rm.yaml).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from laser.rewards.config import TrainRMConfig


def conf_dir() -> str:
    """conf/ of a source checkout (``pip install -e .``), or $LASER_CONF_DIR."""
    path = Path(os.environ.get("LASER_CONF_DIR") or Path(__file__).resolve().parent.parent / "conf")
    if not (path / "train_rm.yaml").exists():
        raise SystemExit(
            f"LASER's Hydra configs were not found at {path}: install from a source "
            "checkout (pip install -e .) or set LASER_CONF_DIR to its conf/ folder"
        )
    return str(path)


CONF_DIR = conf_dir()
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
    if "eval_accuracy" in metrics:
        summary = f"eval pairwise accuracy {metrics['eval_accuracy']:.4f}"
    elif "eval_loss" in metrics:
        summary = f"eval loss {metrics['eval_loss']:.4f}"
    else:
        summary = "no eval example (all dropped)"
    print(
        f"saved reward model to {config.output_dir}: {summary}, "
        f"train loss {metrics['loss']:.4f}, {metrics['time_s']:.1f} s"
    )


def to_prepare_config(cfg: DictConfig):
    """Validate a composed laser-prepare config against laser.world.PrepareConfig."""
    from laser.world.config import PrepareConfig

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PrepareConfig), cfg))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def prepare(cfg: DictConfig) -> None:
    """Build (or reuse) the built-in world and print its report."""
    from laser.world import prepare_world

    config = to_prepare_config(cfg)
    world = prepare_world(config.world, config.cache_dir, progress=config.progress)
    print(world.summary["report"])
    timings = world.summary["timings"]
    state = "reused" if world.reused else f"built in {sum(timings.values()):.0f} s"
    print(f"\nworld {state}: {world.path}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def train(cfg: DictConfig) -> None:
    """One LASER run (or baseline) on the built-in world; resumable with resume=<run dir>."""
    from laser.distributed import Distributed, init_from_env
    from laser.logging import NullLogger, run_metadata
    from laser.train import build_loop

    init_from_env()  # torchrun / accelerate launch: one process per rank
    main = Distributed().is_main
    logger = instantiate(cfg.logger) if main else NullLogger()  # rank 0 alone logs
    logger.log_run_info(run_metadata(OmegaConf.to_container(cfg, resolve=True), cfg.loop.seed))
    try:
        loop = build_loop(cfg, logger)
        final = loop.run(progress=cfg.progress and main)
    finally:
        logger.close()
    cost = loop.global_rm_cost()  # a collective: every rank takes part
    picks = ", ".join(f"{k}: {v}" for k, v in sorted(loop.picks.items()))
    if main:
        print(
            f"final gold accuracy {final['eval/accuracy']:.3f} after {loop.step_count} steps; "
            f"RM forward samples {cost} (all ranks); selections {picks}"
        )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="ope")
def ope(cfg: DictConfig) -> None:
    """Off-policy evaluation of a selector from a run's logged decisions (laser-ope)."""
    from laser.bandits.baselines import arm_by_name
    from laser.checkpoint import load_checkpoint
    from laser.ope import read_decisions, report

    log = read_decisions(cfg.run_dir)
    sizes = {"num_arms": log.num_arms}
    if "dim" in cfg.bandit.keys():
        sizes["dim"] = log.contexts.shape[1]
    arm = cfg.bandit.get("arm")
    if isinstance(arm, str):
        sizes["arm"] = arm_by_name(arm, _arm_names(Path(cfg.run_dir)), "among the logged RMs")
    target = instantiate(cfg.bandit, **sizes)
    if cfg.checkpoint:
        target.load_state_dict(load_checkpoint(Path(cfg.checkpoint))["selector"])
    name = cfg.bandit._target_.rsplit(".", 1)[-1] + (f"(arm={arm})" if arm is not None else "")
    print(report(log, target, name, cfg.l2_lambda))


def _arm_names(run_dir: Path) -> list[str]:
    """RM names by arm index, as the decision log recorded them."""
    import json

    names: dict[int, str] = {}
    for line in (run_dir / "decisions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            names.setdefault(int(row["arm"]), row["rm"])
    return [names.get(k, f"arm{k}") for k in range(max(names) + 1)]
