"""Assemble a LASER run from a validated config: world, pool, selector, featurizer, feedback,
logger, trainer, checkpoints. ``laser.cli.train`` (Hydra) calls ``build_loop``; tests call it
directly with composed configs.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from laser.bandits.baselines import arm_by_name
from laser.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from laser.distributed import Distributed
from laser.features import Normalized, Projected, minilm_path
from laser.logging import DecisionWriter, NullLogger
from laser.orchestrator import LoopConfig, Orchestrator
from laser.policy import PolicyConfig, PolicyTrainer
from laser.rewards import AgreementEnsemble, MeanEnsemble, MinEnsemble, UncertaintyEnsemble
from laser.world import WorldConfig, prepare_world
from laser.world.external import ExternalConfig, ExternalWorld
from laser.world.prepare import make_suite

ENSEMBLES = {
    "mean": MeanEnsemble,
    "min": MinEnsemble,
    "mean_minus_std": UncertaintyEnsemble,
    "agreement": AgreementEnsemble,
}


@dataclass
class TrainConfig:
    """The typed part of conf/train.yaml; ``bandit``, ``features``, ``feedback`` and
    ``logger`` are Hydra ``_target_`` nodes instantiated as they are."""

    world: WorldConfig = field(default_factory=WorldConfig)
    # set: a world of existing models and datasets instead of the built-in one
    external: ExternalConfig | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    pool: str = "individual"  # individual: one arm per RM | ensemble: one arm, all RMs
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


def check_cuda(**settings: str) -> None:
    for name, value in settings.items():
        if value.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"{name}={value!r} but this machine has no CUDA device")


def policy_device(device: str, dist: Distributed) -> torch.device:
    """``device`` checked, with "cuda" resolved to this rank's GPU under DDP."""
    check_cuda(device=device)
    if device == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return torch.device(device)


def typed(cfg: DictConfig) -> TrainConfig:
    """Validate the typed keys (wrong types, unknown keys, bad values fail here)."""
    keys = [f for f in TrainConfig.__dataclass_fields__ if f in cfg]
    plain = OmegaConf.masked_copy(cfg, keys)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), plain))


class RunCheckpointer:
    """Writes the loop's state to ``<directory>/ckpt-*.pt`` (atomic, last ``keep`` kept)."""

    def __init__(self, directory: str | Path, pool_description: dict[str, str], keep: int = 2):
        self.directory, self.keep = Path(directory), keep
        self.pool_description = pool_description

    def save(self, loop: Orchestrator) -> Path | None:
        """Every rank gathers the state (it holds collectives); rank 0 alone writes it."""
        state = {**loop.state_dict(), "pool": self.pool_description}
        if not loop.dist.is_main:
            return None
        return save_checkpoint(self.directory, loop.step_count, state, keep=self.keep)


def rm_placement(cfg: TrainConfig) -> dict[str, Any]:
    """How every RM (the pool's, an external world's judge) is loaded and placed."""
    return dict(max_length=cfg.world.max_length, device=cfg.rm_device, offload=cfg.rm_offload)


def build_pool(cfg: TrainConfig, world) -> dict[str, Any]:
    rms = world.reward_models(**rm_placement(cfg))
    if cfg.pool == "individual":
        return rms
    if cfg.pool != "ensemble" or cfg.ensemble not in ENSEMBLES:
        raise ValueError(
            f"pool must be 'individual' or 'ensemble' (with ensemble in "
            f"{sorted(ENSEMBLES)}), got {cfg.pool!r} / {cfg.ensemble!r}"
        )
    ensemble = ENSEMBLES[cfg.ensemble](list(rms.values()), name=f"{cfg.ensemble}_ensemble")
    return {ensemble.name: ensemble}


def build_featurizer(node: DictConfig, policy, tokenizer, domains: list[str], seed: int):
    """Instantiate the featurizer, giving it whichever of policy/tokenizer/domains it takes."""
    partial = instantiate(node.featurizer)
    wanted = inspect.signature(partial.func).parameters
    available = {"policy": policy, "tokenizer": tokenizer, "domains": domains}
    if "path" in wanted:  # a sentence encoder: the configured path or the shipped MiniLM
        available["path"] = node.get("path") or minilm_path()
    featurizer = partial(**{k: v for k, v in available.items() if k in wanted})
    if node.get("projection_dim"):
        featurizer = Projected(
            featurizer,
            int(node.projection_dim),
            seed=seed,
            normalize=bool(node.get("normalize", True)),
        )
    elif node.get("normalize"):
        featurizer = Normalized(featurizer)
    return featurizer


