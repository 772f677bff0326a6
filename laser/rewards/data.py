"""Reward-model data: validation, text formatting and tokenisation (reading the sources:
``laser.rewards.sources``, whose ``load_rows`` is re-exported here).

Preference data uses TRL's standard format: ``chosen`` and ``rejected`` (required), ``prompt``
and ``margin`` (optional; without ``prompt`` the prompt is implicit in the texts). Segment data
has ``segments`` (list of strings, concatenated = the completion) and ``scores`` (one target
per segment), with an optional ``prompt``.

Sources: a ``datasets.Dataset``, a list of dicts, a local ``.jsonl``/``.json``/``.parquet``/
``.csv`` file, or a hub id (only when online). Every problem is reported with the file, the row
and the column it concerns; rows are named as the source counts them (``RowOrigin``: JSONL
lines from 1, other rows from 0). The columns are the union over all rows: a column some rows
lack is reported for those rows, never filled with "" or dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import datasets
import torch

from laser.rewards.sources import RowOrigin, load_rows, load_source  # noqa: F401 (re-export)

PREFERENCE_REQUIRED = ("chosen", "rejected")
PREFERENCE_OPTIONAL = ("prompt", "margin")
SEGMENT_REQUIRED = ("segments", "scores")
SEGMENT_OPTIONAL = ("prompt",)


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None


@dataclass(frozen=True)
class SegmentExample:
    prompt: str
    segments: tuple[str, ...]
    scores: tuple[float, ...]


def check_columns(
    ds: datasets.Dataset,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    what: str,
    source: str | None = None,
) -> None:
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        where = f"{source}: " if source else ""
        raise ValueError(
            f"{where}{what} data is missing column(s) {missing}: found {sorted(ds.column_names)}, "
            f"expected {list(required)} plus optional {list(optional)}"
        )


def _margin(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, lists, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class _Problems:
    """Offending rows per problem, and for a column some rows lack, how many others have it."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows, self.rows, self.notes = n_rows, {}, {}

    def add(self, what: str, i: int) -> None:
        self.rows.setdefault(what, []).append(i)

    def missing(self, col: str, i: int) -> None:
        self.add(f"missing {col!r}", i)

    def has(self, i: int) -> bool:
        return any(rows and rows[-1] == i for rows in self.rows.values())

    def raise_if_any(self, what: str, origin: RowOrigin) -> None:
        if not self.rows:
            return
        for problem, rows in self.rows.items():
            present = self.n_rows - len(rows)
            if problem.startswith("missing ") and present:
                self.notes[problem] = f" (present in {present} other rows)"
        raise ValueError(origin.report(what, self.rows, self.notes))


def preference_pairs(source: Any) -> list[PreferencePair]:
    """Validated preference pairs. Empty or non-string texts, a column some rows lack (a
    missing ``prompt`` is never read as "") and bad margins raise ValueError naming the rows
    as the source counts them (``RowOrigin``)."""
    return _preference_pairs(*load_source(source))


def _preference_pairs(ds: datasets.Dataset, origin: RowOrigin) -> list[PreferencePair]:
    check_columns(ds, PREFERENCE_REQUIRED, PREFERENCE_OPTIONAL, "preference", origin.name)
    if ds.num_rows == 0:
        raise ValueError(
            f"preference data{f' in {origin.name}' if origin.name else ''} has no rows"
        )
    has_prompt, has_margin = "prompt" in ds.column_names, "margin" in ds.column_names
    texts = ("prompt", "chosen", "rejected") if has_prompt else ("chosen", "rejected")
    pairs, problems = [], _Problems(ds.num_rows)
    for i, row in enumerate(ds):
        for col in texts:
            value = row[col]
            if value is None:
                problems.missing(col, i)
            elif not isinstance(value, str):
                problems.add(f"non-string {col!r}", i)
            elif col != "prompt" and not value.strip():
                problems.add(f"empty {col!r}", i)
        margin = _margin(row["margin"]) if has_margin else None
        if has_margin and row["margin"] is None:
            problems.missing("margin", i)
        elif has_margin and margin is None:
            problems.add("non-numeric or non-finite 'margin'", i)
        if not problems.has(i):
            prompt = row["prompt"] if has_prompt else ""
            pairs.append(PreferencePair(prompt, row["chosen"], row["rejected"], margin))
    problems.raise_if_any("preference", origin)
    return pairs


