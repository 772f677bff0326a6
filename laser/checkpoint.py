"""Crash-safe checkpoints for long runs: a kill -9 at any instant leaves a loadable checkpoint.

Files are ``<dir>/ckpt-{step:08d}.pt``. A save writes a hidden temp file in the same directory,
fsyncs it, and only then ``os.replace``-s it onto its final name (atomic on POSIX), so a reader
sees either the old set of checkpoints or the old set plus one complete new file. Older
checkpoints are pruned only after that. One writer per directory is assumed (a save deletes
leftover ``.ckpt-*.tmp`` files, which would break a concurrent writer).

Checkpoints load with ``torch.load(weights_only=True)``, which unpickles no arbitrary classes:
``to_safe`` therefore stores numpy arrays as torch tensors, numpy scalars as python scalars and
tuples as lists. Loaders must accept a tensor where they saved an array (``np.asarray(t)``
turns it back) and a list where they saved a tuple. Python ints of any size up to ~2000 bits
(numpy PCG64 states hold 128-bit ints) survive ``weights_only`` as they are; larger ones need
pickle's LONG4 opcode, which the weights-only unpickler rejects, so they are stored as hex
strings under ``_BIG_INT`` and ``from_safe`` (called by ``load_checkpoint``) decodes them.

Integrity: the payload carries ``sha256``, a digest of the step and of every value of the
state (tensor dtype, shape and bytes; keys; scalars), checked on load. It is embedded rather
than a ``.sha256`` sidecar file: one file is renamed into place atomically, so no crash can
pair a checkpoint with another one's checksum, and a checkpoint copied or passed alone
(``resume=<file>``) keeps it. It covers what loading yields, so any flipped byte that would
alter a value is caught, while torch's zip reader, which skips its CRCs, let them through.
Checkpoints from before the digest load with a warning rather than being refused: refusing
would strand every run saved so far, and they get the other checks below all the same.
A state with NaN/inf in a floating tensor is refused on save (the run diverged; saving it
would prune the last good checkpoints) and on load, naming the key path of the first one.
A write that fails on a full disk raises ``OSError`` with its errno, message and the
checkpoint's path, not torch's "unexpected pos" with ENOSPC buried in the chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
_TMP_PREFIX = ".ckpt-"
_TMP_SUFFIX = ".tmp"
_FORMAT = "laser_checkpoint"  # marks our own files: {_FORMAT: 1, "step": int, "state": dict}
_BIG_INT = "__laser_big_int__"
# pickle writes ints of >= 256 bytes with LONG4, which weights_only refuses; 2000 bits < 255 bytes.
_MAX_PLAIN_INT_BITS = 2000
_LEAVES = (torch.Tensor, bool, int, float, complex, str, bytes, type(None), torch.dtype)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; says which file, why, and what to resume from."""

    def __init__(self, path: str | Path, reason: str, previous: Path | None = None) -> None:
        self.path, self.reason, self.previous = Path(path), reason, previous
        hint = f"; resume from {previous} instead" if previous else ""
        super().__init__(f"cannot load checkpoint {self.path}: {reason}{hint}")

    def __reduce__(self):  # keeps the error picklable across processes despite the custom init
        return (type(self), (self.path, self.reason, self.previous))


def to_safe(obj: Any, _where: str = "state") -> Any:
    """Convert ``obj`` into types ``torch.load(weights_only=True)`` accepts (see module doc).

    Unknown types raise ``TypeError`` here, at save time: a checkpoint that only fails when
    loaded, after pruning removed the older ones, would make the run unrecoverable.
    """
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            out[key] = to_safe(value, f"{_where}[{key!r}]")
        if hasattr(obj, "_metadata"):  # nn.Module.state_dict() keeps module versions here
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return [to_safe(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _array_to_tensor(obj, _where)
    if isinstance(obj, np.generic):
        return to_safe(obj.item(), _where)
    if isinstance(obj, int) and not isinstance(obj, bool):
        if obj.bit_length() > _MAX_PLAIN_INT_BITS:
            return {_BIG_INT: hex(obj)}  # hex: str(int) is capped at 4300 digits since 3.11
        return obj
    if isinstance(obj, _LEAVES) or isinstance(obj, torch.device):
        return obj
    raise TypeError(f"{_where}: cannot checkpoint {type(obj).__name__} with weights_only loading")


def _array_to_tensor(array: np.ndarray, where: str) -> torch.Tensor:
    if array.dtype == object:
        raise TypeError(f"{where}: numpy object arrays cannot be loaded with weights_only")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    return torch.from_numpy(array)


def from_safe(obj: Any) -> Any:
    """Undo the encodings of ``to_safe`` that are not plain torch types (big ints)."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _BIG_INT in obj:
            return int(obj[_BIG_INT], 16)
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            out[key] = from_safe(value)
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    return obj


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest step first; temp files never match."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None when there is none."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _step_of(path: Path) -> int | None:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else None


def checkpoint_step(path: str | Path) -> int:
    """The step a checkpoint was saved at: from its ``ckpt-<step>.pt`` name, else its content."""
    step = _step_of(Path(path))
    return step if step is not None else int(load_checkpoint(path)["step"])


def save_checkpoint(directory: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Atomically write ``ckpt-{step:08d}.pt``, then keep only the newest ``keep`` checkpoints.

    The new file is the newest: after resuming from an earlier step, checkpoints of later steps
    belong to the abandoned run and are pruned too, so ``latest_checkpoint`` returns this one.
    """
    step = int(step)
    if keep < 1 or step < 0:
        raise ValueError(f"need keep >= 1 and step >= 0, got keep={keep}, step={step}")
    directory = Path(directory)
    safe = to_safe(state)
    bad = _first_non_finite(safe)
    if bad is not None:
        raise ValueError(
            f"refusing to checkpoint step {step}: non-finite values (NaN/inf) in {bad}; "
            f"the run diverged, the existing checkpoints in {directory} are kept"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(directory)
    payload = {_FORMAT: 1, "step": step, "state": safe, "sha256": _state_digest(step, safe)}
    final = directory / f"ckpt-{step:08d}.pt"
    fd, tmp_name = tempfile.mkstemp(
        dir=directory, prefix=f"{_TMP_PREFIX}{step:08d}-", suffix=_TMP_SUFFIX
    )
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
        except Exception as exc:
            root = _root_os_error(exc)
            if root is None:
                raise
            raise OSError(
                root.errno, f"{root.strerror} while writing checkpoint {final}", tmp_name
            ) from exc
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)  # makes the rename itself durable across power loss
    _prune(directory, final, keep)
    return final


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OSError at the bottom of ``exc``'s chain (torch wraps a failed write of the file
    object in RuntimeError "unexpected pos ..."), or None when there is none."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def _state_digest(step: int, state: Any) -> str:
    """sha256 over the step and every value of a ``to_safe`` state, in order: keys, scalar
    reprs (exact for floats), tensor dtype + shape + bytes. What ``torch.load`` returns for a
    saved state hashes the same, so any change to a loaded value changes the digest."""
    digest = hashlib.sha256(f"laser-state-v1 step={int(step)}".encode())
    _hash_into(digest, state)
    return digest.hexdigest()


def tensors_digest(named: Any) -> str:
    """sha256 of ``(name, tensor)`` pairs, in order, hashed as checkpoints hash their state
    (dtype, shape, raw bytes): a fingerprint of weights a checkpoint leaves out."""
    digest = hashlib.sha256(b"laser-tensors-v1")
    for name, tensor in named:
        _hash_into(digest, name)
        _hash_into(digest, tensor)
    return digest.hexdigest()


def _hash_into(digest: Any, obj: Any) -> None:
    if isinstance(obj, dict):
        digest.update(f"{{{len(obj)}".encode())
        for key, value in obj.items():
            _hash_into(digest, key)
            _hash_into(digest, value)
    elif isinstance(obj, list):
        digest.update(f"[{len(obj)}".encode())
        for value in obj:
            _hash_into(digest, value)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach()
        t = t.to_dense() if t.layout != torch.strided else t
        t = t.resolve_conj().resolve_neg().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():  # raw bytes, whatever the dtype (bfloat16 has no numpy twin)
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, bytes):
        digest.update(f"b{len(obj)}:".encode() + obj)
    else:  # str, int, float, bool, None, complex, torch.dtype, torch.device
        text = f"{type(obj).__name__}:{obj!r}".encode()
        digest.update(f"s{len(text)}:".encode() + text)


def _first_non_finite(obj: Any, where: str = "state") -> str | None:
    """Key path of the first floating/complex tensor holding NaN or inf, else None."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        is_float = isinstance(obj, torch.Tensor) and (obj.is_floating_point() or obj.is_complex())
        return where if is_float and not bool(torch.isfinite(obj.detach()).all()) else None
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def _remove_stale_temp_files(directory: Path) -> None:
    """Temp files of a write that was killed; never valid, so safe to delete (single writer)."""
    for path in directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prune(directory: Path, newest: Path, keep: int) -> None:
    new_step = _step_of(newest)
    others = [p for p in list_checkpoints(directory) if p != newest]
    later = [p for p in others if _step_of(p) > new_step]
    earlier = [p for p in others if _step_of(p) < new_step]
    if later:
        log.warning(
            "removing checkpoints after step %d from an abandoned run: %s",
            new_step,
            [p.name for p in later],
        )
    doomed = later + earlier[: max(len(earlier) - (keep - 1), 0)]
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _previous_checkpoint(path: Path) -> Path | None:
    """The newest checkpoint in ``path``'s directory older than ``path`` (a resume fallback)."""
    step = _step_of(path)
    found = [p for p in list_checkpoints(path.parent) if p != path]
    if step is not None:
        found = [p for p in found if _step_of(p) < step]
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load the state saved by ``save_checkpoint`` with ``weights_only=True``.

    Any failure raises ``CheckpointError`` (never partial state): a truncated zip archive fails
    as a whole because its directory sits at the end of the file; a state whose digest does
    not match its ``sha256``, or holding NaN/inf in a floating tensor, is refused too (see the
    module doc). A checkpoint saved before digests existed loads with a logged warning.
    ``map_location`` defaults to CPU so a checkpoint written on a GPU machine loads anywhere;
    ``load_state_dict`` moves it.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(payload, dict) or payload.get(_FORMAT) != 1:
            raise ValueError("not a LASER checkpoint (no format marker)")
        state = payload["state"]
        if not isinstance(state, dict):
            raise ValueError(f"state is a {type(state).__name__}, not a dict")
        _check_integrity(path, payload)
        return from_safe(state)
    except Exception as e:
        raise CheckpointError(path, _describe(path, e), _previous_checkpoint(path)) from e


def _check_integrity(path: Path, payload: dict) -> None:
    """Raise ValueError when the digest does not match or a floating tensor is not finite."""
    expected = payload.get("sha256")
    if expected is None:
        log.warning("checkpoint %s has no checksum (saved by an older LASER): not verified", path)
    elif _state_digest(payload.get("step", -1), payload["state"]) != expected:
        raise ValueError(
            "contents do not match the checksum saved with them (the file was altered or "
            "damaged after it was written)"
        )
    bad = _first_non_finite(payload["state"])
    if bad is not None:
        raise ValueError(f"non-finite values (NaN/inf) in {bad}")


def _describe(path: Path, error: Exception) -> str:
    """First line of the error plus the file size: 0 or odd sizes point at truncation."""
    lines = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    with contextlib.suppress(OSError):
        reason += f" (file has {path.stat().st_size} bytes)"
    return reason
