"""Open-ended prompts without a gold answer (instruction following, e.g. WildChat), scored by
a judge RM that is kept out of the training pool.

Rows have either a ``prompt`` column (and optionally ``reference``, a baseline answer) or a
chat ``conversation`` (a list of ``{"role", "content"}`` messages, WildChat's format): the
first user turn is the prompt and the first assistant turn after it the reference.

Nothing checks an open-ended answer, so held-out scores come from a judge (any
:class:`~laser.rewards.base.RewardModel`): with a reference the score of a completion is its
win against the reference under the judge (1 win, 0.5 tie, 0 loss; the average is a win
rate, the quantity AlpacaEval reports against its baseline model), without one it is the
sigmoid of the judge's score. The judge must not be one of the pool's RMs: a policy trained
on an RM's reward would be graded by that same RM (Gao et al., 2023, "Scaling laws for reward
model overoptimization", use a held-out gold RM for the same reason).
"""

from __future__ import annotations

import math
from typing import Any

from laser.rewards.base import RewardModel
from laser.rewards.data import load_rows
from laser.tasks.base import Example
from laser.tasks.hf import _RowTask


def _turns(conversation: Any, i: int) -> tuple[str, str]:
    """(first user turn, the assistant turn after it or "") of a chat row."""
    if not isinstance(conversation, list):
        raise ValueError(f"row {i}: conversation is {type(conversation).__name__}, not a list")
    user = next(
        (k for k, m in enumerate(conversation) if isinstance(m, dict) and m.get("role") == "user"),
        None,
    )
    if user is None or not str(conversation[user].get("content") or "").strip():
        raise ValueError(f"row {i}: conversation has no non-empty user turn")
    after = conversation[user + 1] if user + 1 < len(conversation) else {}
    reply = after.get("content", "") if after.get("role") == "assistant" else ""
    return str(conversation[user]["content"]), str(reply or "")


def read_prompts(rows: Any, where: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(prompt, reference or "") per row that matches every ``where`` column == value."""
    ds = load_rows(rows)
    columns = ds.column_names
    if "prompt" not in columns and "conversation" not in columns:
        raise ValueError(
            f"prompt data needs a 'prompt' or a 'conversation' column, found {sorted(columns)}"
        )
    missing = [c for c in (where or {}) if c not in columns]
    if missing:
        raise ValueError(f"where= names column(s) {missing} the data lacks: {sorted(columns)}")
    out = []
    for i, row in enumerate(ds):
        if any(row[c] != v for c, v in (where or {}).items()):
            continue
        if "prompt" in columns:
            prompt, reference = row["prompt"], row.get("reference") or ""
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"row {i}: prompt is empty or not a string: {prompt!r}")
        else:
            prompt, reference = _turns(row["conversation"], i)
        out.append((prompt, str(reference)))
    if not out:
        raise ValueError(f"no prompt rows left after where={where}")
    return out


class PromptTask(_RowTask):
    """Prompts only; ``evaluate`` asks ``judge`` (see the module docstring)."""

    def __init__(
        self,
        source: Any,
        *,
        judge: RewardModel | None = None,
        domain: str = "chat",
        eval_share: float = 0.2,
        where: dict[str, Any] | None = None,
        prompt_template: str = "{prompt}",
    ) -> None:
        self.judge = judge
        self.domains = (domain,)
        self.rows = [
            Example(prompt_template.format(prompt=p), "", domain, {"reference": r})
            for p, r in read_prompts(source, where)
        ]
        self.eval_share = eval_share
        self._reference_scores: dict[tuple[str, str], float] = {}  # the judge is deterministic

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        if self.judge is None:
            raise ValueError(
                "this prompt-only task has no gold answers: give it a judge RM (external.judge) "
                "to score held-out completions"
            )
        score = self._judge(prompt, completion)
        reference = metadata.get("reference") or ""
        if not reference:
            return 1.0 / (1.0 + math.exp(-score))
        key = (prompt, reference)
        if key not in self._reference_scores:
            self._reference_scores[key] = self._judge(prompt, reference)
        baseline = self._reference_scores[key]
        return 1.0 if score > baseline else 0.5 if score == baseline else 0.0

    def _judge(self, prompt: str, text: str) -> float:
        score = float(self.judge.score([prompt], [text])[0])
        if not math.isfinite(score):
            name = getattr(self.judge, "name", "judge")
            raise ValueError(f"judge {name!r} returned {score} for prompt {prompt[:60]!r}")
        return score
