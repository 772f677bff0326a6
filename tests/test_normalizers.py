"""Feedback normalisers against hand-computed values."""

import math

import numpy as np
import pytest

from laser.bandits import PercentileNormalizer, RunningZScore


def test_percentile_normalizer_hand_computed():
    norm = PercentileNormalizer()  # LASeR: 20th / 80th percentiles
    assert norm.normalize(3.0) == 0.5  # one value: no scale yet, neutral midpoint
    for v in [1.0, 2.0, 4.0]:
        norm.normalize(v)
    # history [3, 1, 2, 4, 5]: numpy's linear percentiles give q20 = 1.8, q80 = 4.2
    assert math.isclose(norm.normalize(5.0), 1.0)  # clipped to q80
    assert math.isclose(norm.normalize(3.0), (3.0 - 1.8) / (4.2 - 1.8), rel_tol=0, abs_tol=0.2)
    lo, hi = np.percentile([3, 1, 2, 4, 5, 3, 2.5], [20, 80])
    assert math.isclose(norm.normalize(2.5), (2.5 - lo) / (hi - lo))


def test_percentile_normalizer_constant_stream_never_divides_by_zero():
    norm = PercentileNormalizer()
    assert [norm.normalize(7.0) for _ in range(5)] == [0.5] * 5


def test_percentile_normalizer_window_forgets():
    norm = PercentileNormalizer(window=3)
    for v in [100.0, -100.0, 1.0, 2.0, 3.0]:
        norm.normalize(v)
    assert list(norm.history) == [1.0, 2.0, 3.0]
    assert 0.0 <= norm.normalize(2.5) <= 1.0


def test_percentile_normalizer_rejects_nan_and_bad_bounds():
    norm = PercentileNormalizer()
    norm.normalize(1.0)
    with pytest.raises(ValueError, match="finite"):
        norm.normalize(float("nan"))
    assert list(norm.history) == [1.0]
    with pytest.raises(ValueError, match="low < high"):
        PercentileNormalizer(80, 20)


def test_running_zscore_matches_numpy():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=50)
    norm = RunningZScore(clip=None)
    for i, v in enumerate(values):
        got = norm.normalize(v)
        seen = values[: i + 1]
        expected = 0.0 if seen.std() == 0 else (v - seen.mean()) / seen.std()
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_running_zscore_clips_and_round_trips():
    norm = RunningZScore(clip=1.0)
    for v in [0.0, 0.0, 0.0, 0.0, 100.0]:
        out = norm.normalize(v)
    assert out == 1.0
    copy = RunningZScore(clip=1.0)
    copy.load_state_dict(norm.state_dict())
    assert copy.normalize(3.0) == norm.normalize(3.0)


def test_normalized_bandit_feeds_unit_interval_rewards_and_round_trips():
    from laser.bandits import EXP3, NormalizedBandit

    sel = NormalizedBandit(EXP3(3, gamma=0.2, seed=0), PercentileNormalizer())
    for _ in range(200):
        arm = sel.select()
        sel.update(arm, None, 1000.0 * (arm == 1) - 500.0)  # raw scale far outside [0, 1]
    assert sel.probabilities().argmax() == 1
    twin = NormalizedBandit(EXP3(3, gamma=0.2, seed=0), PercentileNormalizer())
    twin.load_state_dict(sel.state_dict())
    assert [sel.select() for _ in range(20)] == [twin.select() for _ in range(20)]


def test_normalized_bandit_bad_arm_leaves_normalizer_untouched():
    from laser.bandits import EXP3, NormalizedBandit

    sel = NormalizedBandit(EXP3(2, seed=0), PercentileNormalizer())
    sel.update(0, None, 1.0)
    with pytest.raises(ValueError, match="arm"):
        sel.update(5, None, 2.0)
    assert list(sel.normalizer.history) == [1.0]
