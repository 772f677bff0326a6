"""Question/answer datasets as Tasks: GSM8K-style math and multiple choice (MMLU, StrategyQA).

Rows come from a local ``.jsonl``/``.json``/``.parquet``/``.csv`` file, a ``datasets.Dataset``,
or a hub id when online (``laser.rewards.data.load_rows``).

- ``GSM8KTask``: ``question`` and ``answer`` whose final answer follows "####" (GSM8K's
  format). A completion is right when its extracted number equals the gold number: the text
  after its own "####" if present, else the last number in it. Commas and a trailing ".0"
  are ignored ("1,000" == "1000.0").
- ``MultipleChoiceTask``: ``question``, ``choices`` (list of strings) and ``answer`` (an index,
  a letter "A"-"Z", or the text of a choice; StrategyQA's true/false answers become the choices
  ["yes", "no"]). The prompt lists the lettered choices; a completion is right when the first
  standalone letter (or yes/no) it gives is the gold one.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from laser.rewards.data import check_columns, load_rows
from laser.tasks.base import Example

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
LETTERS = string.ascii_uppercase


def normalize_number(text: str) -> str | None:
    """ "1,000.50" -> "1000.5", "42.0" -> "42"; None if ``text`` is not a number."""
    cleaned = text.strip().replace(",", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def extract_number(completion: str) -> str | None:
    """The answer a completion gives: after its "####" if any, else its last number."""
    if "####" in completion:
        tail = completion.split("####", 1)[1]
        found = _NUMBER.search(tail)
        return normalize_number(found.group()) if found else None
    numbers = _NUMBER.findall(completion)
    return normalize_number(numbers[-1]) if numbers else None


class _RowTask:
    """A fixed list of examples: the first (1 - eval_share) are train, the rest eval."""

    rows: list[Example]
    eval_share: float

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """``n`` examples of ``split``, drawn without replacement (a fresh pass over the split
        whenever it runs out) in an order fixed by ``seed``. Consecutive seeds give unrelated
        batches: the loop asks for seed + step, and offsets into one fixed order would make
        neighbouring steps share all but one prompt."""
        cut = int(round(len(self.rows) * (1 - self.eval_share)))
        if 0 < self.eval_share and cut == len(self.rows) > 1:  # a small share of few rows
            cut -= 1  # still holds one row out rather than none
        rows = self.rows[:cut] if split == "train" else self.rows[cut:]
        if not rows:
            raise ValueError(f"no {split} rows (eval_share={self.eval_share})")
        rng = random.Random(seed)
        out: list[Example] = []
        while len(out) < n:
            out += rng.sample(rows, min(len(rows), n - len(out)))
        return out


class GSM8KTask(_RowTask):
    """GSM8K-style question answering with a numeric gold checker."""

    def __init__(
        self,
        source: Any,
        *,
        domain: str = "gsm8k",
        eval_share: float = 0.2,
        prompt_template: str = "Question: {question}\nAnswer:",
    ) -> None:
        ds = load_rows(source)
        check_columns(ds, ("question", "answer"), (), "GSM8K-style")
        self.domains = (domain,)
        self.rows: list[Example] = []
        for i, row in enumerate(ds):
            if "####" not in str(row["answer"]):
                raise ValueError(f"row {i}: answer has no '####' final answer: {row['answer']!r}")
            gold = normalize_number(str(row["answer"]).split("####", 1)[1])
            if gold is None:
                raise ValueError(f"row {i}: the text after '####' is not a number")
            self.rows.append(
                Example(prompt_template.format(question=row["question"]), gold, domain)
            )
        self.eval_share = eval_share

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        return float(extract_number(completion) == metadata["answer"])


def _gold_letter(row: dict[str, Any], choices: list[str], i: int) -> str:
    answer = row["answer"]
    if isinstance(answer, bool):
        return "A" if answer else "B"
    if isinstance(answer, int) and 0 <= answer < len(choices):
        return LETTERS[answer]
    if isinstance(answer, str):
        if answer.strip().upper() in LETTERS[: len(choices)] and len(answer.strip()) == 1:
            return answer.strip().upper()
        if answer in choices:
            return LETTERS[choices.index(answer)]
    raise ValueError(f"row {i}: answer {answer!r} is not an index, letter or choice of {choices}")


class MultipleChoiceTask(_RowTask):
    """Multiple choice with lettered options; StrategyQA-style booleans become yes/no."""

    def __init__(self, source: Any, *, domain: str = "mc", eval_share: float = 0.2) -> None:
        ds = load_rows(source)
        check_columns(ds, ("question", "answer"), ("choices",), "multiple-choice")
        self.domains = (domain,)
        self.rows: list[Example] = []
        has_choices = "choices" in ds.column_names
        for i, row in enumerate(ds):
            choices = list(row["choices"]) if has_choices and row["choices"] else ["yes", "no"]
            letter = _gold_letter(row, choices, i)
            options = "\n".join(f"{LETTERS[k]}. {c}" for k, c in enumerate(choices))
            prompt = f"Question: {row['question']}\n{options}\nAnswer:"
            self.rows.append(Example(prompt, letter, domain, {"choices": choices}))
        self.eval_share = eval_share

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        choices = metadata.get("choices", [])
        letters = LETTERS[: len(choices)] if choices else LETTERS
        lowered = [c.lower() for c in choices]
        for token in re.findall(r"[A-Za-z]+", completion):
            if len(token) == 1 and token.upper() in letters:
                return float(token.upper() == metadata["answer"])
            if token.lower() in lowered:  # "yes"/"no" or a one-word choice
                return float(LETTERS[lowered.index(token.lower())] == metadata["answer"])
        return 0.0
