"""Reward-model data: loading, validation, text formatting and tokenisation.

Preference data uses TRL's standard format: ``chosen`` and ``rejected`` (required), ``prompt``
and ``margin`` (optional; without ``prompt`` the prompt is implicit in the texts). Segment data
has ``segments`` (list of strings, concatenated = the completion) and ``scores`` (one target
per segment), with an optional ``prompt``.

Sources: a ``datasets.Dataset``, a list of dicts, a local ``.jsonl``/``.json``/``.parquet``/
``.csv`` file, or a hub id (only when online). Every problem is reported with the row and the
column it concerns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

PREFERENCE_REQUIRED = ("chosen", "rejected")
PREFERENCE_OPTIONAL = ("prompt", "margin")
SEGMENT_REQUIRED = ("segments", "scores")
SEGMENT_OPTIONAL = ("prompt",)
_SHOW = 5  # how many offending row indices an error message lists


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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {lineno} is a {type(row).__name__}, not an object")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _type_name(value: Any) -> str:
    return (
        "number"
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else (type(value).__name__)
    )


def _from_list(rows: list[dict[str, Any]], origin: str) -> datasets.Dataset:
    """Dataset.from_list, but a column whose type changes between rows is reported by row."""
    try:
        return datasets.Dataset.from_list(rows)
    except Exception as exc:  # pyarrow's type errors name a value, not a row
        first: dict[str, str] = {}
        for i, row in enumerate(rows):
            for col, value in row.items():
                if value is None:
                    continue
                kind = first.setdefault(col, _type_name(value))
                if _type_name(value) != kind:
                    raise ValueError(
                        f"{origin}: column {col!r} in row {i} is {_type_name(value)} "
                        f"({value!r}) but {kind} in earlier rows"
                    ) from exc
        raise ValueError(f"{origin}: could not build a table from the rows: {exc}") from exc


def load_rows(source: Any, split: str = "train", name: str | None = None) -> datasets.Dataset:
    """Load a data source (Dataset, list of dicts, local file, hub id with an optional
    configuration ``name`` and ``split``) as a Dataset."""
    if isinstance(source, datasets.Dataset):
        return source
    if isinstance(source, list):
        return _from_list(source, "data")
    path = Path(str(source)).expanduser()
    if path.exists():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return _from_list(_read_jsonl(path), str(path))
        builders = {".json": "json", ".parquet": "parquet", ".csv": "csv"}
        if suffix not in builders:
            raise ValueError(
                f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or .csv)"
            )
        return datasets.load_dataset(builders[suffix], data_files=str(path), split="train")
    if str(source).startswith((".", "/", "~")) or Path(str(source)).suffix:
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return datasets.load_dataset(str(source), name, split=split)
    except Exception as exc:  # offline, unknown id, gated...
        raise ValueError(
            f"could not load {source!r} as a local file or hub dataset: {exc}"
        ) from exc


def check_columns(
    ds: datasets.Dataset, required: tuple[str, ...], optional: tuple[str, ...], what: str
) -> None:
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{what} data is missing column(s) {missing}: found {sorted(ds.column_names)}, "
            f"expected {list(required)} plus optional {list(optional)}"
        )


def _first(indices: list[int]) -> str:
    head = ", ".join(map(str, indices[:_SHOW]))
    return head + (f" and {len(indices) - _SHOW} more" if len(indices) > _SHOW else "")


def _margin(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, lists, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def preference_pairs(source: Any) -> list[PreferencePair]:
    """Validated preference pairs. Empty or non-string texts and bad margins raise ValueError."""
    ds = load_rows(source)
    check_columns(ds, PREFERENCE_REQUIRED, PREFERENCE_OPTIONAL, "preference")
    if ds.num_rows == 0:
        raise ValueError("preference data has no rows")
    has_prompt, has_margin = "prompt" in ds.column_names, "margin" in ds.column_names
    pairs, problems = [], {}
    for i, row in enumerate(ds):
        prompt = row["prompt"] if has_prompt else ""
        for col, value in (
            ("prompt", prompt),
            ("chosen", row["chosen"]),
            ("rejected", row["rejected"]),
        ):
            if not isinstance(value, str):
                problems.setdefault(f"non-string {col!r}", []).append(i)
            elif col != "prompt" and not value.strip():
                problems.setdefault(f"empty {col!r}", []).append(i)
        margin = _margin(row["margin"]) if has_margin else None
        if has_margin and margin is None:
            problems.setdefault("missing, non-numeric or non-finite 'margin'", []).append(i)
        if not any(i in rows for rows in problems.values()):
            pairs.append(
                PreferencePair(
                    prompt,
                    row["chosen"],
                    row["rejected"],
                    None if margin is None else float(margin),
                )
            )
    if problems:
        detail = "; ".join(f"{what} in row(s) {_first(rows)}" for what, rows in problems.items())
        raise ValueError(f"bad preference data: {detail}")
    return pairs


def segment_examples(source: Any) -> list[SegmentExample]:
    """Validated segment-regression examples (one finite target score per non-empty segment)."""
    ds = load_rows(source)
    check_columns(ds, SEGMENT_REQUIRED, SEGMENT_OPTIONAL, "segment")
    has_prompt = "prompt" in ds.column_names
    examples, problems = [], {}
    for i, row in enumerate(ds):
        segs, scores = row["segments"], row["scores"]
        prompt = row["prompt"] if has_prompt else ""
        if (
            not isinstance(segs, list)
            or not segs
            or not all(isinstance(s, str) and s for s in segs)
        ):
            problems.setdefault("'segments' not a non-empty list of non-empty strings", []).append(
                i
            )
        elif not isinstance(scores, list) or len(scores) != len(segs):
            problems.setdefault("'scores' length differs from 'segments'", []).append(i)
        elif not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
            problems.setdefault("non-finite 'scores'", []).append(i)
        elif not isinstance(prompt, str):
            problems.setdefault("non-string 'prompt'", []).append(i)
        else:
            examples.append(SegmentExample(prompt, tuple(segs), tuple(float(s) for s in scores)))
    if problems:
        detail = "; ".join(f"{what} in row(s) {_first(rows)}" for what, rows in problems.items())
        raise ValueError(f"bad segment data: {detail}")
    if not examples:
        raise ValueError("segment data has no rows")
    return examples


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
