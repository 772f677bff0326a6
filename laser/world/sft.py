"""Supervised warm start of the policy on the suite (gold accuracy: ``laser.evaluation``)."""

from __future__ import annotations

import random

import torch
from tqdm.auto import tqdm

from laser.tasks.base import Example


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


__all__ = ["sft_batch", "sft_train"]
