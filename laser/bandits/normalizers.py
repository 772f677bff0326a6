"""Normalisers for bandit feedback, usable with any selector.

Raw feedback (minus a training loss, a reward gain...) has an unknown, drifting scale, while
UCB1/EXP3 assume rewards in [0, 1] and LinUCB's alpha is only meaningful relative to the
reward scale. A normaliser maps each raw value to a comparable one, using the history so far.

Each has ``normalize(value) -> float`` (records the value, then maps it), ``state_dict()`` and
``load_state_dict()``; a NaN/inf value raises ValueError and records nothing.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol, runtime_checkable

import numpy as np

from laser.bandits.base import check_positive_int, check_reward


@runtime_checkable
class Normalizer(Protocol):
    floor: float  # the worst normalised value: what a failed batch earns

    def normalize(self, value: float) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PercentileNormalizer:
    """The LASeR rescaling: clip to the [low, high] percentiles of the history, map to [0, 1].

        q_lo, q_hi = percentile(history, [low, high])          (history includes this value)
        normalize(r) = (clip(r, q_lo, q_hi) - q_lo) / (q_hi - q_lo)

    LASeR uses low=20, high=80 over the whole history; ``window`` keeps only the last N values
    (for drifting feedback). When q_hi == q_lo (first value, or a constant stream) there is no
    scale to measure and the result is 0.5, the neutral midpoint, instead of a division by zero.
    """

    def __init__(self, low: float = 20.0, high: float = 80.0, window: int | None = None) -> None:
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"need 0 <= low < high <= 100, got low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)
        self.window = None if window is None else check_positive_int("window", window)
        self.history: deque[float] = deque(maxlen=self.window)

    @property
    def floor(self) -> float:
        """The worst value ``normalize`` can return (feedback for a failed batch)."""
        return 0.0

    def normalize(self, value: float) -> float:
        r = check_reward(value)
        self.history.append(r)
        q_lo, q_hi = np.percentile(np.asarray(self.history), [self.low, self.high])
        return float(clip_scale(np.float64(r), q_lo, q_hi))

    def rescale_all(self, values: np.ndarray) -> np.ndarray:
        """The same rescaling of a whole set of values by that set's own percentiles, the
        history untouched (:func:`percentile_rescale`; ``spectral_pooled``'s ``refit``)."""
        return percentile_rescale(values, self.low, self.high)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = [check_reward(v) for v in state["history"]]
        self.history = deque(values, maxlen=self.window)


def percentile_rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """LASeR's rescaling of a whole set of values at once: clip each to the set's [low, high]
    percentiles and map to [0, 1]; 0.5 everywhere where the two percentiles coincide (no
    scale to measure), as :meth:`PercentileNormalizer.normalize` does for one value."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    if not np.isfinite(v).all():
        raise ValueError("percentile_rescale: every value must be finite")
    return clip_scale(v, *np.percentile(v, [low, high]))


def clip_scale(v: np.ndarray, q_lo: float, q_hi: float) -> np.ndarray:
    """(clip(v, q_lo, q_hi) - q_lo) / (q_hi - q_lo), elementwise; 0.5 where q_hi == q_lo
    (no scale to measure: the neutral midpoint rather than a division by zero)."""
    if q_hi - q_lo <= 0.0:
        return np.full_like(v, 0.5)
    return (np.clip(v, q_lo, q_hi) - q_lo) / (q_hi - q_lo)


class RunningZScore:
    """z = (r - mean) / std over the history including r (Welford's online algorithm).

    Returns 0.0 while the standard deviation is 0 (first value, constant stream). ``clip``
    bounds |z| so a single outlier cannot dominate a linear bandit's estimate.
    """

    def __init__(self, clip: float | None = 5.0, eps: float = 1e-8) -> None:
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {clip!r}")
        self.clip = clip
        self.eps = eps
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean

    @property
    def floor(self) -> float:
        """The worst value ``normalize`` can return (-clip; -5 when unclipped)."""
        return -(self.clip if self.clip is not None else 5.0)

    def normalize(self, value: float) -> float:
        r = check_reward(value)
        self.count += 1
        delta = r - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (r - self.mean)
        std = math.sqrt(self.m2 / self.count)
        if std <= self.eps:
            return 0.0
        z = (r - self.mean) / std
        return float(z if self.clip is None else min(max(z, -self.clip), self.clip))

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        count = int(state["count"])
        mean, m2 = check_reward(state["mean"]), check_reward(state["m2"])
        if count < 0 or m2 < 0:
            raise ValueError(f"invalid RunningZScore state: count={count}, m2={m2}")
        self.count, self.mean, self.m2 = count, mean, m2


class NormalizedBandit:
    """Any selector with its feedback passed through a normaliser first.

    ``NormalizedBandit(EXP3(4), PercentileNormalizer())`` gives EXP3 the [0, 1] rewards it
    needs from raw feedback of any scale. Everything but ``update`` is delegated unchanged;
    the checkpoint holds both the selector's and the normaliser's state.
    """

    def __init__(self, bandit: Any, normalizer: Normalizer) -> None:
        self.bandit = bandit
        self.normalizer = normalizer

    @property
    def num_arms(self) -> int:
        return self.bandit.num_arms

    def select(self, x: Any = None) -> int:
        return self.bandit.select(x)

    def scores(self, x: Any = None) -> np.ndarray:
        return self.bandit.scores(x)

    def probabilities(self, x: Any = None) -> np.ndarray:
        return self.bandit.probabilities(x)

    def update(self, arm: int, x: Any, reward: float) -> float:
        """Normalise, then update; returns the normalised value the selector learnt from. A
        bad arm or context leaves the normaliser untouched too."""
        saved = self.normalizer.state_dict()
        value = self.normalizer.normalize(reward)
        try:
            self.bandit.update(arm, x, value)
        except ValueError:
            self.normalizer.load_state_dict(saved)
            raise
        return value

    def update_floor(self, arm: int, x: Any) -> float:
        """Give ``arm`` the worst normalised value (a failed RM, an update that taught
        nothing) without recording anything in the normaliser's history; returns it."""
        value = self.normalizer.floor
        self.bandit.update(arm, x, value)
        return value

    def add_arm(self) -> int:
        return self.bandit.add_arm()

    def remove_arm(self, arm: int) -> None:
        self.bandit.remove_arm(arm)

    def state_dict(self) -> dict[str, Any]:
        return {"bandit": self.bandit.state_dict(), "normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load both, or neither: a bad normaliser state restores the selector's old state."""
        old = self.bandit.state_dict()
        self.bandit.load_state_dict(state["bandit"])
        try:
            self.normalizer.load_state_dict(state["normalizer"])
        except Exception:
            self.bandit.load_state_dict(old)
            raise
