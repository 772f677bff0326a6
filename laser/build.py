"""Build a LASER run from its composed config: the ONLY place that instantiates config nodes.

Run-time values are declared, not guessed: a config node marks each value it needs from the
run with ``???`` (``num_arms: ???``, ``dim: ???``, ``policy: ???``, ``probe: ???`` ...) and
:func:`instantiate_filled` fills exactly those from what the run provides, or names the one it
cannot fill. ``laser.cli`` (Hydra) and ``laser-compare`` call :func:`build_loop`; tests call
it with composed configs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from transformers.utils import logging as hf_logging

from laser.bandits.baselines import RoundRobin, arm_by_name
from laser.bandits.prior import ArmPrior, apply_prior
from laser.checkpoint import save_checkpoint
from laser.config import TARGETS, TrainConfig
from laser.distributed import Distributed
from laser.evaluation import Evaluator
from laser.features import Normalized, Projected, minilm_path
from laser.feedback import NoFeedback, task_checker
from laser.granularity import PerBatch, PerPrompt
from laser.logging import DecisionWriter, NullLogger
from laser.orchestrator import Orchestrator
from laser.policy import PolicyTrainer
from laser.resume import fingerprint, resume, resume_point
from laser.rewards import (
    AgreementEnsemble,
    FunctionReward,
    MeanEnsemble,
    MinEnsemble,
    UncertaintyEnsemble,
)
from laser.rewards.wrappers import NoisyReward, TurnsBad
from laser.routing import Router
from laser.world import prepare_world
from laser.world.external import ExternalWorld
from laser.world.prepare import make_suite
from laser.world.quality import best_overall, oracle_routes, oracle_tiers

ENSEMBLES = {
    "mean": MeanEnsemble,
    "min": MinEnsemble,
    "mean_minus_std": UncertaintyEnsemble,
    "agreement": AgreementEnsemble,
}
GRANULARITY = {"batch": PerBatch, "prompt": PerPrompt}


def instantiate_filled(node: DictConfig, where: str, **provided: Callable[[], Any]) -> Any:
    """Instantiate ``node`` with each of its ``???`` values taken from ``provided`` (called
    only for the values the node asks for); objects pass through untouched."""
    plain = OmegaConf.to_container(node, resolve=True)
    missing = [k for k, v in plain.items() if v == "???"]
    unknown = [k for k in missing if k not in provided]
    if unknown:
        raise ValueError(
            f"{where}.{unknown[0]} is ??? (a run-time value) but this run cannot provide it; "
            f"set it in the config ({where}.{unknown[0]}=...)"
        )
    factory = instantiate({k: v for k, v in plain.items() if k not in missing}, _partial_=True)
    return factory(**{k: provided[k]() for k in missing})


def typed(cfg: DictConfig) -> TrainConfig:
    """The typed keys as a TrainConfig (validated: wrong types, unknown keys, bad values)."""
    keys = [f for f in TrainConfig.__dataclass_fields__ if f in cfg and f not in TARGETS]
    plain = OmegaConf.masked_copy(cfg, keys)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), plain))


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


class RunCheckpointer:
    """Writes the loop's state to ``<directory>/ckpt-*.pt`` (atomic, last ``keep`` kept)."""

    def __init__(
        self,
        directory: str | Path,
        pool_description: dict[str, str],
        keep: int = 2,
        config: dict[str, Any] | None = None,
    ):
        self.directory, self.keep = Path(directory), keep
        self.pool_description, self.config = pool_description, config or {}

    def save(self, loop: Orchestrator) -> Path | None:
        """Every rank gathers the state (it holds collectives); rank 0 alone writes it."""
        state = {**loop.state_dict(), "pool": self.pool_description, "config": self.config}
        if not loop.dist.is_main:
            return None
        return save_checkpoint(self.directory, loop.step_count, state, keep=self.keep)


def rm_placement(cfg: TrainConfig) -> dict[str, Any]:
    """How every RM (the pool's, an external world's judge) is loaded and placed."""
    return dict(max_length=cfg.world.max_length, device=cfg.rm_device, offload=cfg.rm_offload)


def build_pool(cfg: TrainConfig, world, task) -> dict[str, Any]:
    """One arm per RM, one arm holding the ensemble, or one arm that is the task's gold
    checker (the ceiling: RL with the verifier as its reward)."""
    if cfg.pool == "gold":
        return {"gold": FunctionReward(task_checker(task), "gold")}
    rms = world.reward_models(**rm_placement(cfg))
    unknown = [n for n in cfg.pool_exclude if n not in rms]
    if unknown:
        raise ValueError(f"pool_exclude names RM(s) {unknown} the world lacks: {list(rms)}")
    rms = degrade(cfg, {n: rm for n, rm in rms.items() if n not in cfg.pool_exclude})
    if cfg.pool == "individual":
        return rms
    if cfg.pool != "ensemble" or cfg.ensemble not in ENSEMBLES:
        raise ValueError(
            f"pool must be 'individual' or 'ensemble' (with ensemble in "
            f"{sorted(ENSEMBLES)}), got {cfg.pool!r} / {cfg.ensemble!r}"
        )
    ensemble = ENSEMBLES[cfg.ensemble](list(rms.values()), name=f"{cfg.ensemble}_ensemble")
    return {ensemble.name: ensemble}


