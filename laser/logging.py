"""One logger object per run, with fixed metric names (README, "Metrics").

Every logger has ``log_run_info(metadata)``, ``log(metrics: dict[str, float], step: int)`` and
``close()``; code never branches on which one it has. ``NullLogger`` drops everything,
``JsonlLogger`` appends one JSON line per call (``{"step": ..., **metrics}``) to a file that
survives crashes line by line, ``WandbLogger`` sends to Weights & Biases (offline unless an API
key is configured, so runs on machines without internet can be uploaded later with
``wandb sync``). ``run_metadata`` collects what is needed to reproduce a run.

Every logger takes ``resume_step``: None for a new run, else the step of the checkpoint a run
resumes from. JSON-lines files (metrics and ``decisions.jsonl``) are then cut back to that
step by ``truncate_jsonl`` and appended to, so a resume after kill -9 neither wipes the steps
before the checkpoint nor logs the steps after it twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import netrc
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit


@runtime_checkable
class Logger(Protocol):
    def log_run_info(self, metadata: dict[str, Any]) -> None: ...

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """Logs nothing."""

    def __init__(self, resume_step: int | None = None) -> None:
        pass  # accepted so every logger config instantiates with the same arguments

    def log_run_info(self, metadata: dict[str, Any]) -> None:
        pass

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


def truncate_jsonl(path: str | Path, last_step: int | None) -> int:
    """Cut a JSON-lines log back to a checkpoint; returns how many lines it dropped.

    Drops every record whose ``"step"`` is after ``last_step`` (None: keep every step) and a
    torn last line, the line a crash cut short (it does not parse; a complete last line that
    only lacks its newline gets one). Lines without a step (``run_info``) stay, and so do
    unparseable lines before the last, which no crash of ours produces: they are not ours to
    delete. The file is rewritten atomically (temp file in the same directory, fsync,
    ``os.replace``), so a crash during the cut leaves the old file whole. No file: 0.
    """
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    kept = [line for line in lines if not _after(line, last_step)]
    if tail and _parse(tail) is not None and not _after(tail, last_step):
        kept.append(tail)
    dropped = len(lines) + bool(tail) - len(kept)
    new = b"".join(line + b"\n" for line in kept)
    if new != data:
        _atomic_write(path, new)
    return dropped


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _after(line: bytes, last_step: int | None) -> bool:
    record = _parse(line)
    step = record.get("step") if isinstance(record, dict) else None
    return last_step is not None and isinstance(step, int) and step > last_step


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _open_log(path: Path, append: bool, resume_step: int | None) -> int:
    """An O_APPEND descriptor on ``path``: emptied for a new run, cut back for a resumed one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    if append or resume_step is not None:
        truncate_jsonl(path, resume_step)
    else:
        flags |= os.O_TRUNC
    return os.open(path, flags, 0o644)


def _append_line(fd: int, record: dict[str, Any]) -> None:
    """One ``os.write`` per line (unbuffered, O_APPEND): a crash tears at most the last line,
    and a buffered writer cannot split a long line into pieces that interleave or half-land."""
    data = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
    written = os.write(fd, data)
    while written < len(data):  # a short write (signal, nearly full disk): finish the line
        written += os.write(fd, data[written:])


