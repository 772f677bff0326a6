"""LinUCB against a plain reference, and the learning behaviour the issue asks for."""

import numpy as np
import pytest
import torch

from laser.bandits import LinUCB, RandomArm
from laser.bandits.envs import LinearEnv, run_bandit
from laser.bandits.reference import NaiveLinUCB


def _stream(seed, steps, dim):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, dim)), rng.normal(size=steps)


@pytest.mark.parametrize("gamma", [1.0, 0.95])
def test_inverse_equals_direct_inverse_after_many_updates(gamma):
    dim, steps = 12, 600
    bandit = LinUCB(3, dim, alpha=0.3, gamma=gamma)
    ref = NaiveLinUCB(3, dim, alpha=0.3, gamma=gamma)
    xs, rs = _stream(1, steps, dim)
    for t in range(steps):
        arm = t % 3
        bandit.update(arm, 3.0 * xs[t], rs[t])  # large contexts stress the rank-one updates
        ref.update(arm, 3.0 * xs[t], rs[t])
    est = bandit.estimator
    for k in range(3):
        np.testing.assert_allclose(est.design(k), ref.A[k], rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(est.inverse(k), np.linalg.inv(ref.A[k]), rtol=1e-8, atol=1e-10)
        # B is the Sherman-Morrison-maintained inverse of A - delta I (delta = 0 when gamma = 1)
        arm = est.arms[k]
        shifted = ref.A[k] - arm.delta * np.eye(dim)
        np.testing.assert_allclose(arm.B.numpy(), np.linalg.inv(shifted), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(bandit.theta(k), np.linalg.solve(ref.A[k], ref.b[k]), atol=1e-9)
    if gamma == 1.0:
        assert est.refreshes == 0  # no inverse was needed: pure rank-one updates
    else:
        assert est.refreshes < steps / 3  # amortised, not one per update


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_decisions_equal_reference_on_random_stream(gamma):
    dim, steps, arms = 6, 400, 4
    bandit = LinUCB(arms, dim, alpha=0.7, l2_lambda=2.0, gamma=gamma)
    ref = NaiveLinUCB(arms, dim, alpha=0.7, l2_lambda=2.0, gamma=gamma)
    env = LinearEnv(num_arms=arms, dim=dim, noise=0.3, seed=3)
    chosen = set()
    for _ in range(steps):
        x = env.context()
        np.testing.assert_allclose(bandit.scores(x), ref.scores(x), rtol=1e-9, atol=1e-10)
        arm = bandit.select(x)
        assert arm == ref.select(x)
        chosen.add(arm)
        r = env.reward(arm, x)
        bandit.update(arm, x, r)
        ref.update(arm, x, r)
    assert len(chosen) > 1  # the stream really exercised several arms


def test_theta_recovers_true_weights_on_noiseless_data():
    dim = 5
    true = np.array([[1.0, -2.0, 0.5, 0.0, 3.0], [-1.0, 0.0, 2.0, 1.0, -0.5]])
    bandit = LinUCB(2, dim, alpha=1.0, l2_lambda=1e-3)
    rng = np.random.default_rng(0)
    for t in range(300):
        x = rng.normal(size=dim)
        bandit.update(t % 2, x, float(true[t % 2] @ x))
    for k in range(2):
        np.testing.assert_allclose(bandit.theta(k), true[k], atol=1e-3)


def test_regret_far_below_random_and_sublinear():
    steps = 2000
    ucb = run_bandit(LinUCB(4, 8, alpha=0.5), LinearEnv(dim=8, seed=7), steps).cumsum()
    rnd = run_bandit(RandomArm(4, seed=0), LinearEnv(dim=8, seed=7), steps).cumsum()
    assert ucb[-1] < 0.1 * rnd[-1]
    # sublinear: the second thousand steps add far less regret than the first thousand
    assert ucb[-1] - ucb[999] < 0.5 * ucb[999]
    # random's regret is linear: its halves are about equal
    assert rnd[-1] - rnd[999] > 0.8 * rnd[999]


def test_discounted_linucb_recovers_after_the_best_arm_changes():
    steps, change = 2000, 1000

    def second_half_regret(gamma):
        env = LinearEnv(dim=5, noise=0.1, change_every=change, seed=11)
        return run_bandit(LinUCB(4, 5, alpha=0.5, gamma=gamma), env, steps)[change:].sum()

    stationary, discounted = second_half_regret(1.0), second_half_regret(0.97)
    assert discounted < 0.5 * stationary


def test_ties_lowest_index_unless_seeded():
    x = np.ones(3)
    assert LinUCB(4, 3).select(x) == 0  # all arms at the prior: a four-way tie
    np.testing.assert_array_equal(LinUCB(4, 3).probabilities(x), [1, 0, 0, 0])
    seeded = LinUCB(4, 3, seed=0)
    assert {seeded.select(x) for _ in range(50)} == {0, 1, 2, 3}
    np.testing.assert_allclose(seeded.probabilities(x), np.full(4, 0.25))


def test_accepts_torch_and_numpy_contexts_identically():
    a, b = LinUCB(3, 4, alpha=0.2), LinUCB(3, 4, alpha=0.2)
    xs, rs = _stream(5, 30, 4)
    for x, r in zip(xs, rs):
        xt = torch.from_numpy(x)
        assert a.select(x) == b.select(xt)
        a.update(a.select(x), x, r)
        b.update(b.select(xt), xt, torch.tensor(r))
    np.testing.assert_array_equal(a.scores(xs[0]), b.scores(torch.from_numpy(xs[0])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_matches_cpu():
    cpu, gpu = LinUCB(3, 64, alpha=0.5), LinUCB(3, 64, alpha=0.5, device="cuda")
    xs, rs = _stream(2, 200, 64)
    for x, r in zip(xs, rs):
        arm = cpu.select(x)
        assert gpu.select(x) == arm
        cpu.update(arm, x, r)
        gpu.update(arm, x, r)
    np.testing.assert_allclose(cpu.scores(xs[0]), gpu.scores(xs[0]), rtol=1e-9)


def test_long_idle_arm_with_large_contexts_keeps_the_residual_evidence():
    """After gamma^steps < 1e-12 the decay must still be exact, not a reset to the prior."""
    dim = 3
    ours = LinUCB(2, dim, alpha=1.0, gamma=0.5)
    ref = NaiveLinUCB(2, dim, alpha=1.0, gamma=0.5)
    big = np.array([1e6, 0.0, 0.0])
    for bandit in (ours, ref):
        bandit.update(0, big, 1e6)
        for _ in range(40):  # arm 0 idles: its evidence decays by 0.5**40 ~ 1e-12
            bandit.update(1, np.array([0.0, 1.0, 0.0]), 0.1)
    np.testing.assert_allclose(ours.estimator.design(0), ref.A[0], rtol=1e-9)
    probe = np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(ours.scores(probe), ref.scores(probe), rtol=1e-7)
