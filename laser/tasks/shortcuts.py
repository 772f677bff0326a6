"""The systematic mistake of each built-in domain: what a careless annotator writes instead of
the answer (reverse -> the string copied, sort -> sorted the wrong way, max -> the minimum,
count -> the count of the other letter, add -> digits added without carries, upper -> the
string left as it is).

The built-in world's SFT demonstrations take the shortcut on a share of the examples
(``SFTConfig.shortcut_share``), so the SFT policy knows both the task and the shortcut and
samples each: RL with a reward that tells them apart has room to lift it, one that does not
leaves it where it is, and an RM that prefers the shortcut drives the policy into it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from laser.tasks.base import Example


def _operand(example: Example) -> list[str]:
    """The prompt's words after the domain keyword, e.g. "count a abbab=" -> ["a", "abbab"]."""
    return example.prompt.rstrip("=").split(" ")[1:]


def _add_without_carry(example: Example) -> str:
    a, b = _operand(example)[0].split("+")
    width = max(len(a), len(b))
    digits = [(int(x) + int(y)) % 10 for x, y in zip(a.zfill(width), b.zfill(width))]
    return str(int("".join(map(str, digits))))


def _other_letter_count(example: Example) -> str:
    target, text = _operand(example)
    return str(len(text) - text.count(target))


SHORTCUTS: dict[str, Callable[[Example], str]] = {
    "reverse": lambda e: _operand(e)[0],
    "sort": lambda e: "".join(sorted(_operand(e)[0], reverse=True)),
    "max": lambda e: min(_operand(e)[0]),
    "count": _other_letter_count,
    "add": _add_without_carry,
    "upper": lambda e: _operand(e)[0],
}


def shortcut(example: Example) -> str:
    """The domain's systematic wrong answer for ``example`` (may equal the gold answer, e.g.
    a palindrome reversed; callers that need a wrong answer check)."""
    return SHORTCUTS[example.domain](example)


def with_shortcuts(examples: list[Example], share: float, seed: int) -> list[Example]:
    """Demonstrations where a ``share`` of the answers are the domain's shortcut."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"shortcut_share must lie in [0, 1], got {share}")
    rng = random.Random(seed)
    return [
        Example(e.prompt, shortcut(e), e.domain, e.metadata) if rng.random() < share else e
        for e in examples
    ]
