"""``laser-compare``: LASER against fixed-RM, random, round-robin, ensemble and other-selector
baselines on one world, over several seeds with identical step budgets.

A Hydra multirun underneath (conf/compare.yaml): one job per (method, seed), each a
``laser-train`` run composed from ``train`` (shared overrides) + ``methods[method]`` (that
method's overrides). Each job writes ``summary.json`` in its directory; the callback prepares the
world once before the sweep, shows a progress bar, and aggregates the summaries into
results.md / results.csv / plots when the sweep ends. Any launcher works (basic, Slurm, Ray):
the aggregation reads the files, not in-process return values.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from laser.cli import CONF_DIR

SUMMARY = "summary.json"


def launch(*overrides: str) -> int:
    """Run ``laser-compare <overrides>`` in a subprocess (the scripts that prepare files a
    sweep needs, then start it), printing the command; returns its exit status."""
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "laser-compare"), *overrides]
    print(" ".join(command), flush=True)
    return subprocess.call(command)


def train_overrides(cfg: DictConfig, method: str, seed: int, output_dir: str) -> list[str]:
    """The laser-train overrides of one job: shared ones, the method's, the user's extra ones,
    then the job's own (seed, directories)."""
    if method not in cfg.methods:
        raise ValueError(f"method {method!r} is not in compare.methods {sorted(cfg.methods)}")
    return [
        f"policy={cfg.algo}",
        *cfg.train,
        *cfg.methods[method],
        *cfg.extra,
        f"loop.seed={seed}",
        f"cache_dir={cfg.cache_dir}",
        f"output_dir={output_dir}",
        "progress=false",
    ]


class Recorder:
    """``Orchestrator.run(on_step=...)``: per step the RM cost and (domain, RM) routes; the
    eval curve whenever an evaluation ran."""

    def __init__(self) -> None:
        self.cost: list[int] = []
        self.routes: list[dict[str, int]] = []
        self.curve: list[dict[str, float]] = []

    def __call__(self, record: Any) -> None:
        self.cost.append(record.rm_cost)
        self.routes.append(dict(Counter(f"{d}|{rm}" for d, rm in record.routes)))
        if record.evaluation is not None:
            self.curve.append({"step": record.step, **record.evaluation.metrics})


def method_kind(train_cfg: DictConfig) -> str:
    """ensemble | gold | fixed | oracle | selector: how the report groups and treats a method."""
    if train_cfg.pool in ("ensemble", "gold"):
        return str(train_cfg.pool)
    target = str(train_cfg.bandit._target_).rsplit(".", 1)[-1]
    kinds = {"FixedArm": "fixed", "DomainRouter": "oracle", "DomainTierRouter": "oracle"}
    return kinds.get(target, "selector")


def run_job(cfg: DictConfig, output_dir: str) -> dict[str, Any]:
    """One (method, seed) run; returns and writes its summary."""
    import torch

    from laser.build import build_logger, build_loop, check_feedback, open_world, typed
    from laser.world.quality import best_rm_per_domain

    torch.set_num_threads(int(cfg.threads))  # fixed per job: numbers independent of the machine
    overrides = train_overrides(cfg, cfg.method, cfg.seed, output_dir)
    train_cfg = compose(config_name="train", overrides=overrides)
    head = {"method": cfg.method, "algo": cfg.algo, "seed": int(cfg.seed)}
    try:  # a feedback that carries nothing for this update: recorded, not run
        check_feedback(train_cfg, typed(train_cfg))
    except ValueError as exc:
        summary = {**head, "refused": str(exc), "overrides": overrides}
        (Path(output_dir) / SUMMARY).write_text(json.dumps(summary))
        return summary
    world = open_world(typed(train_cfg), progress=False)
    logger = build_logger(train_cfg.logger)
    recorder = Recorder()
    start = time.perf_counter()
    try:
        loop = build_loop(train_cfg, logger)
        if cfg.eval_at_start:
            recorder.curve.append({"step": 0, **loop.evaluate().metrics})
        final = loop.run(progress=False, on_step=recorder)
    finally:
        logger.close()
    wall = time.perf_counter() - start
    if not recorder.curve or recorder.curve[-1]["step"] != loop.step_count:
        recorder.curve.append({"step": loop.step_count, **final.metrics})
    domains = list(loop.task.domains)
    arms = loop.router.arms
    pool = list(arms.names) + list(arms.quarantined)
    summary = {
        **head,
        "steps": loop.step_count,
        "pool": pool,
        "domains": domains,
        # an external world without a report has no per-domain quality: no routing accuracy
        "best_rm": dict(zip(domains, best_rm_per_domain(world, world.reward_model_names, domains)))
        if world.summary
        else {},
        "rm_domain_accuracy": world.summary.get("rm_domain_accuracy", {}),
        "kind": method_kind(train_cfg),
        "final": {"mean": final.accuracy}
        | {d: final.metrics[f"task/{d}/accuracy"] for d in domains},
        "eval_scores": final.scores,
        "eval_domains": [e.domain for e in loop.evaluator.examples],
        "curve": recorder.curve,
        "cost": recorder.cost,
        "routes": recorder.routes,
        "rm_forward_samples": loop.rm_cost(),
        "wall_s": wall,
        "overrides": overrides,
    }
    path = Path(output_dir) / SUMMARY
    path.write_text(json.dumps(summary))
    return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compare")
