"""One logger object per run, with fixed metric names (README, "Metrics").

Every logger has ``log(metrics: dict[str, float], step: int)`` and ``close()``; code never
branches on which one it has. ``NullLogger`` drops everything, ``JsonlLogger`` appends one JSON
line per call (``{"step": ..., **metrics}``) to a file that survives crashes line by line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """Logs nothing."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


def _plain(value: Any) -> Any:
    """JSON-safe value: tensors/numpy scalars to float, NaN/inf to strings (JSON has neither)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonlLogger:
    """Writes ``{"step": step, **metrics}`` as one line per call to ``path``.

    A new run starts the file afresh (``append=False``); a resumed run appends to it.
    """

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if append else "w", encoding="utf-8")

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
