"""Every selector: probabilities, learning, checkpoints and a changing pool."""

import io
import math

import numpy as np
import pytest
import torch

from laser.bandits import (
    EXP3,
    UCB1,
    Bandit,
    EpsilonGreedy,
    FixedArm,
    LinElim,
    LinTS,
    LinUCB,
    RandomArm,
    RoundRobin,
    gaussian_argmax_probabilities,
)
from laser.bandits.envs import LinearEnv, run_bandit

DIM = 5

FACTORIES = {
    "linucb": lambda: LinUCB(3, DIM, alpha=0.5),
    "linucb_seeded_discounted": lambda: LinUCB(3, DIM, alpha=0.5, gamma=0.9, seed=4),
    "lints": lambda: LinTS(3, DIM, v=0.5, seed=1),
    "lints_auto": lambda: LinTS(3, DIM, v="auto", seed=1),
    "linelim": lambda: LinElim(3, DIM, alpha=0.5, seed=6),
    "lints_prior_reward": lambda: LinTS(3, DIM, v=0.5, seed=1, prior_reward=0.5),
    "linucb_prior_reward": lambda: LinUCB(3, DIM, alpha=0.5, prior_reward=0.5),
    "exp3": lambda: EXP3(3, gamma=0.2, seed=2),
    "egreedy": lambda: EpsilonGreedy(3, epsilon=0.2, seed=3),
    "egreedy_ctx": lambda: EpsilonGreedy(3, epsilon=0.2, dim=DIM, seed=3),
    "ucb1": lambda: UCB1(3, gamma=0.99),
    "fixed": lambda: FixedArm(3, arm=1),
    "random": lambda: RandomArm(3, seed=5),
    "roundrobin": lambda: RoundRobin(3),
}


def _play(selector, steps, seed=0):
    rng = np.random.default_rng(seed)
    arms = []
    for _ in range(steps):
        x = rng.normal(size=DIM)
        arm = selector.select(x)
        arms.append(arm)
        selector.update(arm, x, float(rng.uniform()))
    return arms


@pytest.mark.parametrize("name", FACTORIES)
def test_protocol_shapes_and_probabilities(name):
    sel = FACTORIES[name]()
    assert isinstance(sel, Bandit)
    _play(sel, 20)
    x = np.random.default_rng(9).normal(size=DIM)
    scores, probs = sel.scores(x), sel.probabilities(x)
    assert scores.shape == (3,) and probs.shape == (3,)
    assert np.all(probs >= 0) and math.isclose(probs.sum(), 1.0, abs_tol=1e-9)
    assert 0 <= sel.select(x) < sel.num_arms == 3


@pytest.mark.parametrize("name", FACTORIES)
def test_state_dict_round_trip_gives_same_future_decisions(name):
    sel = FACTORIES[name]()
    _play(sel, 40, seed=1)
    buffer = io.BytesIO()
    torch.save(sel.state_dict(), buffer)  # what a checkpoint does
    buffer.seek(0)
    restored = FACTORIES[name]()
    restored.load_state_dict(torch.load(buffer, weights_only=False))
    probe = np.random.default_rng(3).normal(size=DIM)
    if name != "lints":  # LinTS scores are fresh posterior draws
        np.testing.assert_array_equal(sel.scores(probe), restored.scores(probe))
    np.testing.assert_allclose(sel.probabilities(probe), restored.probabilities(probe), rtol=0)
    assert _play(sel, 60, seed=2) == _play(restored, 60, seed=2)


@pytest.mark.parametrize("name", FACTORIES)
def test_load_state_dict_rejects_another_selector(name):
    sel = FACTORIES[name]()
    other = RoundRobin(3) if name != "roundrobin" else FixedArm(3)
    with pytest.raises(ValueError, match="state_dict"):
        sel.load_state_dict(other.state_dict())


