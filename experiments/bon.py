"""``laser-bon``: best-of-n selection without training, LASER against every baseline.

    laser-bon [prompts=2000] [n=8] [seeds=[0,1,2]] [output_dir=DIR] [only=[laser,random]]

Per seed: P prompts of the world's ``split``; ``n`` samples per prompt from the FIXED SFT
policy, drawn once and shared by every method (a paired comparison); then each method
(``methods``: laser-train overrides, built by ``laser.build`` like a training run) picks one
sample per prompt through the router (``laser.bon``), ``batch_size`` prompts per bandit step.
Also the references that need no RM: the first sample (no selection), the policy's majority
answer, and gold best-of-n (any of the n samples correct: the ceiling of every selector).
Writes results.md, results.csv, seeds.csv and best_of_n.png into ``output_dir``
(``experiments/bon_report.py``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from laser.cli import CONF_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@dataclass
class BonConfig:
    """``laser-bon``'s typed config (conf/bon.yaml overrides it; unknown keys fail)."""

    prompts: int = 2000  # prompts per seed
    n: int = 8  # samples per prompt
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 8  # prompts per bandit step (the loop's batch)
    max_new_tokens: int = 8
    temperature: float = 1.0
    split: str = "eval"  # where the prompts come from: held out from every RM's training
    warmup: float = 0.2  # share of prompts before routing accuracy is counted
    reference: str = "laser"  # the method every other one is compared with
    output_dir: str = "outputs/bon"
    cache_dir: str = ".cache/laser"
    progress: bool = True
    train: list[str] = field(default_factory=list)  # laser-train overrides of every method
    methods: dict[str, list[str]] = field(default_factory=dict)  # name -> its overrides
    fixed_rms: bool = True  # add fixed_<rm>: each RM of the pool alone
    only: list[str] | None = None  # run only these methods (references always run)
    paper: list[str] = field(default_factory=list)  # rows the LASeR paper reports

    def __post_init__(self) -> None:
        for name in ("prompts", "n", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {self.split!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must lie in [0, 1), got {self.warmup}")


ConfigStore.instance().store(name="bon_schema", node=BonConfig)
REFERENCES = ("first_sample", "likeliest_sample", "majority_vote", "gold_best_of_n")


def compose_method(config: BonConfig, overrides: list[str], seed: int) -> DictConfig:
    from laser.cli import compose_train

    return compose_train(
        [
            *config.train,
            *overrides,
            f"loop.seed={seed}",
            f"cache_dir={config.cache_dir}",
            "progress=false",
        ]
    )


def method_overrides(config: BonConfig, rm_names: list[str]) -> dict[str, list[str]]:
    """The methods to run: the config's, one fixed method per RM, filtered by ``only``."""
    methods = dict(config.methods)
    if config.fixed_rms:
        for name in rm_names:
            methods.setdefault(
                f"fixed_{name}", ["bandit=fixed", f"bandit.arm={name}", "feedback=none"]
            )
    if config.only is not None:
        unknown = [m for m in config.only if m not in methods and m not in REFERENCES]
        if unknown:
            raise ValueError(f"only names unknown method(s) {unknown}; known: {sorted(methods)}")
        methods = {k: v for k, v in methods.items() if k in config.only}
    return methods


class SeedSetup:
    """One seed's world, policy, candidates, and the contexts of each featurizer config."""

    def __init__(self, config: BonConfig, seed: int) -> None:
        from laser.bon import draw_candidates
        from laser.build import load_world, typed
        from laser.world.cache import config_key

        base = typed(compose_method(config, [], seed))
        self.seed, self.world_key = seed, config_key(base.world)
        self.world, self.task = load_world(base)
        self.tokenizer, self.policy = self.world.tokenizer(), self.world.policy().eval()
        examples = self.task.examples(config.split, config.prompts, seed=seed)
        self.candidates = draw_candidates(
            self.policy,
            self.tokenizer,
            self.task,
            examples,
            n=config.n,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            seed=seed,
            progress=config.progress,
        )
        self.contexts: dict[str, Any] = {}

    def features(self, cfg: DictConfig, featurizer):
        """(P, d) contexts of every prompt; computed once per featurizer config."""
        key = OmegaConf.to_yaml(cfg.features)
        if key not in self.contexts:
            examples = self.candidates.examples
            self.contexts[key] = featurizer(examples)
        return self.contexts[key]


def run_method(config: BonConfig, setup: SeedSetup, name: str, overrides: list[str]) -> dict:
    """One method on one seed's candidates -> its summary (experiments.report's schema)."""
    from experiments.compare import method_kind
    from laser.bon import check_signal, select
    from laser.build import build_pool, build_router, validate
    from laser.world.cache import config_key

    cfg = compose_method(config, overrides, setup.seed)
    train = validate(cfg)
    if config_key(train.world) != setup.world_key:
        raise ValueError(f"method {name!r} changes the world; the candidates were drawn once")
    pool = build_pool(train, setup.world, setup.task)
    router, featurizer = build_router(
        cfg, train, setup.world, setup.task, pool, setup.policy, setup.tokenizer
    )
    check_signal(router.signal)
    contexts = setup.features(cfg, featurizer)
    start = time.perf_counter()
    selection = select(router, setup.candidates, contexts, config.batch_size)
    wall = time.perf_counter() - start
    domains = [e.domain for e in setup.candidates.examples]
    routes = [
        dict(Counter(f"{d}|{rm}" for d, rm in zip(domains[s : s + b], selection.routes[s : s + b])))
        for s, b in ((s, config.batch_size) for s in range(0, len(domains), config.batch_size))
    ]
    return summary(
        setup,
        name,
        method_kind(cfg),
        selection.outcomes(setup.candidates),
        pool=list(pool),
        routes=routes,
        prompt_routes=selection.routes,
        pick_nll=[
            float(setup.candidates.nll[p * config.n + j]) for p, j in enumerate(selection.picks)
        ],
        cost=selection.cost,
        wall=wall,
        overrides=overrides,
    )


def summary(setup: SeedSetup, name: str, kind: str, outcomes: list[float], **extra) -> dict:
    """The per-(method, seed) record: ``experiments.report``'s summary schema (so its routing
    accuracy and paired statistics apply) plus the per-prompt routes."""
    from experiments.stats import macro_mean
    from laser.world.quality import best_rm_per_domain

    domains = list(setup.task.domains)
    per_prompt = [e.domain for e in setup.candidates.examples]
    matrix = setup.world.summary.get("rm_domain_accuracy") or {}
    best = {}  # an external world has no report: no routing accuracy
    if matrix:
        best = dict(zip(domains, best_rm_per_domain(setup.world, list(matrix), domains)))
    final = {"mean": macro_mean(outcomes, per_prompt)}
    for d in domains:
        mine = [o for o, dd in zip(outcomes, per_prompt) if dd == d]
        final[d] = sum(mine) / len(mine) if mine else float("nan")
    cost = extra.pop("cost", [])
    return {
        "method": name,
        "seed": setup.seed,
        "kind": kind,
        "domains": domains,
        "best_rm": best,
        "rm_domain_accuracy": matrix,
        "final": final,
        "eval_scores": outcomes,
        "eval_domains": per_prompt,
        "rm_forward_samples": cost[-1] if cost else 0,
        "cost": cost,
        "routes": extra.pop("routes", []),
        "wall_s": extra.pop("wall", 0.0),
        "steps": len(cost),
        "pool": extra.pop("pool", []),
        **extra,
    }


def reference_summaries(setup: SeedSetup) -> list[dict]:
    """The rows that need no RM: no selection, the policy's likeliest sample, its majority
    answer (self-consistency), and the ceiling (any sample right)."""
    from laser.bon import any_correct, first_sample, likeliest, majority_vote

    fns = (first_sample, likeliest, majority_vote, any_correct)
    return [
        summary(setup, name, "reference", fn(setup.candidates)) for name, fn in zip(REFERENCES, fns)
    ]


def run(config: BonConfig) -> list[dict]:
    """Every seed x method; returns the summaries and writes the report."""
    from tqdm.auto import tqdm

    from experiments.bon_report import write_results
    from laser.build import planned_rm_names, typed

    names = planned_rm_names(typed(compose_method(config, [], config.seeds[0])))
    methods = method_overrides(config, names)
    summaries: list[dict] = []
    for seed in config.seeds:
        setup = SeedSetup(config, seed)
        summaries += reference_summaries(setup)
        bar = tqdm(methods.items(), desc=f"seed {seed}", disable=not config.progress)
        for name, overrides in bar:
            bar.set_postfix_str(name)
            summaries.append(run_method(config, setup, name, list(overrides)))
    print(write_results(config, summaries))
    save_runs(config, summaries)
    return summaries


def save_runs(config: BonConfig, summaries: list[dict]) -> None:
    """Every summary (per-prompt outcomes and routes) and the config, under ``runs/`` (not
    committed; ``python -m experiments.bon_report <output_dir>`` re-renders the report)."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    runs = Path(config.output_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "config.json").write_text(json.dumps(asdict(config), indent=1))
    (runs / "summaries.json").write_text(json.dumps(summaries))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bon")
def main(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    config: BonConfig = OmegaConf.to_object(cfg)  # composed against bon_schema: validated
    hf_logging.disable_progress_bar()
    run(config)


if __name__ == "__main__":
    main()
