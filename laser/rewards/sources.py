"""Reading reward-model data sources: a ``datasets.Dataset``, a list of dicts, a local
``.jsonl``/``.json``/``.parquet``/``.csv`` file, or a hub id (only when online).

A source that cannot be read (an empty file, a header-only CSV, malformed JSON, a column whose
type changes between rows) raises ValueError naming the file and the problem. Rows are named
as the source counts them (``RowOrigin``: JSONL lines from 1, other rows from 0).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

_SHOW = 5  # how many offending row indices an error message lists


def first_indices(indices: list[int]) -> str:
    head = ", ".join(map(str, indices[:_SHOW]))
    return head + (f" and {len(indices) - _SHOW} more" if len(indices) > _SHOW else "")


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
            return f"line(s) {first_indices([self.lines[i] for i in indices])}"
        return f"row(s) {first_indices(indices)}"

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
    return load_source(source, split, name)[0]


def load_source(
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