@pytest.mark.parametrize("name", FACTORIES)
def test_add_and_remove_arms_mid_stream(name):
    sel = FACTORIES[name]()
    _play(sel, 15)
    assert sel.add_arm() == 3 and sel.num_arms == 4
    arms = _play(sel, 40, seed=3)
    assert max(arms) <= 3
    if name not in ("fixed",):  # every other rule must come to try the new arm
        assert 3 in _play(sel, 200, seed=5) or 3 in arms
    sel.remove_arm(0 if name != "fixed" else 2)
    assert sel.num_arms == 3
    x = np.ones(DIM)
    assert sel.scores(x).shape == (3,) and sel.probabilities(x).shape == (3,)
    assert max(_play(sel, 30, seed=4)) <= 2


def test_removing_an_arm_shifts_later_arms_down():
    bandit = LinUCB(3, 2, alpha=0.0)
    x = np.array([1.0, 0.0])
    for arm, reward in [(0, 0.1), (1, 0.2), (2, 0.9)]:
        bandit.update(arm, x, reward)
    assert bandit.select(x) == 2
    bandit.remove_arm(0)
    assert bandit.select(x) == 1  # the old arm 2
    fixed = FixedArm(4, arm=2)
    fixed.remove_arm(0)
    assert fixed.select() == 1
    rr = RoundRobin(3)
    rr.update(1, None, 0.0)  # next turn: arm 2
    rr.remove_arm(0)
    assert rr.select() == 1  # still the old arm 2


def test_exp3_probabilities_are_exact_and_sum_to_one():
    exp3 = EXP3(3, gamma=0.3, seed=0)
    np.testing.assert_allclose(exp3.probabilities(), np.full(3, 1 / 3))
    exp3.update(0, None, 1.0)
    # hand computation: p0 = 1/3 so w0 = exp(0.3 * (1 / (1/3)) / 3) = e^0.3, w1 = w2 = 1
    w = np.array([math.exp(0.3), 1.0, 1.0])
    expected = 0.7 * w / w.sum() + 0.1
    np.testing.assert_allclose(exp3.probabilities(), expected, rtol=1e-12)
    for _ in range(500):
        arm = exp3.select()
        exp3.update(arm, None, float(arm == 2))
        assert math.isclose(exp3.probabilities().sum(), 1.0, rel_tol=1e-12)
    assert exp3.probabilities().argmax() == 2
    assert exp3.probabilities().min() >= 0.1 - 1e-12  # the gamma / K floor


def test_exp3_rejects_rewards_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        EXP3(2).update(0, None, 1.5)


def test_epsilon_greedy_probabilities_match_empirical_frequencies():
    sel = EpsilonGreedy(4, epsilon=0.3, seed=0)
    for arm, r in [(0, 0.1), (1, 0.8), (2, 0.8), (3, 0.0)]:
        sel.update(arm, None, r)
    probs = sel.probabilities()
    np.testing.assert_allclose(probs, [0.075, 0.425, 0.425, 0.075])
    counts = np.bincount([sel.select() for _ in range(20000)], minlength=4) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)


def test_gaussian_argmax_probabilities_share_point_mass_ties_equally():
    probs = gaussian_argmax_probabilities(np.array([0.0, 0.0, 0.0, -1.0]), np.array([0, 0, 0, 1.0]))
    gaussian_below = 0.8413447460685429  # Phi(1): the Gaussian arm falls below 0
    np.testing.assert_allclose(probs[:3], gaussian_below / 3, rtol=1e-9)
    np.testing.assert_allclose(probs[3], 1 - gaussian_below, rtol=1e-6)


def test_gaussian_argmax_probabilities_match_monte_carlo():
    means, stds = np.array([0.0, 0.3, -0.2, 0.25]), np.array([0.5, 0.1, 1.0, 0.0])
    probs = gaussian_argmax_probabilities(means, stds)
    draws = means + stds * np.random.default_rng(0).standard_normal((400000, 4))
    empirical = np.bincount(draws.argmax(axis=1), minlength=4) / 400000
    np.testing.assert_allclose(probs, empirical, atol=0.004)