def main(cfg: DictConfig) -> None:
    run_job(cfg, HydraConfig.get().runtime.output_dir)


def sweep_size(config: DictConfig) -> int:
    """Number of jobs: the product of the swept values, the config's sweeper params
    overridden by command-line sweeps (as Hydra's basic sweeper enumerates them)."""
    parser = OverridesParser.create()
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    swept = {str(k): f"{k}={v}" for k, v in params.items()}
    for text in config.hydra.overrides.task:
        swept[parser.parse_overrides([text])[0].key_or_group] = text
    total = 1
    for override in parser.parse_overrides(list(swept.values())):
        if override.is_sweep_override():
            total *= len(list(override.sweep_string_iterator()))
    return total


class JobCounter:
    """A progress bar over the sweep's jobs that counts the summaries written since it started:
    it works with any launcher (in-process, parallel worker processes, a cluster), because
    every job, wherever it runs, writes its summary into the sweep directory."""

    def __init__(self, sweep_dir: Path, total: int, every: float = 1.0) -> None:
        self.sweep_dir, self.every, self.started = sweep_dir, every, time.time()
        self.bar = tqdm(total=total, desc="laser-compare jobs", unit="job")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def count(self) -> int:
        return sum(
            1 for p in self.sweep_dir.rglob(SUMMARY) if p.stat().st_mtime >= self.started - 1
        )

    def _poll(self) -> None:
        while not self.done.wait(self.every):
            done = min(self.count(), self.bar.total)
            if done != self.bar.n:
                self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.bar.update(min(self.count(), self.bar.total) - self.bar.n)
        self.bar.close()


class CompareCallback(Callback):
    """Prepare the world once, show progress over jobs, write the report at the end."""

    def __init__(self) -> None:
        self.counter: JobCounter | None = None

    def __getstate__(self) -> dict[str, Any]:
        # parallel launchers pickle the callbacks into each worker: the bar stays here
        return {**self.__dict__, "counter": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from laser.build import open_world, typed

        sweep_dir = config.hydra.sweep.dir
        overrides = [*config.train, *config.extra, f"cache_dir={config.cache_dir}"]
        overrides.append(f"output_dir={sweep_dir}")
        train_cfg = compose(config_name="train", overrides=overrides)
        world = open_world(typed(train_cfg), progress=True)
        print(world.summary.get("report") or f"external world: {world.cfg.policy}")
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        self.counter = JobCounter(Path(sweep_dir), sweep_size(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from experiments.report import write_results

        if self.counter is not None:
            self.counter.close()
        sweep_dir = Path(config.hydra.sweep.dir)
        summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.rglob(SUMMARY))]
        table = write_results(
            sweep_dir, summaries, reference=config.reference, warmup=config.warmup
        )
        print(table)
        print(f"\nresults.md, results.csv and plots written to {sweep_dir}")


if __name__ == "__main__":
    main()
