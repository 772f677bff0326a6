"""The Task interface: prompts with metadata, and a gold checker.

A task hands out batches of :class:`Example` (a prompt, its gold answer and metadata with at
least ``domain``) and scores a completion against the gold with ``evaluate`` in [0, 1]. The
bandit never sees the metadata unless a featurizer chooses to use it (the "oracle" control).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    domain: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def meta(self) -> dict[str, Any]:
        """Metadata as the RMs and checkers see it: domain and answer included."""
        return {"domain": self.domain, "answer": self.answer, **self.metadata}


@runtime_checkable
class Task(Protocol):
    domains: tuple[str, ...]

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """``n`` examples of ``split`` ("train" or "eval"), deterministic from ``seed``."""
        ...

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        """Gold score of ``completion`` in [0, 1]."""
        ...


def first_answer(completion: str) -> str:
    """The answer part of a completion: up to the first newline, surrounding spaces stripped."""
    return completion.split("\n", 1)[0].strip()


def metadata_columns(examples: list[Example]) -> dict[str, list[Any]]:
    """Per-sample metadata as columns (``domain=[...]``, ``answer=[...]``): the keyword
    arguments rule-based RMs (TRL reward-function signature) receive."""
    if not examples:
        return {}
    keys = list(dict.fromkeys(k for e in examples for k in e.meta()))
    return {k: [e.meta().get(k) for e in examples] for k in keys}