def test_lints_probabilities_match_its_own_selection_frequencies():
    sel = LinTS(3, DIM, v=1.0, seed=0)
    _play(sel, 30)
    x = np.random.default_rng(1).normal(size=DIM)
    probs = sel.probabilities(x)
    counts = np.bincount([sel.select(x) for _ in range(20000)], minlength=3) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)


def test_lints_auto_estimates_the_feedback_noise_hand_computed_then_from_data():
    """v="auto": the scale starts at the prior's 1, follows the standardised one-step
    prediction errors (hand-computed on x = [1], l2_lambda 1), matches the batch quadratic
    y^T y - b^T A^-1 b of Bayesian linear regression, and settles at the true noise std."""
    sel, x = LinTS(2, 1, v="auto", seed=0), np.ones(1)
    assert sel.scale == 1.0
    sel.update(0, x, 0.6)  # predicted 0 with w^2 = 1/1: 0.36 / 2 = 0.18
    assert sel.scale == pytest.approx(math.sqrt((1.0 + 0.18) / 2.0))
    sel.update(0, x, 0.6)  # predicted 0.6 / 2 = 0.3 with w^2 = 1/2: 0.09 / 1.5 = 0.06
    assert sel.scale == pytest.approx(math.sqrt((1.0 + 0.18 + 0.06) / 3.0))
    # batch identity: y^T y - b^T A^-1 b = 0.72 - 1.2 * 1.2 / 3 = 0.24 = 0.18 + 0.06
    assert sel.noise.sq == pytest.approx(0.24)
    rng = np.random.default_rng(0)
    sel, env = LinTS(3, DIM, v="auto", seed=0), rng.normal(size=(3, DIM))
    ys = {k: [] for k in range(3)}
    for _ in range(3000):
        xt = rng.normal(size=DIM)
        arm = sel.select(xt)
        y = float(env[arm] @ xt + 0.3 * rng.normal())
        ys[arm].append(y)
        sel.update(arm, xt, y)
    batch = sum(
        np.dot(ys[k], ys[k]) - sel.estimator.theta(k) @ (sel.estimator.design(k) @ sel.theta(k))
        for k in range(3)
    )
    assert sel.noise.sq == pytest.approx(batch, rel=1e-6)
    assert sel.scale == pytest.approx(0.3, rel=0.05)


def test_lints_auto_checkpoint_restores_the_noise_scale_and_rejects_a_bad_one():
    sel = LinTS(3, DIM, v="auto", seed=2)
    _play(sel, 40)
    restored = LinTS(3, DIM, v="auto", seed=9)
    restored.load_state_dict(sel.state_dict())
    assert restored.scale == sel.scale != 1.0
    x = np.random.default_rng(3).normal(size=DIM)
    assert [restored.select(x) for _ in range(20)] == [sel.select(x) for _ in range(20)]
    bad = sel.state_dict()
    bad["state"]["noise"] = [-1.0, 3.0]
    with pytest.raises(ValueError, match="noise state"):
        restored.load_state_dict(bad)
    assert restored.scale == sel.scale  # nothing changed
    np.testing.assert_array_equal(restored.theta(0), sel.theta(0))
    with pytest.raises(ValueError, match="hyperparameters"):
        LinTS(3, DIM, v=0.5, seed=2).load_state_dict(sel.state_dict())
    with pytest.raises(ValueError, match="'auto'"):
        LinTS(3, DIM, v="fast")


def test_lints_with_a_noise_scale_far_below_the_noise_locks_in_where_auto_does_not():
    """Two arms, arm 1 better by 0.15, feedback noise 0.3, context-free (x = [1]). With v =
    0.1 (conf/bandit/lints.yaml's, a third of the noise) the posterior is overconfident and
    the first draws settle the arm for good: 8 of 20 seeds end on the worse arm. v="auto"
    estimates the noise (0.30) and ends on the better arm on every seed (>= 0.94)."""

    def final_share_of_best(v, seed):
        sel, rng, x = LinTS(2, 1, v=v, seed=seed), np.random.default_rng(seed), np.ones(1)
        arms = []
        for _ in range(600):
            arm = sel.select(x)
            arms.append(arm)
            sel.update(arm, x, float([0.5, 0.65][arm] + 0.3 * rng.normal()))
        return float(np.mean(np.array(arms[-200:]) == 1))

    narrow = [final_share_of_best(0.1, s) for s in range(20)]
    auto = [final_share_of_best("auto", s) for s in range(20)]
    assert min(auto) >= 0.9
    assert sum(v < 0.5 for v in narrow) >= 5  # locked on the worse arm


