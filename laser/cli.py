"""Command-line entry points (Hydra): ``laser-train-rm``, ``laser-prepare``, ``laser-train``
and ``laser-ope``. Configs are composed against the typed schemas of ``laser.config`` and
handed to ``laser.build``, the one place that instantiates them; plain objects are passed on.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from laser.config import register_configs
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
register_configs()  # train_schema / prepare_schema head the defaults lists of conf/*.yaml
log = logging.getLogger("laser")


def compose_train(overrides: list[str]) -> DictConfig:
    """The ``laser-train`` config for ``overrides``, composed in-process (tools and
    experiments that build runs outside Hydra's own entry point, or inside another of our
    Hydra apps, which share conf/). No logger unless asked for; ``output_dir`` (Hydra's run
    directory, unset here) defaults to ".", so it resolves."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    own = [] if any(o.startswith("output_dir=") for o in overrides) else ["output_dir=."]
    overrides = ["logger=none", *own, *overrides]
    if GlobalHydra.instance().is_initialized():  # inside one of our Hydra apps (laser-bon)
        return compose(config_name="train", overrides=overrides)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def to_train_rm_config(cfg: DictConfig) -> TrainRMConfig:
    """Validate a composed config against the dataclass: wrong types and unknown keys fail."""
    schema = OmegaConf.structured(TrainRMConfig)
    merged = OmegaConf.merge(schema, cfg)
    return OmegaConf.to_object(merged)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train_rm")
def train_rm(cfg: DictConfig) -> None:
    from laser.build import build_logger
    from laser.rewards.run import run_train_rm

    config = to_train_rm_config(cfg)
    logger = build_logger(config.logger)
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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def prepare(cfg: DictConfig) -> None:
    """Build (or reuse) the built-in world and print its report."""
    from laser.world import prepare_world

    config = OmegaConf.to_object(cfg)  # composed against prepare_schema: already validated
    start = time.perf_counter()
    world = prepare_world(
        config.world, config.cache_dir, progress=config.progress, use_shipped=config.use_shipped
    )
    print(world.summary["report"])
    from laser.world.shipped import is_shipped_copy

    made = "copied from the shipped build" if is_shipped_copy(world.path) else "built"
    state = "reused" if world.reused else f"{made} in {time.perf_counter() - start:.0f} s"
    print(f"\nworld {state}: {world.path}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def train(cfg: DictConfig) -> None:
    """One LASER run (or baseline); resumable with resume=<run dir>. Every config value is
    checked before any world is built; the run directories are locked against a second
    process; Ctrl-C / SIGTERM finish the step, checkpoint and exit with 130."""
    from laser.distributed import process_group_from_env

    with process_group_from_env():  # torchrun / accelerate launch: one process per rank
        _train(cfg)


def _train(cfg: DictConfig) -> None:
    from contextlib import ExitStack

    from laser.build import build_logger, build_loop, validate
    from laser.distributed import Distributed
    from laser.interrupt import GracefulStop
    from laser.logging import NullLogger, run_metadata
    from laser.orchestrator import RunInterrupted
    from laser.resume import resume_point, run_dirs
    from laser.runlock import RunLock

    main = Distributed().is_main
    config = validate(cfg)
    point = resume_point(config)
    with ExitStack() as stack:
        for directory in run_dirs(config) if main else []:  # rank 0 writes for everyone
            stack.enter_context(RunLock(directory))
        resume_step = point[1] if point else None  # logs are cut back to the checkpoint
        logger = build_logger(cfg.logger, resume_step=resume_step) if main else NullLogger()
        stack.callback(logger.close)
        logger.log_run_info(run_metadata(OmegaConf.to_container(cfg, resolve=True), cfg.loop.seed))
        stop = stack.enter_context(GracefulStop())
        loop = build_loop(cfg, logger)
        try:
            final = loop.run(progress=cfg.progress and main, stop=stop)
        except RunInterrupted as exc:
            print(
                f"{exc}; continue with resume={exc.checkpoint.parent.parent}"
                if exc.checkpoint
                else str(exc)
            )
            raise SystemExit(130) from None
    cost = loop.global_rm_cost()  # a collective: every rank takes part
    picks = ", ".join(f"{k}: {v}" for k, v in sorted(loop.router.arms.picks.items()))
    if main:
        print(
            f"final gold accuracy {final.accuracy:.3f} after {loop.step_count} steps; "
            f"RM forward samples {cost} (all ranks); selections {picks}"
        )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="ope")
def ope(cfg: DictConfig) -> None:
    """Off-policy evaluation of a selector from a run's logged decisions (laser-ope)."""
    from laser.build import build_selector
    from laser.checkpoint import load_checkpoint
    from laser.ope import read_decisions, report

    log = read_decisions(cfg.run_dir)
    names = _arm_names(Path(cfg.run_dir), log.num_arms)
    target = build_selector(cfg.bandit, names, dim=lambda: log.contexts.shape[1])
    arm = cfg.bandit.get("arm")
    if cfg.checkpoint:
        target.load_state_dict(load_checkpoint(Path(cfg.checkpoint))["selector"])
    name = cfg.bandit._target_.rsplit(".", 1)[-1] + (f"(arm={arm})" if arm is not None else "")
    print(report(log, target, name, cfg.l2_lambda))


def _arm_names(run_dir: Path, num_arms: int) -> list[str]:
    """RM names by arm index, as the decision log recorded them."""
    import json

    names: dict[int, str] = {}
    for line in (run_dir / "decisions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            names.setdefault(int(row["arm"]), row["rm"])
    return [names.get(k, f"arm{k}") for k in range(max(num_arms, max(names) + 1))]
