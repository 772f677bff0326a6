"""Bad input raises a ValueError that names the problem and leaves the selector untouched."""

import io

import numpy as np
import pytest
import torch

from laser.bandits import EXP3, UCB1, EpsilonGreedy, FixedArm, LinTS, LinUCB, RandomArm, RoundRobin


def _snapshot(sel):
    buffer = io.BytesIO()
    torch.save(sel.state_dict(), buffer)
    return buffer.getvalue()


def _trained(factory):
    sel = factory()
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.normal(size=4)
        sel.update(sel.select(x), x, float(rng.uniform()))
    return sel


CONTEXTUAL = [
    lambda: LinUCB(3, 4),
    lambda: LinUCB(3, 4, gamma=0.9, seed=1),
    lambda: LinTS(3, 4, seed=0),
    lambda: EpsilonGreedy(3, dim=4, seed=0),
]
ALL = CONTEXTUAL + [
    lambda: EXP3(3, seed=0),
    lambda: EpsilonGreedy(3, seed=0),
    lambda: UCB1(3),
    lambda: FixedArm(3, 0),
    lambda: RandomArm(3, seed=0),
    lambda: RoundRobin(3),
]

BAD_CONTEXTS = [
    (np.ones(5), "dimension 5, expected 4"),
    (np.ones((2, 4)), "1-D"),
    (np.array([1.0, np.nan, 0.0, 0.0]), "non-finite"),
    (torch.tensor([1.0, float("inf"), 0.0, 0.0]), "non-finite"),
    (None, "needs a context"),
]


@pytest.mark.parametrize("factory", CONTEXTUAL)
@pytest.mark.parametrize("bad,message", BAD_CONTEXTS)
def test_bad_context(factory, bad, message):
    sel = _trained(factory)
    before = _snapshot(sel)
    for call in (sel.select, sel.scores, sel.probabilities):
        with pytest.raises(ValueError, match=message):
            call(bad)
    with pytest.raises(ValueError, match=message):
        sel.update(0, bad, 0.5)
    assert _snapshot(sel) == before


@pytest.mark.parametrize("factory", ALL)
@pytest.mark.parametrize("arm", [3, -1, 1.5, "0", True])
def test_bad_arm(factory, arm):
    sel = _trained(factory)
    before = _snapshot(sel)
    with pytest.raises(ValueError, match="arm"):
        sel.update(arm, np.ones(4), 0.5)
    with pytest.raises(ValueError, match="arm"):
        sel.remove_arm(arm)
    assert _snapshot(sel) == before


@pytest.mark.parametrize("factory", ALL)
@pytest.mark.parametrize("reward", [float("nan"), float("inf"), -float("inf"), "high", None])
def test_bad_reward(factory, reward):
    sel = _trained(factory)
    before = _snapshot(sel)
    with pytest.raises(ValueError, match="reward"):
        sel.update(0, np.ones(4), reward)
    assert _snapshot(sel) == before


@pytest.mark.parametrize("factory", ALL)
def test_removing_the_last_arm(factory):
    sel = _trained(factory)
    while sel.num_arms > 1:
        sel.remove_arm(sel.num_arms - 1)
    before = _snapshot(sel)
    with pytest.raises(ValueError, match="last arm"):
        sel.remove_arm(0)
    assert _snapshot(sel) == before


def test_fixed_arm_cannot_lose_its_arm():
    with pytest.raises(ValueError, match="always plays"):
        FixedArm(3, arm=1).remove_arm(1)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: LinUCB(0, 4), "num_arms"),
        (lambda: LinUCB(2, 0), "dim"),
        (lambda: LinUCB(2, 4, alpha=-1), "alpha"),
        (lambda: LinUCB(2, 4, l2_lambda=0), "l2_lambda"),
        (lambda: LinUCB(2, 4, gamma=0), "gamma"),
        (lambda: LinUCB(2, 4, gamma=1.5), "gamma"),
        (lambda: EXP3(2, gamma=2.0), "gamma"),
        (lambda: EpsilonGreedy(2, epsilon=-0.1), "epsilon"),
        (lambda: FixedArm(2, arm=2), "out of range"),
        (lambda: LinTS(2, 4, v=0), "v must"),
    ],
)
def test_bad_hyperparameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reused_context_buffer_does_not_corrupt_the_estimate(gamma):
    """The selector keeps its own copy: a caller may overwrite its buffer after update()."""
    from laser.bandits.reference import NaiveLinUCB

    ours, ref = LinUCB(2, 3, alpha=0.5, gamma=gamma), NaiveLinUCB(2, 3, alpha=0.5, gamma=gamma)
    buf, tbuf = np.zeros(3), torch.zeros(3, dtype=torch.float64)
    rng = np.random.default_rng(0)
    for t in range(40):
        buf[:] = rng.normal(size=3)
        tbuf[:] = torch.from_numpy(rng.normal(size=3))
        for x in (buf, tbuf):
            ours.update(t % 2, x, 1.0)
            ref.update(t % 2, (x.numpy() if isinstance(x, torch.Tensor) else x).copy(), 1.0)
    probe = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(ours.scores(probe), ref.scores(probe), rtol=1e-9)


def test_strided_and_reversed_contexts_are_accepted():
    bandit, x = LinUCB(2, 4), np.arange(8.0)
    bandit.update(0, x[::-2], 1.0)
    bandit.update(1, torch.arange(4.0).flip(0), 0.5)
    assert bandit.select(x[::2]) in (0, 1)


@pytest.mark.parametrize("factory", CONTEXTUAL)
@pytest.mark.parametrize(
    "x,reward", [(np.full(4, 1e160), 1.0), (np.full(4, 1e10), 1e300)], ids=["xx", "rx"]
)
def test_overflowing_inputs_are_rejected_before_any_change(factory, x, reward):
    sel = _trained(factory)
    before = _snapshot(sel)
    with pytest.raises(ValueError, match="too large"):
        sel.update(0, x, reward)
    assert _snapshot(sel) == before


@pytest.mark.parametrize(
    "bad",
    [
        {"a": 1},
        object(),
        np.ones(4, dtype=complex),
        torch.ones(4, dtype=torch.complex64),
        ["a", "b", "c", "d"],
    ],
)
def test_non_numeric_contexts_raise_value_error(bad):
    with pytest.raises(ValueError, match="context"):
        LinUCB(2, 4).select(bad)


def test_failed_checkpoint_load_leaves_everything_as_it_was():
    from laser.bandits import NormalizedBandit, PercentileNormalizer

    sel = NormalizedBandit(_trained(lambda: LinUCB(3, 4, seed=0)), PercentileNormalizer())
    sel.update(0, np.ones(4), 2.0)
    good = sel.state_dict()
    broken = {
        "bandit": _trained(lambda: LinUCB(3, 4, seed=1)).state_dict(),
        "normalizer": {"history": [1.0, float("nan")]},
    }
    before = _snapshot(sel)
    with pytest.raises(ValueError, match="finite"):
        sel.load_state_dict(broken)
    assert _snapshot(sel) == before
    sel.load_state_dict(good)


def test_running_zscore_rejects_non_positive_clip():
    from laser.bandits import RunningZScore

    with pytest.raises(ValueError, match="clip"):
        RunningZScore(clip=-1.0)
