"""A toy preference task for tests and the ``laser-train-rm`` example: no download needed.

Each prompt asks for a word; the chosen answer has at least ``gap`` more vowels than the
rejected one (a property an RM must learn by reading the whole answer, not one token).
"""

from __future__ import annotations

import random
import string

VOWELS = "aeiou"
CONSONANTS = "".join(c for c in string.ascii_lowercase if c not in VOWELS)


def _word(rng: random.Random, length: int, vowels: int) -> str:
    letters = [rng.choice(VOWELS) for _ in range(vowels)]
    letters += [rng.choice(CONSONANTS) for _ in range(length - vowels)]
    rng.shuffle(letters)
    return "".join(letters)


def toy_preference_rows(n: int, seed: int = 0, gap: int = 2) -> list[dict[str, str]]:
    """``n`` rows of ``{"prompt", "chosen", "rejected"}`` (TRL's preference format)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = rng.randint(8, 12)
        low = rng.randint(0, length - gap - 1)
        high = rng.randint(low + gap, length - 1)
        rows.append(
            {
                "prompt": f"word {rng.randint(0, 99)}: ",
                "chosen": _word(rng, length, high),
                "rejected": _word(rng, length, low),
            }
        )
    return rows


def toy_segment_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of ``{"prompt", "segments", "scores"}``: each segment's target is its share
    of vowels, so later segments are judged on their own content."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        segments = []
        for _ in range(rng.randint(2, 4)):
            length = rng.randint(3, 6)
            segments.append(_word(rng, length, rng.randint(0, length)) + " ")
        scores = [sum(c in VOWELS for c in s) / (len(s) - 1) for s in segments]
        rows.append({"prompt": "rate: ", "segments": segments, "scores": scores})
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m laser.rewards.toy OUT.jsonl [--n N] [--seed S] [--segments]``."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description="write the toy RM dataset as JSONL")
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segments", action="store_true", help="segment-regression rows")
    args = parser.parse_args(argv)
    rows = (toy_segment_rows if args.segments else toy_preference_rows)(args.n, args.seed)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
