"""Build (or reuse) the built-in world: tokenizer, SFT policy, reward-model pool, report.

Layout of a cache entry::

    tokenizer/            character tokenizer (save_pretrained)
    policy/               SFT policy (AutoModelForCausalLM) + tokenizer
    rms/<name>/           each reward model (AutoModelForSequenceClassification) + tokenizer
    report/               report.txt, rm_domain_accuracy.{csv,png}, sft_accuracy.csv
    world.json            the config, the matrix, SFT accuracy and build timings
    manifest.json         checksums of all of the above (see laser.world.cache)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from laser.evaluation import domain_accuracy
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards import HFRewardModel
from laser.tasks.shortcuts import with_shortcuts
from laser.tasks.synthetic import SyntheticSuite
from laser.world.cache import cached_build, config_key
from laser.world.config import WorldConfig
from laser.world.negatives import sampled_wrong_answers
from laser.world.pool import (
    accuracy_matrix,
    check_spec,
    heldout_pairs,
    length_trap_rate,
    train_rm,
)
from laser.world.report import write_report
from laser.world.sft import sft_train
from laser.world.shipped import copy_shipped, is_shipped_copy, shipped_entry


def make_suite(cfg: WorldConfig) -> SyntheticSuite:
    return SyntheticSuite(tuple(cfg.task.domains), cfg.task.difficulty)


def build_world(cfg: WorldConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Build every artifact of the world into ``out``; returns its summary (world.json)."""
    suite = make_suite(cfg)
    if not cfg.reward_models:
        raise ValueError("the world needs at least one reward model (world.reward_models)")
    for name, spec in cfg.reward_models.items():
        check_spec(name, spec, suite)
    timings: dict[str, float] = {}
    tok = char_tokenizer()
    tok.save_pretrained(out / "tokenizer")

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    pm = cfg.policy_model
    policy = AutoModelForCausalLM.from_config(
        tiny_gpt2_config(
            tok, n_layer=pm.n_layer, n_head=pm.n_head, n_embd=pm.n_embd, n_positions=pm.n_positions
        )
    )
    demonstrations = suite.examples("train", cfg.sft.train_examples, seed=cfg.seed)
    sft_train(
        policy,
        tok,
        with_shortcuts(demonstrations, cfg.sft.shortcut_share, seed=cfg.seed + 4),
        steps=cfg.sft.steps,
        batch_size=cfg.sft.batch_size,
        lr=cfg.sft.lr,
        seed=cfg.seed,
        progress=progress,
    )
    per_domain = cfg.sft.eval_per_domain * len(suite.domains)
    sft_acc = domain_accuracy(
        policy, tok, suite, suite.examples("eval", per_domain, seed=cfg.seed + 1)
    )
    policy.save_pretrained(out / "policy")
    tok.save_pretrained(out / "policy")
    timings["sft_s"] = time.perf_counter() - start

    def sampler(examples):  # the SFT policy's own wrong answers: on-policy RM negatives
        return sampled_wrong_answers(policy, tok, suite, examples, seed=cfg.seed + 5)

    rms: dict[str, HFRewardModel] = {}
    for k, (name, spec) in enumerate(cfg.reward_models.items()):
        start = time.perf_counter()
        model, _ = train_rm(
            spec,
            suite,
            tok,
            seed=cfg.seed + 1000 * (k + 1),
            max_length=cfg.max_length,
            progress=progress,
            sampler=sampler,
        )
        model.save_pretrained(out / "rms" / name)
        tok.save_pretrained(out / "rms" / name)
        rms[name] = HFRewardModel(model, tok, name=name, max_length=cfg.max_length)
        timings[f"rm_{name}_s"] = time.perf_counter() - start
    matrix = accuracy_matrix(
        rms,
        heldout_pairs(suite, cfg.eval_pairs_per_domain, cfg.seed + 2, cfg.heldout_shortcut_share),
    )
    trap = length_trap_rate(rms, suite, cfg.eval_pairs_per_domain, seed=cfg.seed + 3)
    table = write_report(out / "report", matrix, sft_acc, trap)
    summary = {
        "config": asdict(cfg),
        "rm_domain_accuracy": matrix,
        "sft_accuracy": sft_acc,
        "length_trap_rate": trap,
        "timings": timings,
        "report": table,
    }
    (out / "world.json").write_text(json.dumps(summary, indent=1))
    return {"key": config_key(cfg)}


@dataclass
class World:
    """A built world on disk: load its policy, tokenizer and reward models from here."""

    path: Path
    reused: bool
    summary: dict[str, Any]

    @property
    def reward_model_names(self) -> list[str]:
        return list(self.summary["rm_domain_accuracy"])

    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.path / "tokenizer")

    def policy(self):
        return AutoModelForCausalLM.from_pretrained(self.path / "policy")

    def reward_model_sources(self) -> dict[str, str]:
        """Where each RM's weights live (recorded in checkpoints to compare pools on resume)."""
        return {name: str(self.path / "rms" / name) for name in self.reward_model_names}

    def reward_models(self, **kwargs: Any) -> dict[str, HFRewardModel]:
        """The pool as lazily loaded HFRewardModels, in config order."""
        return {
            name: HFRewardModel(self.path / "rms" / name, name=name, **kwargs)
            for name in self.reward_model_names
        }


def build_pinned(cfg: WorldConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """:func:`build_world` with torch on ``cfg.threads`` CPU threads, whatever the machine or
    the caller set (restored afterwards): the same config builds the same world."""
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return build_world(cfg, out, progress)
    finally:
        torch.set_num_threads(before)


def prepare_world(
    cfg: WorldConfig, cache_dir: str | Path, progress: bool = True, use_shipped: bool = True
) -> World:
    """The world for ``cfg`` from the cache; if absent, partial or corrupt, it is copied from
    the build shipped for this config (``laser.world.shipped``: the same weights on every
    machine) or, without one or with ``use_shipped=False``, built here."""
    key = config_key(cfg)

    def make(out: Path) -> dict[str, Any]:
        # called on a cache miss only: a cache hit does not checksum the shipped copy too
        shipped = shipped_entry(key) if use_shipped else None
        return copy_shipped(shipped, out) if shipped else build_pinned(cfg, out, progress)

    entry, reused = cached_build(cache_dir, key, make)
    if not use_shipped and reused and is_shipped_copy(entry):
        print(
            f"note: {entry} is a copy of the shipped build, reused as it is; to build this world "
            f"on this machine, remove it or pass another cache_dir"
        )
    return World(entry, reused, json.loads((entry / "world.json").read_text()))
