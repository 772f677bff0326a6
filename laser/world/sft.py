"""Supervised warm start of the policy on the suite, and gold accuracy by greedy decoding."""

from __future__ import annotations

import random
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from laser.policy.rollout import left_pad
from laser.tasks.base import Example, Task


def sft_batch(tokenizer, examples: list[Example]) -> tuple[torch.Tensor, ...]:
    """Right-padded (input_ids, attention_mask, labels); the loss covers the answer + EOS only."""
    ids, labels = [], []
    for ex in examples:
        prompt = tokenizer(ex.prompt, add_special_tokens=False).input_ids
        answer = tokenizer(ex.answer + tokenizer.eos_token, add_special_tokens=False).input_ids
        ids.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, ids))
    x = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    y = torch.full((len(ids), width), -100, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (seq, lab) in enumerate(zip(ids, labels)):
        x[i, : len(seq)] = torch.tensor(seq)
        y[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(seq)] = 1
    return x, mask, y


def sft_train(
    model,
    tokenizer,
    examples: list[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool = True,
) -> float:
    """AdamW on the answer tokens for ``steps`` steps; returns the last loss."""
    if not examples or steps < 1:
        raise ValueError(f"SFT needs examples and steps >= 1, got {len(examples)}, {steps}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in tqdm(range(steps), desc="SFT policy", disable=not progress):
        x, mask, y = sft_batch(tokenizer, rng.sample(examples, min(batch_size, len(examples))))
        loss = model(input_ids=x, attention_mask=mask, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.item())


@torch.no_grad()
def greedy_completions(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 10, batch_size: int = 128
) -> list[str]:
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = [
            tokenizer(p, add_special_tokens=False).input_ids
            for p in prompts[start : start + batch_size]
        ]
        x, mask = left_pad(chunk, tokenizer.pad_token_id)  # generation continues from the prompt
        x, mask = x.to(device), mask.to(device)
        width = x.shape[1]
        gen = model.generate(
            input_ids=x,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        out += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
    return out


def example_scores(
    model, tokenizer, task: Task, examples: list[Example], max_new_tokens: int = 10
) -> list[float]:
    """Greedy-decoding gold score of each example, in order."""
    prompts = [e.prompt for e in examples]
    completions = greedy_completions(model, tokenizer, prompts, max_new_tokens)
    return [task.evaluate(e.prompt, c, e.meta()) for e, c in zip(examples, completions)]


def macro_accuracy(scores: list[float], examples: list[Example]) -> dict[str, float]:
    """Accuracy per domain, plus "mean" (unweighted over domains)."""
    by_domain: dict[str, list[float]] = defaultdict(list)
    for ex, score in zip(examples, scores):
        by_domain[ex.domain].append(score)
    acc = {d: sum(v) / len(v) for d, v in by_domain.items()}
    acc["mean"] = sum(acc.values()) / len(acc)
    return acc


def domain_accuracy(model, tokenizer, task: Task, examples: list[Example]) -> dict[str, float]:
    """Greedy-decoding gold accuracy per domain, plus "mean" (unweighted over domains)."""
    return macro_accuracy(example_scores(model, tokenizer, task, examples), examples)


__all__ = [
    "domain_accuracy",
    "example_scores",
    "greedy_completions",
    "macro_accuracy",
    "sft_train",
]
