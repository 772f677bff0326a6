"""Several tasks as one (the LASeR reasoning mix: StrategyQA + GSM8K + MMLU)."""

from __future__ import annotations

import random
from typing import Any

from laser.tasks.base import Example, Task


class MixtureTask:
    """Batches drawn evenly across ``tasks`` (shuffled together); each example is checked by
    the task its ``domain`` belongs to. Domains must be distinct across tasks."""

    def __init__(self, tasks: list[Task]) -> None:
        if not tasks:
            raise ValueError("MixtureTask needs at least one task")
        self.by_domain: dict[str, Task] = {}
        for task in tasks:
            for domain in task.domains:
                if domain in self.by_domain:
                    raise ValueError(f"domain {domain!r} appears in two tasks of the mixture")
                self.by_domain[domain] = task
        self.tasks = list(tasks)
        self.domains = tuple(self.by_domain)

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        k = len(self.tasks)
        counts = [n // k + (i < n % k) for i in range(k)]
        out: list[Example] = []
        for i, (task, count) in enumerate(zip(self.tasks, counts)):
            if count:
                out += task.examples(split, count, seed=seed * 1_009 + i)
        random.Random(seed).shuffle(out)
        return out

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        domain = metadata.get("domain")
        if domain not in self.by_domain:
            raise ValueError(f"example of unknown domain {domain!r}; mixture has {self.domains}")
        return self.by_domain[domain].evaluate(prompt, completion, metadata)