def degrade(cfg: TrainConfig, rms: dict[str, Any]) -> dict[str, Any]:
    """The robustness experiments' faults: score noise on every RM, one RM that turns bad."""
    if cfg.rm_turns_bad is not None:
        if cfg.rm_turns_bad not in rms:
            raise ValueError(f"rm_turns_bad={cfg.rm_turns_bad!r} is not in the pool {list(rms)}")
        name = cfg.rm_turns_bad
        rms = {**rms, name: TurnsBad(rms[name], cfg.rm_turns_bad_after)}
    if cfg.rm_noise > 0:
        seed = cfg.loop.seed
        rms = {
            n: NoisyReward(rm, cfg.rm_noise, seed + 101 * k)
            for k, (n, rm) in enumerate(rms.items())
        }
    return rms


def build_featurizer(node: DictConfig, seed: int, **provided: Callable[[], Any]):
    """The context featurizer (its ??? values from ``provided``), projected / normalised."""
    featurizer = instantiate_filled(
        node.featurizer, "features.featurizer", path=minilm_path, **provided
    )
    if node.get("projection_dim"):
        normalize = bool(node.get("normalize", True))
        return Projected(featurizer, int(node.projection_dim), seed=seed, normalize=normalize)
    return Normalized(featurizer) if node.get("normalize") else featurizer


def build_feedback(node: DictConfig, **provided: Callable[[], Any]):
    """(signal, normaliser) of the ``feedback`` group."""
    signal = instantiate_filled(node.signal, "feedback.signal", **provided)
    return signal, instantiate(node.normalizer)


def check_feedback(cfg: DictConfig, config: TrainConfig) -> None:
    """Refuse, before any world is built, a feedback that carries nothing for the update, and
    round-robin without feedback: it takes its next turn after each selector update, so with
    none it would silently stay on the first RM (a fixed-RM run under another name)."""
    signal = get_class(cfg.feedback.signal._target_)
    signal.check_update(config.policy)
    if get_class(cfg.bandit._target_) is RoundRobin and signal is NoFeedback:
        raise ValueError(
            "bandit=round_robin takes its next turn after each selector update and "
            "feedback=none gives it none: it would stay on the first RM. Use "
            "feedback=majority_agreement (no RM passes; round-robin ignores the values)"
        )


def build_selector(
    node: DictConfig,
    names: list[str],
    best: Callable[[], str] | None = None,
    **provided: Callable[[], Any],
):
    """The selector over the RMs ``names``; a fixed arm may be given by RM name, or as
    ``best``: the RM ``best()`` names (the world's best by its report). A value the selector
    rejects (or does not take) is an error naming the key and the selector."""
    if isinstance(node.get("arm"), str):
        node = copy.deepcopy(node)
        if node.arm == "best" and best is None:
            raise ValueError("bandit.arm=best needs a world report to pick the best RM from")
        name = best() if node.arm == "best" else node.arm
        node.arm = arm_by_name(name, names, "in the pool")
    try:
        return instantiate_filled(node, "bandit", num_arms=lambda: len(names), **provided)
    except (InstantiationException, TypeError, ValueError) as exc:
        cause = exc.__cause__ if isinstance(exc, InstantiationException) else exc
        raise ValueError(f"bandit={node._target_.rsplit('.', 1)[-1]}: {cause}") from exc


def planned_rm_names(config: TrainConfig) -> list[str]:
    """The pool's arm names as the config declares them (no world needed)."""
    if config.pool == "ensemble":
        return [f"{config.ensemble}_ensemble"]
    if config.pool == "gold":
        return ["gold"]
    names = config.external.reward_models if config.external else config.world.reward_models
    return [n for n in names if n not in config.pool_exclude]


def validate(cfg: DictConfig) -> TrainConfig:
    """Every config value checked before any world is built or model loaded: the typed keys
    (types, unknown keys, ranges), the feedback against the update rule, and the selector,
    the normaliser and the featurizer's sizes, built once on placeholder sizes."""
    config = typed(cfg)
    check_feedback(cfg, config)
    if config.pool == "ensemble" and config.ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {sorted(ENSEMBLES)}, got {config.ensemble!r}")
    projection = cfg.features.get("projection_dim")
    if projection is not None and not (isinstance(projection, int) and projection >= 1):
        raise ValueError(f"features.projection_dim must be an integer >= 1, got {projection!r}")
    dim, names = projection or 4, planned_rm_names(config)
    build_selector(  # the real sizes (and the best RM, from the world's report) come later
        cfg.bandit,
        names,
        best=lambda: names[0],
        dim=lambda: dim,
        routes=lambda: [0] * dim,
        tiers=lambda: [[0]] * dim,
    )
    instantiate(cfg.feedback.normalizer)
    if config.bandit_prior is not None and not config.resume:
        ArmPrior.load(config.bandit_prior)  # missing or corrupt: refused before any work
    signal, probe_size = cfg.feedback.signal, cfg.feedback.get("probe_size")
    if "probe" in signal.keys() and OmegaConf.is_missing(signal, "probe"):  # a probe signal
        if not (isinstance(probe_size, int) and probe_size >= 1):
            raise ValueError(f"feedback.probe_size must be an integer >= 1, got {probe_size!r}")
    return config