class JsonlLogger:
    """Writes ``{"step": step, **metrics}`` as one line per call to ``path``.

    A new run starts the file afresh. ``resume_step=N`` (a run resumed from the checkpoint of
    step N) keeps the lines up to step N, drops later ones and a torn last line, then appends
    (see ``truncate_jsonl``); ``append=True`` alone keeps every complete line.
    """

    def __init__(
        self, path: str | Path, append: bool = False, resume_step: int | None = None
    ) -> None:
        self.path = Path(path)
        self._fd: int | None = _open_log(self.path, append, resume_step)

    def log_run_info(self, metadata: dict[str, Any]) -> None:
        """One ``{"run_info": ...}`` line; call it before the first ``log`` (again on resume)."""
        _append_line(self._require_open(), {"run_info": metadata})

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        _append_line(self._require_open(), record)

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError(f"JsonlLogger for {self.path} is closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DecisionWriter:
    """``decisions.jsonl``: one line per selector update (step, context, RM, arm, propensity
    of the choice, feedback given) for off-policy evaluation with ``laser-ope``. Each line is
    appended whole by one write, so a crash loses at most the line being written.

    A new run starts empty; ``resume_step=N`` cuts the file back to step N first (no decision
    logged twice after a resume, no torn line glued to the next), ``append=True`` alone only
    drops a torn last line.
    """

    def __init__(
        self, path: str | Path, append: bool = False, resume_step: int | None = None
    ) -> None:
        self.path = Path(path)
        os.close(_open_log(self.path, append, resume_step))

    def write(self, step: int, context: Any, rm: str, arm: int, propensity: float, reward: float):
        x = context.tolist() if hasattr(context, "tolist") else list(context)
        record = {"step": step, "context": x, "rm": rm, "arm": arm}
        record.update(propensity=propensity, reward=reward)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _append_line(fd, record)
        finally:
            os.close(fd)


def _json_default(value: Any) -> Any:
    """Configs may hold numpy/tensor scalars, arrays or paths: store them readably, not fail."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _git(*args: str, cwd: str | Path | None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def run_metadata(config: dict[str, Any], seed: int, cwd: str | Path | None = None) -> dict:
    """What reproduces a run: config, seed, code version (git) and library versions.

    ``git_commit`` is HEAD of the repository holding ``cwd`` (default: the working directory),
    ``"unknown"`` outside a repository or without git. ``git_dirty`` is True when tracked files
    differ from HEAD (the commit alone would not reproduce the code; untracked outputs are
    ignored), None when unknown.
    """
    import torch

    commit = _git("rev-parse", "HEAD", cwd=cwd)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd) if commit else None
    return {
        "config": config,
        "seed": int(seed),
        "git_commit": commit.strip() if commit else "unknown",
        "git_dirty": bool(status.strip()) if status is not None else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def wandb_api_key_configured(env: dict[str, str] | None = None) -> bool:
    """Whether wandb would find credentials, checked the way wandb itself looks for them.

    wandb (sdk/lib/wbauth/authenticate.py, ``_use_system_auth``) tries ``WANDB_API_KEY`` or
    ``WANDB_IDENTITY_TOKEN_FILE``, then the netrc file (``$NETRC``, else ``~/.netrc``, else
    ``~/_netrc``) entry whose machine is the host of ``WANDB_BASE_URL`` (default
    ``https://api.wandb.ai``). Re-implemented here because wandb's helpers are private.
    """
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    for path in _netrc_candidates(env):
        if path.is_file():
            try:
                creds = netrc.netrc(str(path)).authenticators(host)
            except (netrc.NetrcParseError, OSError):
                return False
            return bool(creds and creds[2])
    return False


def _netrc_candidates(env: dict[str, str]) -> list[Path]:
    if env.get("NETRC"):
        return [Path(env["NETRC"]).expanduser()]
    return [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]


def resolve_wandb_mode(mode: str | None = None, env: dict[str, str] | None = None) -> str:
    """Explicit ``mode`` wins, then ``WANDB_MODE``; otherwise online only with credentials.

    Offline without credentials, instead of wandb's interactive login prompt, so unattended runs
    never block; their directories upload later with ``wandb sync``.
    """
    env = os.environ if env is None else env
    if mode:
        return mode
    if env.get("WANDB_MODE"):
        return env["WANDB_MODE"]
    return "online" if wandb_api_key_configured(env) else "offline"


class WandbLogger:
    """Logs to a Weights & Biases run; see ``resolve_wandb_mode`` for online/offline.

    Uses its own run object (``reinit="create_new"``) rather than the global ``wandb.log``, so
    two loggers in one process never write into each other's run. ``resume_step`` is accepted
    like every logger's; a resumed run is a new W&B run whose steps continue after it, so there
    is nothing to cut back.
    """

    def __init__(
        self,
        project: str = "laser",
        name: str | None = None,
        config: dict[str, Any] | None = None,
        mode: str | None = None,
        dir: str | Path | None = None,
        tags: list[str] | None = None,
        resume_step: int | None = None,
    ) -> None:
        import wandb  # lazily: importing wandb is slow and most tests never need it

        self.mode = resolve_wandb_mode(mode)
        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            name=name,
            config=config,
            mode=self.mode,
            dir=None if dir is None else str(dir),
            tags=tags,
            reinit="create_new",
        )
        self._closed = False

    def log_run_info(self, metadata: dict[str, Any]) -> None:
        self.run.config.update(metadata, allow_val_change=True)

    def log(self, metrics: dict[str, float], step: int) -> None:
        # NaN/inf stay floats here (wandb plots them as gaps); only tensors/numpy are unwrapped
        values = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
        self.run.log(values, step=int(step))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.run.finish()
