"""One logger object per run, with fixed metric names (README, "Metrics").

Every logger has ``log_run_info(metadata)``, ``log(metrics: dict[str, float], step: int)`` and
``close()``; code never branches on which one it has. ``NullLogger`` drops everything,
``JsonlLogger`` appends one JSON line per call (``{"step": ..., **metrics}``) to a file that
survives crashes line by line, ``WandbLogger`` sends to Weights & Biases (offline unless an API
key is configured, so runs on machines without internet can be uploaded later with
``wandb sync``). ``run_metadata`` collects what is needed to reproduce a run.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import platform
import subprocess
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


class JsonlLogger:
    """Writes ``{"step": step, **metrics}`` as one line per call to ``path``.

    A new run starts the file afresh (``append=False``); a resumed run appends to it.
    """

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if append else "w", encoding="utf-8")

    def log_run_info(self, metadata: dict[str, Any]) -> None:
        """One ``{"run_info": ...}`` line; call it before the first ``log`` (again on resume)."""
        self._file.write(json.dumps({"run_info": metadata}, default=_json_default) + "\n")
        self._file.flush()

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class DecisionWriter:
    """``decisions.jsonl``: one line per selector update (step, context, RM, arm, propensity
    of the choice, feedback given) for off-policy evaluation with ``laser-ope``. Each line is
    appended and flushed on its own, so a crash loses at most the line being written."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("")

    def write(self, step: int, context: Any, rm: str, arm: int, propensity: float, reward: float):
        x = context.tolist() if hasattr(context, "tolist") else list(context)
        record = {"step": step, "context": x, "rm": rm, "arm": arm}
        record.update(propensity=propensity, reward=reward)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


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
    two loggers in one process never write into each other's run.
    """

    def __init__(
        self,
        project: str = "laser",
        name: str | None = None,
        config: dict[str, Any] | None = None,
        mode: str | None = None,
        dir: str | Path | None = None,
        tags: list[str] | None = None,
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