def build_logger(node: Any, resume_step: int | None = None):
    """The run's logger; ``resume_step``: cut its file back to the checkpoint's step."""
    return instantiate(node, resume_step=resume_step)


def open_world(config: TrainConfig, progress: bool | None = None):
    """The world alone: an external one (no model loads until used; its report, if any, read)
    or the built-in one (built once, then reused from the cache). ``progress`` defaults to the
    run's."""
    if config.external is not None:
        return ExternalWorld(config.external, config.cache_dir)
    shown = config.progress if progress is None else progress
    return prepare_world(config.world, config.cache_dir, progress=shown)


def load_world(config: TrainConfig):
    """(world, task): :func:`open_world` and its task (an external world's tasks, with the
    judge of open-ended ones placed like the pool's RMs; the built-in suite)."""
    world = open_world(config)
    if config.external is not None:
        return world, world.task(**rm_placement(config))
    return world, make_suite(config.world)


def build_router(
    cfg: DictConfig,
    config: TrainConfig,
    world,
    task,
    pool: dict[str, Any],
    policy,
    tokenizer,
    *,
    fresh: bool = True,
    dist: Distributed | None = None,
    decisions: DecisionWriter | None = None,
) -> tuple[Router, Any]:
    """(router, featurizer) over ``pool``: the featurizer (on ``policy`` where it reads one),
    the selector (warm from ``bandit_prior`` when ``fresh``), the feedback signal and its
    normaliser. Shared by the training loop and best-of-n selection (``laser.bon``)."""
    seed = config.loop.seed
    domains = list(task.domains)
    featurizer = build_featurizer(
        cfg.features,
        seed,
        policy=lambda: policy,
        tokenizer=lambda: tokenizer,
        domains=lambda: domains,
    )
    selector = build_selector(
        cfg.bandit,
        list(pool),
        best=lambda: best_overall(world, list(pool)),
        dim=lambda: featurizer.dim,
        routes=lambda: oracle_routes(world, list(pool), featurizer),
        tiers=lambda: oracle_tiers(world, list(pool), featurizer),
    )
    if config.bandit_prior is not None and fresh:
        apply_prior(selector, ArmPrior.load(config.bandit_prior), list(pool), featurizer)
    signal, normalizer = build_feedback(
        cfg.feedback,
        probe=lambda: task.examples("eval", int(cfg.feedback.probe_size), seed=seed + 29),
        policy=lambda: policy,
        tokenizer=lambda: tokenizer,
        task=lambda: task,
        checker=lambda: task_checker(task),
        pool=lambda: pool,
    )
    router = Router(
        pool,
        selector,
        normalizer,
        GRANULARITY[config.loop.selection](),
        signal,
        quarantine_after=config.loop.quarantine_after,
        dist=dist,
        decisions=decisions,
    )
    return router, featurizer


def build_loop(cfg: DictConfig, logger: Any) -> Orchestrator:
    """Everything a run needs, restored from a checkpoint when ``resume`` is set."""
    config = validate(cfg)
    point = resume_point(config)  # before any work: a resume without a checkpoint fails here
    if not config.progress:  # quiet runs (sweeps) also skip transformers' per-load bars
        hf_logging.disable_progress_bar()
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
    seed = config.loop.seed
    torch.manual_seed(seed + dist.rank)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tokenizer, config.policy, dist)
    pool = build_pool(config, world, task)
    run_dir = Path(
        config.resume if config.resume and Path(config.resume).is_dir() else config.output_dir
    )
    decisions = None
    if config.loop.log_decisions and dist.is_main:  # cut back to the checkpoint on resume
        resume_step = point[1] if point else None
        decisions = DecisionWriter(run_dir / "decisions.jsonl", resume_step=resume_step)
    router, featurizer = build_router(
        cfg,
        config,
        world,
        task,
        pool,
        trainer.policy,
        tokenizer,
        fresh=point is None,  # a checkpoint already holds the prior
        dist=dist,
        decisions=decisions,
    )
    eval_examples = task.examples("eval", config.loop.eval_size, seed=seed + 17)
    loop = Orchestrator(
        trainer=trainer,
        tokenizer=tokenizer,
        task=task,
        router=router,
        featurizer=featurizer,
        evaluator=Evaluator(task, eval_examples, tokenizer, config.loop.eval_max_new_tokens, dist),
        logger=logger,
        config=config.loop,
        checkpointer=RunCheckpointer(
            run_dir / "checkpoints",
            world.reward_model_sources(),
            config.keep_checkpoints,
            fingerprint(cfg),
        ),
        dist=dist,
    )
    if point is not None:
        resume(loop, point[0], fingerprint(cfg))
    return loop
