"""Resuming a run safely: which checkpoint ``resume`` loads, which directories a run writes
into (locked by ``laser-train``), and the config fingerprint a checkpoint carries, compared
on resume so saved bandit statistics are never read with another meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from laser.checkpoint import checkpoint_step, latest_checkpoint, load_checkpoint
from laser.config import TrainConfig

# values a resumed run may change: how long, how often to evaluate and save, where to log and
# place models, and the pool (RMs may join or leave on resume); everything else gives the
# saved statistics their meaning and must match
RESUMABLE = (
    "loop.steps",
    "loop.eval_every",
    "loop.eval_size",
    "loop.eval_max_new_tokens",
    "loop.checkpoint_every",
    "loop.log_decisions",
    "logger",
    "progress",
    "output_dir",
    "resume",
    "cache_dir",
    "keep_checkpoints",
    "device",
    "rm_device",
    "rm_offload",
    "world.reward_models",
    "external.reward_models",
    "pool_exclude",
)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as flat ``key: value`` pairs, minus what may change on resume."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    for key in ("output_dir", "logger", "resume"):  # hold run-time interpolations
        raw.pop(key, None)
    flat = _flat(OmegaConf.to_container(OmegaConf.create(raw), resolve=True))
    return {
        k: v for k, v in flat.items() if not any(k == r or k.startswith(r + ".") for r in RESUMABLE)
    }


def check_fingerprint(saved: dict[str, Any] | None, now: dict[str, Any], path: Path) -> None:
    """A resumed run must mean what the checkpoint meant: name every key that changed."""
    if saved is None:
        print(f"warning: {path} records no config (an older checkpoint): not compared")
        return
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if changed:
        lines = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:12])
        more = f" (and {len(changed) - 12} more)" if len(changed) > 12 else ""
        raise ValueError(
            f"cannot resume from {path}: the config differs from the run's in {len(changed)} "
            f"key(s): {lines}{more}. The saved bandit statistics and policy would be read with "
            "another meaning; resume with the run's values or start a new run"
        )


def resume_point(config: TrainConfig) -> tuple[Path, int] | None:
    """(checkpoint that ``resume`` will load, its step), read from its name; None: new run."""
    if not config.resume:
        return None
    where = Path(config.resume)
    path = where if where.is_file() else latest_checkpoint(where / "checkpoints")
    if path is None:
        raise FileNotFoundError(f"no checkpoint to resume from in {where / 'checkpoints'}")
    return path, checkpoint_step(path)


def run_dirs(config: TrainConfig) -> list[Path]:
    """The directories a run writes into: its output dir and, when resuming from a run
    directory, that one (checkpoints and decisions continue there)."""
    dirs = [Path(config.output_dir).resolve()]
    if config.resume and Path(config.resume).is_dir():
        dirs.append(Path(config.resume).resolve())
    return list(dict.fromkeys(dirs))


def resume(loop: Any, path: Path, config: dict[str, Any]) -> None:
    """Load a checkpoint into ``loop`` after checking it was saved under the same config."""
    state = load_checkpoint(path)
    check_fingerprint(state.get("config"), config, path)
    loop.load_state_dict(state)
    print(f"resumed from {path} at step {loop.step_count}")
