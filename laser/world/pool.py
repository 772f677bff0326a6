"""The reward-model pool: preference data with each RM's flaws, training, and the
RM x domain pairwise-accuracy matrix on clean held-out pairs."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from transformers import AutoModelForSequenceClassification

from laser.models import tiny_gpt2_config
from laser.rewards import HFRewardModel, pairwise_accuracy
from laser.rewards.train import train_reward_model
from laser.tasks.base import Example
from laser.tasks.corrupt import longer_wrong, preference_rows
from laser.tasks.synthetic import SyntheticSuite
from laser.world.config import RMSpec

Sampler = Callable[[list[Example]], dict[str, list[str]]]


def check_spec(name: str, spec: RMSpec, suite: SyntheticSuite) -> None:
    unknown = [d for d in spec.domains + (spec.bias_domains or []) if d not in suite.domains]
    if not spec.domains or unknown:
        raise ValueError(
            f"reward model {name!r}: domains {spec.domains} / bias_domains "
            f"{spec.bias_domains} must be non-empty and among {suite.domains}"
        )


def rm_training_rows(
    spec: RMSpec, suite: SyntheticSuite, seed: int, sampler: Sampler | None = None
) -> list[dict]:
    """Training pairs from the RM's domains, with its label noise and length bias;
    ``sampler(examples)`` gives the policy's wrong answers per prompt (on-policy negatives)."""
    rows = []
    biased = set(spec.bias_domains or spec.domains)
    for k, domain in enumerate(spec.domains):
        examples = suite.examples(
            "train", spec.pairs_per_domain, seed=seed + 101 * k, domains=(domain,)
        )
        rows += preference_rows(
            examples,
            seed=seed + 7 * k + 1,
            label_noise=spec.label_noise,
            length_bias=spec.length_bias if domain in biased else 0.0,
            malformed_share=spec.malformed,
            sampled=sampler(examples) if sampler and spec.on_policy else None,
            on_policy_share=spec.on_policy,
        )
    return rows


def train_rm(
    spec: RMSpec,
    suite: SyntheticSuite,
    tokenizer,
    *,
    seed: int,
    max_length: int,
    progress: bool = True,
    sampler: Sampler | None = None,
):
    """A fresh tiny GPT-2 reward model trained with the Bradley-Terry loss on its pairs."""
    torch.manual_seed(seed)
    m = spec.model
    model = AutoModelForSequenceClassification.from_config(
        tiny_gpt2_config(
            tokenizer,
            n_layer=m.n_layer,
            n_head=m.n_head,
            n_embd=m.n_embd,
            n_positions=m.n_positions,
        )
    )
    metrics = train_reward_model(
        model,
        tokenizer,
        rm_training_rows(spec, suite, seed, sampler),
        epochs=spec.epochs,
        lr=spec.lr,
        batch_size=32,
        max_length=max_length,
        seed=seed,
        progress=progress,
    )
    return model, metrics


def heldout_pairs(suite: SyntheticSuite, per_domain: int, seed: int) -> dict[str, list[dict]]:
    """Clean eval-split pairs (gold vs corrupted, no noise, no bias) for every domain."""
    return {
        d: preference_rows(
            suite.examples("eval", per_domain, seed=seed, domains=(d,)), seed=seed + 1
        )
        for d in suite.domains
    }


def length_trap_rate(
    rms: dict[str, HFRewardModel], suite: SyntheticSuite, per_domain: int, seed: int
) -> dict[str, dict[str, float]]:
    """rate[rm][domain] = share of held-out prompts where the RM scores a LONGER WRONG answer
    above the gold one: how exploitable it is by padding answers (reward hacking)."""
    rng = random.Random(seed)
    rate: dict[str, dict[str, float]] = {name: {} for name in rms}
    for domain in suite.domains:
        examples = suite.examples("eval", per_domain, seed=seed, domains=(domain,))
        prompts = [e.prompt for e in examples]
        longer = [longer_wrong(rng, e) for e in examples]
        for name, rm in rms.items():
            gold = rm.score(prompts, [e.answer for e in examples])
            rate[name][domain] = float((rm.score(prompts, longer) > gold).float().mean())
    return rate


def accuracy_matrix(
    rms: dict[str, HFRewardModel], pairs: dict[str, list[dict]]
) -> dict[str, dict[str, float]]:
    """matrix[rm][domain] = pairwise accuracy of the RM on that domain's held-out pairs."""
    matrix: dict[str, dict[str, float]] = {}
    for name, rm in rms.items():
        matrix[name] = {}
        for domain, rows in pairs.items():
            prompts = [r["prompt"] for r in rows]
            chosen = rm.score(prompts, [r["chosen"] for r in rows])
            rejected = rm.score(prompts, [r["rejected"] for r in rows])
            matrix[name][domain] = pairwise_accuracy(chosen, rejected)
    return matrix