@pytest.mark.parametrize("make", [LinUCB, LinElim, LinTS], ids=["linucb", "linelim", "lints"])
def test_prior_reward_is_what_an_untried_arm_predicts_hand_computed(make):
    """m + x . theta with theta fitted to r - m: untried, every arm predicts m; after one
    update r at x = [1] (l2 1), m + (r - m) / 2; the width is the ridge's either way."""
    sel = make(2, 1, prior_reward=0.5)
    x = np.ones(1)
    mean, width = sel._predict(x)
    assert mean.tolist() == [0.5, 0.5] and width.tolist() == [1.0, 1.0]
    sel.update(1, x, 0.9)
    mean, width = sel._predict(x)
    assert mean == pytest.approx([0.5, 0.7]) and width == pytest.approx([1.0, 0.5**0.5])
    assert sel.theta(1) == pytest.approx([0.2])  # of the reward minus prior_reward
    plain = make(2, 1)
    plain.update(1, x, 0.9)
    assert plain._predict(x)[0] == pytest.approx([0.0, 0.45])


def test_prior_reward_is_checked_and_kept_in_the_checkpoint():
    with pytest.raises(ValueError, match="prior_reward"):
        LinTS(2, 1, prior_reward=float("nan"))
    state = LinTS(2, 1, prior_reward=0.5).state_dict()
    with pytest.raises(ValueError):
        LinTS(2, 1).load_state_dict(state)  # another model of the reward: refused
    LinTS(2, 1, prior_reward=0.5).load_state_dict(state)
    assert "prior_reward" not in LinTS(2, 1).state_dict()["hparams"]  # old checkpoints load


def test_lints_keeps_an_adequate_arm_for_good_unless_untried_arms_sit_at_the_midpoint():
    """Three arms worth 0.55, 0.6 and 0.9 on feedback in [0, 1] (noise 0.1), v = 0.1. With the
    ridge's prior at reward 0, an untried arm is drawn from N(0, 0.1^2): once any arm has
    earned 0.55 the untried ones are almost never drawn above it, and most seeds never find
    the best arm. With prior_reward 0.5 an untried arm is drawn above any arm below the
    median, and every seed ends on the best one."""

    def final_share_of_best(prior_reward, seed):
        sel = LinTS(3, 1, v=0.1, seed=seed, prior_reward=prior_reward)
        rng, x, arms = np.random.default_rng(seed), np.ones(1), []
        for _ in range(300):
            arm = sel.select(x)
            arms.append(arm)
            value = [0.55, 0.6, 0.9][arm] + 0.1 * rng.normal()
            sel.update(arm, x, float(np.clip(value, 0.0, 1.0)))
        return float(np.mean(np.array(arms[-100:]) == 2))

    at_zero = [final_share_of_best(0.0, s) for s in range(20)]
    at_midpoint = [final_share_of_best(0.5, s) for s in range(20)]
    assert sum(v < 0.5 for v in at_zero) >= 8  # locked on an arm worth 0.55 or 0.6
    assert min(at_midpoint) >= 0.9


def test_ucb1_tries_every_arm_then_prefers_the_best():
    sel = UCB1(3)
    order = []
    for _ in range(3):
        arm = sel.select()
        order.append(arm)
        sel.update(arm, None, [0.2, 0.9, 0.5][arm])
    assert order == [0, 1, 2]
    rng = np.random.default_rng(0)
    plays = []
    for _ in range(500):
        arm = sel.select()
        plays.append(arm)
        sel.update(arm, None, float(rng.uniform() < [0.2, 0.9, 0.5][arm]))
    assert np.bincount(plays, minlength=3).argmax() == 1


