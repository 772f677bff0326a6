"""Write the real-model world's task files (experiments/real/data/*.jsonl), deterministically.

    python experiments/real/make_tasks.py            # rewrites the committed files

Four short-answer domains with gold checkers, chosen so that SmolLM2-135M-Instruct starts
partly right (measured by experiments/real/probe.py, README "LASER on a real model"):
- ``next``    (GSM8K kind: last number in the reply) "What number comes right after 507?"
- ``add``     (GSM8K kind) two-digit plus one-digit addition
- ``larger``  (multiple choice, 2 options) which of two numbers is larger
- ``antonym`` (multiple choice, 4 options) the opposite of a common word
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "data"
ROWS = 600  # per domain; the last 20% are held out for evaluation (TaskSource.eval_share)
ANTONYMS = {
    "hot": "cold",
    "big": "small",
    "up": "down",
    "fast": "slow",
    "happy": "sad",
    "light": "dark",
    "old": "new",
    "open": "closed",
    "early": "late",
    "full": "empty",
    "hard": "soft",
    "rich": "poor",
    "strong": "weak",
    "wet": "dry",
    "high": "low",
    "long": "short",
    "clean": "dirty",
    "loud": "quiet",
    "thick": "thin",
    "heavy": "light",
    "win": "lose",
    "good": "bad",
    "true": "false",
    "day": "night",
    "begin": "end",
    "push": "pull",
    "buy": "sell",
    "in": "out",
    "left": "right",
    "near": "far",
    "first": "last",
    "above": "below",
    "always": "never",
    "inside": "outside",
    "friend": "enemy",
    "love": "hate",
    "young": "old",
    "tall": "short",
    "cheap": "expensive",
    "safe": "dangerous",
    "sweet": "sour",
    "awake": "asleep",
    "arrive": "leave",
}


def gsm_row(question: str, answer: int) -> dict:
    return {"question": question, "answer": f"#### {answer}"}


def make(rng: random.Random) -> dict[str, list[dict]]:
    words = sorted(ANTONYMS)
    out: dict[str, list[dict]] = {"next": [], "add": [], "larger": [], "antonym": []}
    for _ in range(ROWS):
        n = rng.randint(10, 998)
        out["next"].append(gsm_row(f"What number comes right after {n}?", n + 1))
        a, b = rng.randint(10, 89), rng.randint(1, 9)
        out["add"].append(gsm_row(f"What is {a} + {b}?", a + b))
        x, y = rng.sample(range(10, 1000), 2)
        out["larger"].append(
            {
                "question": "Which number is larger?",
                "choices": [str(x), str(y)],
                "answer": int(y > x),
            }
        )
        w = rng.choice(words)
        wrong = rng.sample([ANTONYMS[v] for v in words if ANTONYMS[v] != ANTONYMS[w]], 3)
        choices = [ANTONYMS[w], *wrong]
        rng.shuffle(choices)
        out["antonym"].append(
            {
                "question": f"Which word means the opposite of '{w}'?",
                "choices": choices,
                "answer": choices.index(ANTONYMS[w]),
            }
        )
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for domain, rows in make(random.Random(0)).items():
        path = OUT / f"{domain}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{path}: {len(rows)} rows")


if __name__ == "__main__":
    main()
