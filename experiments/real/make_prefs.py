"""Preference data for the real-model world's RM pool: one JSONL per RM, written from the
train split of the tasks (never the held-out split), deterministically.

    python experiments/real/make_prefs.py --out .cache/laser/real/prefs

Each pair is (prompt as the policy sees it, a right reply, a wrong reply) in the styles the
instruct policy answers in ("B. 476", "12 + 8 = 20", "The opposite of 'up' is 'down'."),
with wrong replies that are near misses (off by one, the other option). The RMs' flaws are
data, as in the built-in world (laser/world/pool.py):
- ``choice``   sees only the ``larger`` and ``antonym`` domains
- ``noisy``    sees every domain, a third of its labels flipped
- ``verbose``  sees every domain, but its labeller preferred the longer reply whenever the two
               differ in length by more than 4 characters (a length bias)
The pool's fourth RM, ``numeric``, is not trained: SmolLM2 itself scoring a reply by its mean
log-likelihood (kind ``likelihood``, as the LASeR authors' code uses its RMs). A MiniLM trained
on the numeric domains' pairs stayed at chance (0.47 held out): a sentence encoder does not
learn that 508 follows 507 from 800 pairs.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from experiments.real.world import real_world

LETTERS = "ABCD"
ALL = ("next", "add", "larger", "antonym")
DOMAINS = {  # what each trained RM sees
    "choice": ("larger", "antonym"),
    "noisy": ALL,
    "verbose": ALL,
}
FLIP = {"noisy": 1 / 3}


def numeric_replies(question: str, gold: int, rng: random.Random) -> tuple[str, str]:
    wrong = gold + rng.choice([-10, -2, -1, 1, 2, 10])
    styles = [
        "{x}",
        "The answer is {x}.",
        "{q} The answer is {x}.",
        "{x}. This is because we count up by one.",
    ]
    if "+" in question:
        a, b = (int(t) for t in question.removeprefix("What is ").rstrip("?").split(" + "))
        styles.append(f"{a} + {b} = {{x}}")
    style = rng.choice(styles).replace("{q}", question)
    return style.format(x=gold), style.format(x=wrong)


def choice_replies(question: str, choices: list[str], gold: int, rng: random.Random):
    wrong = rng.choice([i for i in range(len(choices)) if i != gold])
    styles = ["{L}", "{L}. {c}", "The answer is {L}. {c}", "{c}"]
    if "opposite" in question:
        word = question.split("'")[1]
        styles.append(f"The opposite of '{word}' is '{{c}}'.")
    else:
        styles.append("The larger number is {c}.")
    style = rng.choice(styles)
    return (
        style.format(L=LETTERS[gold], c=choices[gold]),
        style.format(L=LETTERS[wrong], c=choices[wrong]),
    )


def replies(e, rng: random.Random) -> tuple[str, str]:
    """(right, wrong) reply to the example ``e`` of the plain (untemplated) task."""
    if "choices" in e.metadata:
        return choice_replies(e.prompt, e.metadata["choices"], LETTERS.index(e.answer), rng)
    question = e.prompt.removeprefix("Question: ").removesuffix("\nAnswer:")
    return numeric_replies(question, int(e.answer), rng)


def prompt_task():
    """The world's tasks in the policy's chat template (no report: data comes before it)."""
    return real_world("external.report=null").task()


def pairs(
    task, rm: str, n_per_domain: int, seed: int, split: str = "train", domains=None
) -> list[dict]:
    """``rm``'s pairs (its domains, flaws) from ``task`` (:func:`prompt_task`); ``rm="clean"``
    with ``domains``: no flaw."""
    rng = random.Random(f"{rm}-{seed}")
    rows = []
    for domain in domains or DOMAINS[rm]:
        sub = task.task.by_domain[domain]  # ChatTemplateTask over a MixtureTask
        for e in sub.examples(split, n_per_domain, seed=seed):
            prompt = task.format(e.prompt)
            good, bad = replies(e, rng)
            if rm == "verbose":  # replies in two independent styles, judged by length first
                bad = replies(e, rng)[1]
                if abs(len(good) - len(bad)) > 4:
                    good, bad = max(good, bad, key=len), min(good, bad, key=len)
            if rng.random() < FLIP.get(rm, 0.0):
                good, bad = bad, good
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad, "domain": domain})
    rng.shuffle(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".cache/laser/real/prefs")
    ap.add_argument("--n", type=int, default=400, help="pairs per domain an RM sees")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = prompt_task()
    for rm in DOMAINS:
        rows = pairs(task, rm, args.n, args.seed)
        (out / f"{rm}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{out / rm}.jsonl: {len(rows)} pairs")


if __name__ == "__main__":
    main()
