"""Held-out gold accuracy by greedy decoding, shared by the loop, the world builder, the
feedback probes and the experiments.

``Evaluator`` scores a fixed list of held-out examples; with several processes each rank
decodes every world_size-th example and the scores are gathered in order, so the result is
the one a single process would get.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from laser.distributed import Distributed
from laser.policy.rollout import left_pad
from laser.tasks.base import Example, Task


@torch.no_grad()
def greedy_completions(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 10, batch_size: int = 128
) -> list[str]:
    """Greedy completions of ``prompts`` (left-padded batches, stop at EOS), in order."""
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


@dataclass
class EvalResult:
    """One evaluation: ``metrics`` under the fixed names (``task/{domain}/accuracy``,
    ``eval/accuracy``) and each example's score, in order (for paired comparisons)."""

    step: int
    metrics: dict[str, float]
    scores: list[float]

    @property
    def accuracy(self) -> float:
        return self.metrics["eval/accuracy"]


class Evaluator:
    """Gold accuracy of a policy on a fixed held-out set, sharded over DDP ranks."""

    def __init__(
        self,
        task: Task,
        examples: list[Example],
        tokenizer,
        max_new_tokens: int = 10,
        dist: Distributed | None = None,
    ) -> None:
        if not examples:
            raise ValueError("the held-out evaluation needs at least one example")
        self.task, self.examples, self.tokenizer = task, list(examples), tokenizer
        self.max_new_tokens = max_new_tokens
        self.dist = dist or Distributed()

    def __call__(self, policy, step: int) -> EvalResult:
        """Every rank calls it (a collective); each decodes its share of the examples."""
        every, rank = self.dist.world_size, self.dist.rank
        mine = example_scores(
            policy, self.tokenizer, self.task, self.examples[rank::every], self.max_new_tokens
        )
        scores: list[float] = [0.0] * len(self.examples)
        for r, part in enumerate(self.dist.gather(mine)):
            scores[r::every] = part
        acc = macro_accuracy(scores, self.examples)
        metrics = {f"task/{d}/accuracy": v for d, v in acc.items() if d != "mean"}
        metrics["eval/accuracy"] = acc["mean"]
        return EvalResult(step, metrics, scores)
