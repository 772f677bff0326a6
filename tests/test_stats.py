"""experiments.stats, the statistics of laser-compare's report, against hand-computed numbers:
the paired bootstrap over eval prompts, the t interval over seeds, the exact McNemar test."""

import numpy as np
import pytest

from experiments.stats import macro_mean, mcnemar_exact, paired_bootstrap, seed_interval


def test_paired_bootstrap_hand_computed():
    same = paired_bootstrap([1, 0, 1], [1, 0, 1], ["a"] * 3)
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0}
    # one stratum, differences 1, 1, 1, 0: mean 0.75; every resample lies in [0, 1]
    one = paired_bootstrap([1, 1, 1, 0], [0, 0, 0, 0], ["a"] * 4, n_boot=4000)
    assert one["diff"] == pytest.approx(0.75)
    assert 0.0 <= one["low"] < 0.75 < one["high"] <= 1.0
    # macro over strata: stratum x differs by 1 on 2 prompts, y by 0 on 4 -> (1 + 0) / 2,
    # not the pooled 2/6; no variation within a stratum, so the interval collapses
    macro = paired_bootstrap([1, 1, 0, 0, 0, 0], [0] * 6, ["x", "x", "y", "y", "y", "y"])
    assert macro == pytest.approx({"diff": 0.5, "low": 0.5, "high": 0.5})
    assert macro_mean([1, 1, 0, 0, 0, 0], ["x", "x", "y", "y", "y", "y"]) == 0.5


def test_paired_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    out = paired_bootstrap(a, b, [0] * 2000, n_boot=4000)
    d = a - b
    half = 1.96 * d.std() / np.sqrt(len(d))
    assert out["high"] - out["low"] == pytest.approx(2 * half, rel=0.1)


def test_seed_interval_hand_computed():
    # differences 0.1, 0.2, 0.3: mean 0.2, s = 0.1, t(0.975, 2) = 4.302653
    out = seed_interval([0.1, 0.2, 0.3])
    half = 4.302653 * 0.1 / 3**0.5
    assert out == pytest.approx({"diff": 0.2, "low": 0.2 - half, "high": 0.2 + half})
    assert seed_interval([0.05, 0.05]) == pytest.approx({"diff": 0.05, "low": 0.05, "high": 0.05})
    one = seed_interval([0.3])
    assert one["diff"] == 0.3 and np.isnan(one["low"]) and np.isnan(one["high"])
    for bad in ([], [0.1, float("nan")]):
        with pytest.raises(ValueError, match="seed_interval"):
            seed_interval(bad)


def test_mcnemar_exact_hand_computed():
    assert mcnemar_exact([1, 1, 1, 0, 0], [0, 0, 0, 0, 0]) == {"a_wins": 3, "b_wins": 0, "p": 0.25}
    # 9 vs 1 discordant: p = 2 * (C(10,0) + C(10,1)) / 2^10
    a = [1] * 9 + [0] + [1] * 5
    b = [0] * 9 + [1] + [1] * 5
    assert mcnemar_exact(a, b)["p"] == pytest.approx(22 / 1024)
    assert mcnemar_exact([1, 0], [1, 0])["p"] == 1.0


@pytest.mark.parametrize(
    "a, b, strata",
    [([1, 0], [1], ["s", "s"]), ([1], [1], ["s", "t"]), ([], [], [])],
)
def test_paired_bootstrap_rejects_mismatched_input(a, b, strata):
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(a, b, strata)


def test_mcnemar_rejects_non_binary():
    with pytest.raises(ValueError, match="0 or 1"):
        mcnemar_exact([0.5, 1], [1, 1])