def build_feedback(node: DictConfig, task, seed: int):
    signal = instantiate(node.signal)
    if callable(signal) and not hasattr(signal, "after"):  # a partial waiting for its probe
        probe = task.examples("eval", int(node.probe_size), seed=seed + 29)
        signal = signal(probe=probe)
    return signal, instantiate(node.normalizer)


def best_rm_per_domain(world, names: list[str], domains: list[str]) -> list[str]:
    """For each domain, the RM among ``names`` with the best held-out pairwise accuracy there
    (the world's report): what the oracle router and routing accuracy measure against."""
    matrix = world.summary["rm_domain_accuracy"]
    missing = [n for n in names if n not in matrix]
    if missing:
        raise ValueError(f"the world's report has no accuracy for RM(s) {missing}")
    return [max(names, key=lambda n: matrix[n][d]) for d in domains]


def selector_args(node: DictConfig, pool: dict, featurizer, world) -> dict[str, Any]:
    """Run-time constructor values: pool size, context dim, a fixed arm given by RM name,
    the oracle router's routes."""
    names = list(pool)
    args: dict[str, Any] = {"num_arms": len(names)}
    if "dim" in node.keys():
        args["dim"] = featurizer.dim
    if isinstance(node.get("arm"), str):
        args["arm"] = arm_by_name(node.arm, names, "in the pool")
    if "routes" in node.keys() and node.routes is None:
        domains = getattr(featurizer, "domains", None)
        if domains is None:
            raise ValueError("the oracle router needs features=domain_onehot")
        args["routes"] = [names.index(n) for n in best_rm_per_domain(world, names, domains)]
    return args


def load_world(config: TrainConfig):
    """(world, task): the built-in world (built or reused from the cache), or an external one
    (``external``: existing models and datasets)."""
    if config.external is not None:
        world = ExternalWorld(config.external)
        return world, world.task(**rm_placement(config))
    world = prepare_world(config.world, config.cache_dir, progress=config.progress)
    return world, make_suite(config.world)


def build_loop(cfg: DictConfig, logger: Any) -> Orchestrator:
    """Everything a run needs, restored from a checkpoint when ``resume`` is set."""
    config = typed(cfg)
    dist = Distributed()
    if not dist.is_main:  # rank 0 alone logs (and writes checkpoints and decisions)
        logger = NullLogger()
    check_cuda(rm_device=config.rm_device)  # before any world is built
    device = policy_device(config.device, dist)
    if not dist.is_main:
        dist.barrier()  # rank 0 builds or checks the cached world first; the others read it
    world, task = load_world(config)
    if dist.is_main:
        dist.barrier()
    tokenizer = world.tokenizer()
    policy = world.policy().to(device)
    # sampling uses the global RNG: seed it after the (possibly cached) world is ready, so a
    # run depends on its seed alone, not on whether the world had to be built first
    torch.manual_seed(config.loop.seed + dist.rank)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tokenizer, config.policy, dist)
    pool = build_pool(config, world)
    featurizer = build_featurizer(
        cfg.features, trainer.policy, tokenizer, list(task.domains), config.loop.seed
    )
    selector = instantiate(cfg.bandit, **selector_args(cfg.bandit, pool, featurizer, world))
    signal, normalizer = build_feedback(cfg.feedback, task, config.loop.seed)
    description = world.reward_model_sources()
    run_dir = Path(
        config.resume if config.resume and Path(config.resume).is_dir() else config.output_dir
    )
    checkpointer = RunCheckpointer(run_dir / "checkpoints", description, config.keep_checkpoints)
    loop = Orchestrator(
        trainer=trainer,
        tokenizer=tokenizer,
        task=task,
        pool=pool,
        selector=selector,
        featurizer=featurizer,
        feedback=signal,
        normalizer=normalizer,
        logger=logger,
        config=config.loop,
        checkpointer=checkpointer,
        decisions=(
            DecisionWriter(run_dir / "decisions.jsonl", append=bool(config.resume))
            if config.loop.log_decisions and dist.is_main
            else None
        ),
        dist=dist,
    )
    if config.resume:
        resume(loop, Path(config.resume))
    return loop


def resume(loop: Orchestrator, where: Path) -> Path:
    """Load the newest checkpoint of a run directory (or the given checkpoint file)."""
    path = where if where.is_file() else latest_checkpoint(where / "checkpoints")
    if path is None:
        raise FileNotFoundError(f"no checkpoint to resume from in {where / 'checkpoints'}")
    loop.load_state_dict(load_checkpoint(path))
    print(f"resumed from {path} at step {loop.step_count}")
    return path
