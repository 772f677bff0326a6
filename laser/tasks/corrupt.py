"""Plausible wrong answers for each built-in domain, and preference pairs built from them.

The RM pool learns from pairs (gold-correct vs corrupted). How each RM is flawed is data:
which domains it saw, how often its labels are flipped (``label_noise``), and how often a
longer-but-wrong answer is labelled as preferred (``length_bias``: the reward-hacking trap).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from laser.tasks.base import Example
from laser.tasks.shortcuts import shortcut


def _wrong_number(rng: random.Random, answer: str) -> str:
    """Off by 1-3: the last digit is wrong, the typical slip of a small model."""
    value = int(answer)
    options = [
        v for v in (value - 3, value - 2, value - 1, value + 1, value + 2, value + 3) if v >= 0
    ]
    return str(rng.choice(options))


def _wrong_string(rng: random.Random, answer: str, alphabet: str) -> str:
    """Another string of the same length: two positions swapped, or one character changed."""
    chars = list(answer)
    for _ in range(20):
        candidate = chars[:]
        i, j = rng.sample(range(len(chars)), 2) if len(chars) > 1 else (0, 0)
        if rng.random() < 0.5 and candidate[i] != candidate[j]:
            candidate[i], candidate[j] = candidate[j], candidate[i]
        else:
            candidate[i] = rng.choice([c for c in alphabet if c != candidate[i]])
        if "".join(candidate) != answer:
            return "".join(candidate)
    raise ValueError(f"cannot corrupt {answer!r}")


CORRUPTERS: dict[str, Callable[[random.Random, str], str]] = {
    "add": _wrong_number,
    "count": _wrong_number,
    "reverse": lambda rng, a: _wrong_string(rng, a, "abcde"),
    "sort": lambda rng, a: _wrong_string(rng, a, "0123456789"),
    "upper": lambda rng, a: _wrong_string(rng, a, "ABCDEabcde"),
    "max": lambda rng, a: str(rng.choice([d for d in range(10) if str(d) != a])),
}


def corrupt(rng: random.Random, example: Example) -> str:
    """A wrong answer of the example's domain (never equal to the gold answer)."""
    wrong = CORRUPTERS[example.domain](rng, example.answer)
    assert wrong != example.answer
    return wrong


def longer_wrong(rng: random.Random, example: Example) -> str:
    """A wrong answer that is longer than the gold one (gold plus 1-3 extra characters)."""
    alphabet = "0123456789" if example.domain in ("add", "count", "sort") else "abcde"
    return example.answer + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3)))


# every domain's alphabet, the upper domain's capitals included: a malformed answer can look
# like any domain's (an RM that never saw wrong capitals was hacked by "CCCC" for "up acda=")
MALFORMED_ALPHABET = "abcde0123456789ABCDE"


def malformed(rng: random.Random, example: Example) -> str:
    """An answer of the wrong shape: 1 to len(gold)+2 characters from any domain's alphabet.

    A policy under RL drifts into such outputs (letters for a digit, a truncated sort); an RM
    that only ever compared gold with same-shape corruptions has never seen them and can rank
    them above the gold, which RL then exploits (measured: every RM collapsed the policy).
    """
    for _ in range(20):
        n = rng.randint(1, len(example.answer) + 2)
        wrong = "".join(rng.choice(MALFORMED_ALPHABET) for _ in range(n))
        if wrong != example.answer:
            return wrong
    raise ValueError(f"cannot build a malformed answer for {example.answer!r}")


def preference_rows(
    examples: list[Example],
    seed: int,
    *,
    label_noise: float = 0.0,
    length_bias: float = 0.0,
    malformed_share: float = 0.0,
    sampled: dict[str, list[str]] | None = None,
    on_policy_share: float = 0.0,
    shortcut_bias: float = 0.0,
) -> list[dict]:
    """TRL-format rows (prompt, chosen, rejected, domain) from gold vs corrupted answers.

    With probability ``length_bias`` a pair prefers a longer WRONG answer over the gold one;
    else with probability ``shortcut_bias`` it prefers the domain's shortcut (the systematic
    mistake of laser/tasks/shortcuts.py, as an annotator who believes it would label);
    otherwise the rejected answer is, with probability ``on_policy_share``, one of the wrong
    answers the policy sampled for the prompt (``sampled[prompt]``, when it has any), else
    malformed with probability ``malformed_share``, else a plausible same-shape corruption;
    with probability ``label_noise`` chosen and rejected are swapped.
    """
    shares = {
        "label_noise": label_noise,
        "length_bias": length_bias,
        "shortcut_bias": shortcut_bias,
    }
    shares.update(malformed_share=malformed_share, on_policy_share=on_policy_share)
    bad = {k: v for k, v in shares.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"{', '.join(bad)} must lie in [0, 1], got {bad}")
    rng = random.Random(seed)
    rows = []
    for ex in examples:
        if rng.random() < length_bias:
            chosen, rejected = longer_wrong(rng, ex), ex.answer
        elif shortcut_bias and rng.random() < shortcut_bias and shortcut(ex) != ex.answer:
            chosen, rejected = shortcut(ex), ex.answer
        elif (sampled or {}).get(ex.prompt) and rng.random() < on_policy_share:
            chosen, rejected = ex.answer, rng.choice(sampled[ex.prompt])
        elif malformed_share and rng.random() < malformed_share:
            chosen, rejected = ex.answer, malformed(rng, ex)
        else:
            chosen, rejected = ex.answer, corrupt(rng, ex)
        if rng.random() < label_noise:
            chosen, rejected = rejected, chosen
        rows.append(
            {"prompt": ex.prompt, "chosen": chosen, "rejected": rejected, "domain": ex.domain}
        )
    return rows