def test_round_robin_cycles_and_fixed_never_moves():
    rr, fixed = RoundRobin(3), FixedArm(3, arm=2)
    assert _play(rr, 7) == [0, 1, 2, 0, 1, 2, 0]
    assert set(_play(fixed, 10)) == {2}


@pytest.mark.parametrize(
    "factory",
    [lambda: LinTS(4, 8, v=0.3, seed=0), lambda: EpsilonGreedy(4, 0.05, dim=8, seed=0)],
)
def test_contextual_selectors_learn(factory):
    steps = 1500
    learned = run_bandit(factory(), LinearEnv(dim=8, seed=7), steps).sum()
    random = run_bandit(RandomArm(4, seed=0), LinearEnv(dim=8, seed=7), steps).sum()
    assert learned < 0.25 * random


def test_gaussian_argmax_grid_rule_matches_adaptive_quadrature():
    """The vectorised grid rule (all stds within a factor 50) against scipy quad."""
    from scipy import integrate
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(2, 7))
        means, stds = rng.normal(size=k), rng.uniform(0.05, 2.0, size=k)
        probs = gaussian_argmax_probabilities(means, stds)
        for a in range(k):

            def f(u, a=a, m=means, s=stds):
                v = m[a] + s[a] * u
                others = [norm.cdf((v - m[j]) / s[j]) for j in range(len(m)) if j != a]
                return norm.pdf(u) * np.prod(others)

            exact = integrate.quad(f, -12, 12, epsabs=1e-11, limit=200)[0]
            assert abs(probs[a] - exact) < 1e-7


def test_linelim_keeps_the_plausibly_best_arms_hand_computed():
    """x = [1]; arm 0 saw reward 1 100 times, arm 1 reward 0 100 times, arm 2 nothing.
    A_0 = A_1 = 1 + 100 = 101: theta_0 = 100/101 = 0.990, theta_1 = 0, width = 1/sqrt(101)
    = 0.0995; arm 2: theta 0, width 1. alpha 1: U = (1.0896, 0.0995, 1.0), L = (0.8906,
    -0.0995, -1.0); max L = 0.8906, so arm 1 is eliminated and arms 0 and 2 share the draws."""
    sel = LinElim(3, 1, alpha=1.0, seed=0)
    x = np.ones(1)
    for _ in range(100):
        sel.update(0, x, 1.0)
        sel.update(1, x, 0.0)
    np.testing.assert_allclose(sel.probabilities(x), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(sel.scores(x)[[0, 2]], [100 / 101 + 101**-0.5, 1.0])
    assert sel.scores(x)[1] == -np.inf
    picks = np.bincount([sel.select(x) for _ in range(2000)], minlength=3)
    assert picks[1] == 0 and abs(picks[0] / 2000 - 0.5) < 0.05
    # cold: every arm is plausible, uniform
    np.testing.assert_allclose(LinElim(3, 1).probabilities(x), [1 / 3] * 3)
    # two equally good arms keep sharing a context however long they are played
    tie = LinElim(3, 1, alpha=1.0, seed=0)
    for _ in range(500):
        tie.update(0, x, 1.0)
        tie.update(1, x, 1.0)
        tie.update(2, x, 0.0)
    np.testing.assert_allclose(tie.probabilities(x), [0.5, 0.5, 0.0])


def test_linelim_learns_to_drop_the_worse_arms():
    """Regret against random on a linear problem: elimination keeps only near-best arms."""
    steps = 1500
    learned = run_bandit(LinElim(4, 8, alpha=0.5, seed=0), LinearEnv(dim=8, seed=7), steps)
    random = run_bandit(RandomArm(4, seed=0), LinearEnv(dim=8, seed=7), steps)
    assert learned.sum() < 0.5 * random.sum()
    assert learned[-500:].sum() < 0.5 * learned[:500].sum()  # regret per step falls
