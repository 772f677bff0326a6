"""The built-in multi-domain suite: short text tasks with exact gold checkers.

Domains (prompt -> answer), each with a difficulty knob:

- ``add``:     "add 12+7=" -> "19"        operands up to ``add_digits`` digits
- ``reverse``: "rev cabd=" -> "dbac"      strings of ``reverse_len`` letters from "abcde"
- ``sort``:    "sort 3142=" -> "1234"     ``sort_len`` digits
- ``count``:   "count b abbab=" -> "3"    strings of ``count_len`` letters from "ab"

Examples are deterministic from a seed. Train and eval are disjoint by construction: an
example belongs to the split given by a hash of its prompt (20% eval), so no eval prompt is
ever trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from laser.tasks.base import Example, first_answer

DOMAINS = ("add", "reverse", "sort", "count")
EVAL_SHARE = 0.2


@dataclass
class Difficulty:
    """Size knobs of each domain (the defaults are the default world's)."""

    add_digits: int = 2
    reverse_len: int = 4
    sort_len: int = 3
    count_len: int = 4
    upper_len: int = 4
    max_len: int = 6


def _add(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    hi = 10**d.add_digits - 1
    a, b = rng.randint(0, hi), rng.randint(0, hi)
    return f"add {a}+{b}=", str(a + b)


def _reverse(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    s = "".join(rng.choice("abcde") for _ in range(d.reverse_len))
    return f"rev {s}=", s[::-1]


def _sort(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    s = "".join(rng.choice("0123456789") for _ in range(d.sort_len))
    return f"sort {s}=", "".join(sorted(s))


def _upper(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    s = "".join(rng.choice("abcde") for _ in range(d.upper_len))
    return f"up {s}=", s.upper()


def _max(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    s = "".join(rng.choice("0123456789") for _ in range(d.max_len))
    return f"max {s}=", max(s)


def _count(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    s = "".join(rng.choice("ab") for _ in range(d.count_len))
    target = rng.choice("ab")
    return f"count {target} {s}=", str(s.count(target))


GENERATORS: dict[str, Callable[[random.Random, Difficulty], tuple[str, str]]] = {
    "add": _add,
    "reverse": _reverse,
    "sort": _sort,
    "count": _count,
    "upper": _upper,
    "max": _max,
}


def split_of(prompt: str) -> str:
    """ "eval" for a fixed 20% of prompts (by hash), else "train"."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "eval" if h < EVAL_SHARE else "train"


class SyntheticSuite:
    """The built-in task suite: ``domains`` mixed uniformly, gold = exact match."""

    def __init__(
        self, domains: tuple[str, ...] | list[str] = DOMAINS, difficulty: Difficulty | None = None
    ) -> None:
        unknown = [d for d in domains if d not in GENERATORS]
        if unknown or not domains:
            raise ValueError(f"unknown domain(s) {unknown}; choose from {list(GENERATORS)}")
        self.domains = tuple(domains)
        self.difficulty = difficulty or Difficulty()

    def examples(
        self, split: str, n: int, seed: int = 0, domains: tuple[str, ...] | None = None
    ) -> list[Example]:
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        pool = tuple(domains or self.domains)
        rng = random.Random(f"{seed}-{split}-{','.join(pool)}")
        out: list[Example] = []
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 1000:
                raise RuntimeError(
                    f"could not draw {n} distinct {split} examples; raise the "
                    "difficulty (the domain has too few distinct prompts)"
                )
            domain = pool[len(out) % len(pool)]
            prompt, answer = GENERATORS[domain](rng, self.difficulty)
            if split_of(prompt) == split:
                out.append(Example(prompt, answer, domain))
        return out

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        """1.0 if the completion's first line is exactly the gold answer, else 0.0."""
        return float(first_answer(completion) == str(metadata["answer"]))
