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
from laser.tasks.shortcuts import shortcut
from laser.tasks.synthetic import SyntheticSuite
from laser.world.config import RMSpec

Sampler = Callable[[list[Example]], dict[str, list[str]]]


def check_spec(name: str, spec: RMSpec, suite: SyntheticSuite) -> None:
    named = spec.domains + spec.weak_domains + (spec.bias_domains or [])
    unknown = [d for d in named if d not in suite.domains]
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
    plan = [(d, spec.pairs_per_domain, spec.label_noise, 0.0) for d in spec.domains]
    plan += [
        (d, spec.weak_pairs, spec.weak_label_noise, spec.weak_shortcut_bias)
        for d in spec.weak_domains
    ]
    for k, (domain, pairs, noise, shortcut_bias) in enumerate(plan):
        examples = suite.examples("train", pairs, seed=seed + 101 * k, domains=(domain,))
        rows += preference_rows(
            examples,
            seed=seed + 7 * k + 1,
            label_noise=noise,
            length_bias=spec.length_bias if domain in biased else 0.0,
            malformed_share=spec.malformed,
            sampled=sampler(examples) if sampler and spec.on_policy else None,
            on_policy_share=spec.on_policy,
            shortcut_bias=shortcut_bias,
        )
    return rows


ANSWER_ALPHABET = {
    "reverse": "abcde",
    "upper": "ABCDE",
    "sort": "0123456789",
    "max": "0123456789",
    "count": "0123456789",
    "add": "0123456789",
}


def near_misses(rng: random.Random, answer: str, alphabet: str, n: int) -> set[str]:
    """Up to ``n`` strings one or two edits (substitution or swap) away from ``answer``: the
    wrong answers RL finds when an RM tells them from the gold one only most of the time."""
    out = set()
    for _ in range(n):
        chars = list(answer)
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(chars))
            if len(chars) > 1 and rng.random() < 0.5:
                j = rng.randrange(len(chars))
                chars[i], chars[j] = chars[j], chars[i]
            else:
                chars[i] = rng.choice(alphabet)
        out.add("".join(chars))
    out.discard(answer)
    return out


@torch.no_grad()
def hard_negative_rows(
    rm: HFRewardModel, spec: RMSpec, suite: SyntheticSuite, seed: int, candidates: int = 16
) -> list[dict]:
    """Hard-negative mining on the RM's own domains: per prompt, the near miss the trained
    RM scores highest becomes a new rejected answer (labelled like the RM's other pairs,
    label noise included): what RL would exploit, found by search instead of by RL."""
    rng = random.Random(seed)
    rows = []
    for k, domain in enumerate(spec.domains):
        examples = suite.examples(
            "train", spec.hard_negatives, seed=seed + 31 * k, domains=(domain,)
        )
        alphabet = ANSWER_ALPHABET[domain]
        wrong = [sorted(near_misses(rng, e.answer, alphabet, candidates)) for e in examples]
        flat = [(e.prompt, w) for e, ws in zip(examples, wrong) for w in ws]
        scores = rm.score([p for p, _ in flat], [w for _, w in flat]).tolist()
        start = 0
        for ex, ws in zip(examples, wrong):
            if ws:
                best = max(range(len(ws)), key=lambda i: scores[start + i])
                chosen, rejected = ex.answer, ws[best]
                if rng.random() < spec.label_noise:
                    chosen, rejected = rejected, chosen
                rows.append(
                    {"prompt": ex.prompt, "chosen": chosen, "rejected": rejected, "domain": domain}
                )
            start += len(ws)
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
    """A fresh tiny GPT-2 reward model trained with the Bradley-Terry loss on its pairs; with
    ``spec.hard_negatives`` a second model is trained on them plus the first one's mined
    hard negatives (iterated RM training, the way production RMs learn the policy's
    exploits)."""
    rows = rm_training_rows(spec, suite, seed, sampler)
    model, metrics = _fit(spec, tokenizer, rows, seed, max_length, progress)
    if spec.hard_negatives:  # round 2: a fresh RM on the data plus the mined negatives
        first = HFRewardModel(
            model, tokenizer, name="round1", max_length=max_length, batch_size=256
        )
        rows = rows + hard_negative_rows(first, spec, suite, seed + 17)
        model, metrics = _fit(spec, tokenizer, rows, seed, max_length, progress)
    return model, metrics


def _fit(spec: RMSpec, tokenizer, rows: list[dict], seed: int, max_length: int, progress: bool):
    """A fresh tiny GPT-2 scalar-head model trained with Bradley-Terry on ``rows``."""
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
        rows,
        epochs=spec.epochs,
        lr=spec.lr,
        batch_size=32,
        max_length=max_length,
        seed=seed,
        progress=progress,
    )
    return model, metrics


def heldout_pairs(
    suite: SyntheticSuite,
    per_domain: int,
    seed: int,
    shortcut_share: float = 0.5,
    split: str = "eval",
) -> dict[str, list[dict]]:
    """Clean pairs of ``split`` for every domain (no noise, no bias): gold vs the domain's
    shortcut (the mistake the SFT policy makes) on a ``shortcut_share`` of the prompts, gold
    vs a same-shape corruption on the rest."""
    out = {}
    every = round(1 / shortcut_share) if shortcut_share > 0 else 0
    for d in suite.domains:
        examples = suite.examples(split, per_domain, seed=seed, domains=(d,))
        rows = preference_rows(examples, seed=seed + 1)
        for i, (row, ex) in enumerate(zip(rows, examples)):
            wrong = shortcut(ex)
            if every and i % every == 0 and wrong != ex.answer:
                row["rejected"] = wrong
        out[d] = rows
    return out


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
