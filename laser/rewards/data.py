"""Reward-model data: loading, validation, text formatting and tokenisation.

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

import csv
import itertools
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


@dataclass(frozen=True)
class RowOrigin:
    """How messages name the rows of a source. JSONL rows by their line in the file (counted
    from 1, blank lines included), every other source by row index (counted from 0): CSV
    fields may span lines and Parquet has none, so only JSONL has a reliable line number."""

    name: str | None = None  # the file (or hub id); None for in-memory data
    lines: tuple[int, ...] | None = None  # JSONL: the line of each row

    def row(self, i: int) -> str:
        return f"line {self.lines[i]}" if self.lines is not None else f"row {i}"

    def rows(self, indices: list[int]) -> str:
        if self.lines is not None:
            return f"line(s) {_first([self.lines[i] for i in indices])}"
        return f"row(s) {_first(indices)}"

    def report(self, what: str, problems: dict[str, list[int]], notes: dict[str, str]) -> str:
        """``bad {what} data in {file}: {problem} in line(s) 3, 9; ...``."""
        where = f" in {self.name}" if self.name else ""
        detail = "; ".join(
            f"{p} in {self.rows(rows)}{notes.get(p, '')}" for p, rows in problems.items()
        )
        unit = "" if self.lines is not None else "; rows are counted from 0"
        return f"bad {what} data{where}: {detail}{unit}"


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows of a JSONL file and the line (from 1) each came from."""
    rows, lines = [], []
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
            lines.append(lineno)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows, lines


def _read_json_array(path: Path) -> list[dict[str, Any]]:
    """A ``.json`` file holding one array of objects, parsed here so its errors say where."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({_json_where(exc)})") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: element {i} is a {type(row).__name__}, not an object")
    if not rows:
        raise ValueError(f"{path}: no rows (an empty array)")
    return rows


def _json_where(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _type_name(value: Any) -> str:
    return (
        "number"
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else (type(value).__name__)
    )


def _from_list(rows: list[dict[str, Any]], origin: RowOrigin) -> datasets.Dataset:
    """Dataset.from_list over the union of the rows' keys (a key a row lacks becomes None;
    from_list alone takes the first row's keys and drops the others' silently); a column
    whose type changes between rows is reported by row."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if any(len(row) != len(columns) for row in rows):
        rows = [{c: row.get(c) for c in columns} for row in rows]
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
                        f"{origin.name or 'data'}: column {col!r} in {origin.row(i)} is "
                        f"{_type_name(value)} ({value!r}) but {kind} in earlier rows"
                    ) from exc
        raise ValueError(
            f"{origin.name or 'data'}: could not build a table from the rows: {exc}"
        ) from exc


def load_rows(source: Any, split: str = "train", name: str | None = None) -> datasets.Dataset:
    """Load a data source (Dataset, list of dicts, local file, hub id with an optional
    configuration ``name`` and ``split``) as a Dataset. Columns are the union over the rows
    (a row without one holds None); an unreadable, empty or header-only file is a ValueError
    naming the file."""
    return _load(source, split, name)[0]


def _load(
    source: Any, split: str = "train", name: str | None = None
) -> tuple[datasets.Dataset, RowOrigin]:
    if isinstance(source, datasets.Dataset):
        return source, RowOrigin()
    if isinstance(source, list):
        return _from_list(source, RowOrigin()), RowOrigin()
    path = Path(str(source)).expanduser()
    if path.exists():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            rows, lines = _read_jsonl(path)
            origin = RowOrigin(str(path), tuple(lines))
            return _from_list(rows, origin), origin
        if suffix not in _BUILDERS:
            raise ValueError(
                f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or .csv)"
            )
        origin = RowOrigin(str(path))
        if suffix == ".json" and _first_char(path) == "[":
            return _from_list(_read_json_array(path), origin), origin
        return _load_file(path, suffix), origin
    if str(source).startswith((".", "/", "~")) or Path(str(source)).suffix:
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return datasets.load_dataset(str(source), name, split=split), RowOrigin(str(source))
    except Exception as exc:  # offline, unknown id, gated...
        raise ValueError(
            f"could not load {source!r} as a local file or hub dataset: {exc}"
        ) from exc


_BUILDERS = {".json": "json", ".parquet": "parquet", ".csv": "csv"}


def _first_char(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head[:1].decode("ascii", errors="replace")


def _load_file(path: Path, suffix: str) -> datasets.Dataset:
    """A .json/.csv/.parquet file through ``datasets``, its failures named by file and cause
    (``datasets`` says "An error occurred while generating the dataset" and nothing more)."""
    problem = _empty_or_header_only(path, suffix)
    if problem:
        raise ValueError(f"{path}: {problem}")
    try:
        ds = datasets.load_dataset(_BUILDERS[suffix], data_files=str(path), split="train")
    except Exception as exc:
        detail = (_json_problem(path) if suffix == ".json" else None) or _innermost(exc)
        raise ValueError(f"{path}: cannot read this {suffix} file: {detail}") from exc
    if ds.num_rows == 0:
        raise ValueError(f"{path}: no rows")
    return ds


def _empty_or_header_only(path: Path, suffix: str) -> str | None:
    if path.stat().st_size == 0:
        return "empty file"
    if suffix == ".parquet":
        return None
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if suffix == ".json":
                return "empty file (whitespace only)" if not f.read(1 << 16).strip() else None
            records = (r for r in csv.reader(f) if any(cell.strip() for cell in r))
            found = len(list(itertools.islice(records, 2)))
    except (UnicodeDecodeError, csv.Error):
        return None  # datasets reports these with its own words
    return {0: "empty file (whitespace only)", 1: "a header line but no data rows"}.get(found)


def _json_problem(path: Path) -> str | None:
    """Where a .json file stops being JSON: one document, or JSON Lines (one per line)."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return None
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as whole:
        if whole.msg != "Extra data":
            return f"not valid JSON ({_json_where(whole)})"
    with path.open(encoding="utf-8") as f:  # several documents: JSON Lines
        for lineno, line in enumerate(f, 1):
            try:
                if line.strip():
                    json.loads(line)
            except json.JSONDecodeError as exc:
                return f"line {lineno} is not valid JSON ({exc.msg})"
    return None


def _innermost(exc: BaseException) -> str:
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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


def _first(indices: list[int]) -> str:
    head = ", ".join(map(str, indices[:_SHOW]))
    return head + (f" and {len(indices) - _SHOW} more" if len(indices) > _SHOW else "")


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
    return _preference_pairs(*_load(source))


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
    return _segment_examples(*_load(source))


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
    ds, origin = _load(source)
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