def segment_examples(source: Any) -> list[SegmentExample]:
    """Validated segment-regression examples (one finite target score per non-empty segment),
    problems named by row as for ``preference_pairs``."""
    return _segment_examples(*load_source(source))


def _segment_examples(ds: datasets.Dataset, origin: RowOrigin) -> list[SegmentExample]:
    check_columns(ds, SEGMENT_REQUIRED, SEGMENT_OPTIONAL, "segment", origin.name)
    has_prompt = "prompt" in ds.column_names
    examples, problems = [], _Problems(ds.num_rows)
    for i, row in enumerate(ds):
        segs, scores = row["segments"], row["scores"]
        prompt = row["prompt"] if has_prompt else ""
        missing = [
            c for c, v in (("segments", segs), ("scores", scores), ("prompt", prompt)) if v is None
        ]
        if missing:
            for col in missing:
                problems.missing(col, i)
        elif (
            not isinstance(segs, list)
            or not segs
            or not all(isinstance(s, str) and s for s in segs)
        ):
            problems.add("'segments' not a non-empty list of non-empty strings", i)
        elif not isinstance(scores, list) or len(scores) != len(segs):
            problems.add("'scores' length differs from 'segments'", i)
        elif not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
            problems.add("non-finite 'scores'", i)
        elif not isinstance(prompt, str):
            problems.add("non-string 'prompt'", i)
        else:
            examples.append(SegmentExample(prompt, tuple(segs), tuple(float(s) for s in scores)))
    problems.raise_if_any("segment", origin)
    if not examples:
        raise ValueError(f"segment data{f' in {origin.name}' if origin.name else ''} has no rows")
    return examples


_VALIDATE = {"preference": _preference_pairs, "segment": _segment_examples}


def load_checked(source: Any, kind: str) -> datasets.Dataset:
    """Load ``source`` and validate every row as ``kind`` ("preference" or "segment") data.

    Call it before splitting or shuffling: problems are then named by the source's own rows
    (JSONL lines), not by positions in a shuffled split."""
    ds, origin = load_source(source)
    _VALIDATE[kind](ds, origin)
    return ds


def format_text(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    chat_template: bool = False,
    append_eos: bool = True,
) -> str:
    """The text an RM reads for (prompt, completion): the same rule for training and scoring.

    Plain: ``prompt + completion + eos`` (TRL's RewardTrainer appends EOS to non-conversational
    data, so RMs trained there score the same way here). ``chat_template=True``: a user turn and
    an assistant turn through the tokenizer's chat template.
    """
    if chat_template:
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    text = prompt + completion
    eos = tokenizer.eos_token
    if append_eos and eos and not text.endswith(eos):
        text += eos
    return text


@dataclass
class Encoded:
    ids: list[list[int]]
    kept: list[int]  # indices (into the input texts) that survived
    truncated: int = 0
    dropped: int = 0


def encode(
    tokenizer: Any,
    texts: list[str],
    max_length: int,
    overlong: str = "truncate",
    add_special_tokens: bool = True,
) -> Encoded:
    """Tokenise; sequences over ``max_length`` are truncated from the LEFT (the RM reads its
    score at the last token, so the end must survive) or dropped (``overlong="drop"``)."""
    if overlong not in ("truncate", "drop"):
        raise ValueError(f"overlong must be 'truncate' or 'drop', got {overlong!r}")
    out = Encoded(ids=[], kept=[])
    for i, ids in enumerate(tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]):
        if len(ids) > max_length:
            if overlong == "drop":
                out.dropped += 1
                continue
            ids = ids[-max_length:]
            out.truncated += 1
        out.ids.append(ids)
        out.kept.append(i)
    return out


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to one (B, T) batch: ``input_ids`` and ``attention_mask``.

    Right padding keeps GPT-2-style position ids correct without passing ``position_ids``.
    """
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask
