"""The selector protocol shared by every bandit, and the input checks they all use.

A selector chooses one of ``num_arms`` arms (in LASER: one reward model) for a context ``x``
(a fixed-size feature vector of the batch), and learns from the scalar reward of that choice.

Every check runs *before* any state changes, so a rejected call leaves the selector exactly
as it was (a NaN reward from a diverged step must not poison a week-long run).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Bandit(Protocol):
    """What the orchestrator needs from a selector.

    - ``select(x) -> int``: the arm to play for context ``x`` (shape ``(dim,)``).
    - ``scores(x) -> np.ndarray (K,)``: the rule's per-arm index (UCB, sampled value, weight...).
    - ``probabilities(x) -> np.ndarray (K,)``: the distribution ``select`` draws from; one-hot
      for deterministic rules; logged as the propensity for off-policy evaluation.
    - ``update(arm, x, reward)``: learn from the reward of playing ``arm`` on ``x``.
    - ``add_arm()`` / ``remove_arm(arm)``: grow or shrink the pool mid-run; arms after a removed
      one shift down by one index, like ``list.pop``.
    - ``state_dict()`` / ``load_state_dict(sd)``: everything needed to continue identically.
    """

    @property
    def num_arms(self) -> int: ...

    def select(self, x: Any = None) -> int: ...

    def scores(self, x: Any = None) -> np.ndarray: ...

    def probabilities(self, x: Any = None) -> np.ndarray: ...

    def update(self, arm: int, x: Any, reward: float) -> None: ...

    def add_arm(self) -> int: ...

    def remove_arm(self, arm: int) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    value = _number(name, value)
    ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def check_unit_interval(name: str, value: float, *, low_open: bool = False) -> float:
    value = _number(name, value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_arm(arm: Any, num_arms: int) -> int:
    """Return ``arm`` as an int, or raise ValueError if it is not an index into the pool."""
    if isinstance(arm, torch.Tensor) and arm.numel() == 1:
        arm = arm.item()
    if isinstance(arm, bool) or not isinstance(arm, (int, np.integer)):
        raise ValueError(f"arm must be an integer index, got {arm!r}")
    if not 0 <= arm < num_arms:
        raise ValueError(f"arm index {int(arm)} is out of range for {num_arms} arms")
    return int(arm)


def check_reward(reward: Any) -> float:
    """Return ``reward`` as a float, or raise ValueError if it is not a finite scalar."""
    if isinstance(reward, (torch.Tensor, np.ndarray)):
        size = reward.size if isinstance(reward, np.ndarray) else reward.numel()
        if size != 1:
            raise ValueError(f"reward must be a scalar, got shape {tuple(reward.shape)}")
        reward = reward.item()
    try:
        value = float(reward)
    except (TypeError, ValueError):
        raise ValueError(f"reward must be a real number, got {reward!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"reward must be finite, got {value!r} (NaN/inf from a diverged step?)")
    return value


def check_context(x: Any, dim: int) -> np.ndarray:
    """Return ``x`` as a float64 numpy vector of length ``dim`` or raise ValueError.

    Accepts numpy arrays, torch tensors (any device, detached here) and sequences of floats.
    """
    if x is None:
        raise ValueError(f"this selector needs a context vector of dimension {dim}, got None")
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError("context must be real-valued, got a complex tensor")
        x = x.detach().to("cpu", torch.float64).numpy()
    if np.iscomplexobj(x):
        raise ValueError("context must be real-valued, got complex values")
    try:
        # a private, contiguous copy: the selector may keep it, and the caller may reuse theirs
        arr = np.array(x, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"context must be a vector of numbers, got {type(x).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"context must be a 1-D vector of dimension {dim}, got shape {arr.shape}")
    if arr.shape[0] != dim:
        raise ValueError(f"context has dimension {arr.shape[0]}, expected {dim}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"context has {bad} non-finite (NaN/inf) entries")
    return arr


def check_update_magnitude(x: np.ndarray, reward: float) -> None:
    """Reject finite inputs whose products would overflow to inf (x x^T, reward * x)."""
    with np.errstate(over="ignore"):
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if not (math.isfinite(peak * peak) and math.isfinite(abs(reward) * peak)):
            raise ValueError(
                f"context (max |x| = {peak:.3g}) and reward ({reward:.3g}) are too large: their "
                "products overflow float64; normalise the features or the feedback"
            )


def argmax_ties(values: np.ndarray, rng: np.random.Generator | None) -> int:
    """Index of the maximum; ties go to the lowest index, or uniformly at random with ``rng``."""
    best = np.flatnonzero(values == values.max())
    if rng is None or best.size == 1:
        return int(best[0])
    return int(rng.choice(best))


def argmax_distribution(values: np.ndarray, random_ties: bool) -> np.ndarray:
    """The selection distribution of :func:`argmax_ties`: one-hot, or uniform over the ties."""
    best = values == values.max()
    probs = np.zeros(values.shape[0])
    if random_ties:
        probs[best] = 1.0 / best.sum()
    else:
        probs[int(np.flatnonzero(best)[0])] = 1.0
    return probs


def make_rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def rng_state(rng: np.random.Generator | None) -> dict[str, Any] | None:
    return None if rng is None else rng.bit_generator.state


def set_rng_state(rng: np.random.Generator | None, state: dict[str, Any] | None) -> None:
    if (rng is None) != (state is None):
        raise ValueError("state_dict and selector disagree on whether a seeded RNG is used")
    if rng is not None:
        rng.bit_generator.state = state


def check_state_kind(state: dict[str, Any], expected: str) -> None:
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind != expected:
        raise ValueError(f"state_dict is for {kind!r}, cannot load it into {expected}")


class SelectorBase:
    """Plumbing every selector shares: removal checks and the state_dict envelope.

    Subclasses set ``self.rng`` (a numpy Generator or None) and implement ``num_arms``,
    ``_hparams()`` (constructor values a checkpoint must match), ``_state()`` and
    ``_load_state(state)`` (their learned state).
    """

    rng: np.random.Generator | None = None

    @property
    def num_arms(self) -> int:
        raise NotImplementedError

    def _check_removal(self, arm: Any) -> int:
        arm = check_arm(arm, self.num_arms)
        if self.num_arms == 1:
            raise ValueError("cannot remove the last arm: a selector needs at least one")
        return arm

    def _hparams(self) -> dict[str, Any]:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "hparams": self._hparams(),
            "rng": rng_state(self.rng),
            "state": self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_kind(state, type(self).__name__)
        if state.get("hparams") != self._hparams():
            raise ValueError(
                f"state_dict hyperparameters {state.get('hparams')} differ from this "
                f"selector's {self._hparams()}"
            )
        if (self.rng is None) != (state.get("rng") is None):
            raise ValueError("state_dict and selector disagree on whether a seeded RNG is used")
        old_rng = rng_state(self.rng)
        set_rng_state(self.rng, state["rng"])  # may reject a malformed RNG state: nothing changed
        try:
            self._load_state(state["state"])  # validates before it assigns anything
        except Exception:
            set_rng_state(self.rng, old_rng)
            raise


class EstimatorSelector(SelectorBase):
    """A selector whose learned state lives entirely in ``self.estimator``.

    The estimator (``RidgeArms`` or ``MeanArms``) owns the per-arm statistics; the selector
    adds only its exploration rule, so arm management and checkpoints just delegate.
    """

    estimator: Any

    @property
    def num_arms(self) -> int:
        return self.estimator.num_arms

    def add_arm(self) -> int:
        return self.estimator.add_arm()

    def remove_arm(self, arm: int) -> None:
        self.estimator.remove_arm(self._check_removal(arm))

    def _state(self) -> dict[str, Any]:
        return self.estimator.state_dict()

    def _load_state(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state)
