"""spectral_pooled's ``refit``: the linear selector refitted each step on the CURRENT agreement
model's values at every audited context. The batched rank-one fit against the one-matrix fit,
the percentile rescaling and the ridge refit by hand, the signal's kept contexts and their
state, the router's refit against a hand-computed ridge solution, the case it exists for (a
model that changed its mind), and the combinations it refuses."""

import numpy as np
import pytest
import torch

from laser.bandits import LinTS, LinUCB, PercentileNormalizer, RunningZScore
from laser.bandits.baselines import RandomArm
from laser.bandits.normalizers import percentile_rescale
from laser.bandits.ridge import RidgeArms
from laser.feedback import ArmBatch, _Signal
from laser.granularity import PerBatch, PerPrompt
from laser.rewards import FunctionReward
from laser.routing import Decision, Router, Samples, Scores
from laser.spectral import (
    PooledSpectralAgreement,
    agreement_matrix,
    rank_one_fit,
    rank_one_fit_batch,
)

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_batched_fit_equals_the_one_matrix_fit():
    """Exact rank-one matrices (one whose c sums below 0 before the sign rule), sampled
    agreement matrices, and an all-zero one (no agreement: the start is kept)."""
    c = torch.tensor([0.9, 0.8, 0.4, -0.4], dtype=torch.float64)
    exact = torch.outer(c, c).fill_diagonal_(1.0)
    neg = torch.tensor([0.2, -0.9, -0.8, 0.1], dtype=torch.float64)
    flipped = torch.outer(neg, neg).fill_diagonal_(1.0)
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.95, 0.9, 0.6, 0.4])
    sampled = [
        agreement_matrix(torch.where(torch.rand(4, n, generator=g) < p[:, None], 1.0, -1.0))
        for n in (6, 28, 28, 500)
    ]
    ms = torch.stack([exact, flipped, torch.zeros(4, 4, dtype=torch.float64), *sampled])
    batch = rank_one_fit_batch(ms)
    for i, m in enumerate(ms):
        torch.testing.assert_close(batch[i], rank_one_fit(m), atol=1e-9, rtol=0)
    torch.testing.assert_close(batch[0], c, atol=1e-9, rtol=0)
    torch.testing.assert_close(batch[1], -neg, atol=1e-6, rtol=0)  # sum(c) >= 0; 100 sweeps
    assert rank_one_fit_batch(torch.zeros(0, 3, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="at least 3"):
        rank_one_fit_batch(torch.zeros(2, 2, 2))


def test_percentile_rescale_hand_computed():
    """[0, 1, 2, 3, 4]: numpy's linear percentiles 20 and 80 are 0.8 and 3.2; each value is
    clipped to them and mapped to [0, 1]. A constant set has no scale: 0.5."""
    out = percentile_rescale(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 20, 80)
    np.testing.assert_allclose(out, [0.0, 0.2 / 2.4, 0.5, 2.2 / 2.4, 1.0])
    np.testing.assert_allclose(percentile_rescale(np.ones(3), 20, 80), [0.5] * 3)
    assert percentile_rescale(np.zeros(0), 20, 80).shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        percentile_rescale(np.array([0.0, np.nan]), 20, 80)
    normalizer = PercentileNormalizer()
    np.testing.assert_allclose(normalizer.rescale_all(np.arange(5.0)), out)
    assert list(normalizer.history) == []  # the history is not touched


def test_ridge_refit_is_the_ridge_solution_and_keeps_a_prior_mean():
    """l2 = 2, X = [[1, 0], [0, 1], [1, 1]], r = [1, 2, 3]: A = [[4, 1], [1, 4]], b = [4, 5],
    theta = A^-1 b = [11, 16] / 15; with the prior mean [1, 1], b = 2 [1, 1] + [4, 5] and
    theta = [17, 22] / 15. The same as three updates on a fresh estimator; old data are gone."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r = np.array([1.0, 2.0, 3.0])
    ridge = RidgeArms(2, 2, l2_lambda=2.0)
    ridge.update(0, np.array([5.0, 5.0]), 9.0)  # replaced by the refit
    ridge.set_prior_mean(1, [1.0, 1.0])
    ridge.refit(0, X, r)
    ridge.refit(1, X, r)
    np.testing.assert_allclose(ridge.theta(0), np.array([11.0, 16.0]) / 15)
    np.testing.assert_allclose(ridge.theta(1), np.array([17.0, 22.0]) / 15)
    np.testing.assert_allclose(ridge.inverse(0), np.linalg.inv([[4.0, 1.0], [1.0, 4.0]]))
    sequential = RidgeArms(1, 2, l2_lambda=2.0)
    for x, v in zip(X, r):
        sequential.update(0, x, v)
    np.testing.assert_allclose(sequential.theta(0), ridge.theta(0))
    loaded = RidgeArms(2, 2, l2_lambda=2.0)
    loaded.load_state_dict(ridge.state_dict())
    loaded.refit(1, X, r)  # the prior mean travelled with the checkpoint
    np.testing.assert_allclose(loaded.theta(1), np.array([17.0, 22.0]) / 15)
    with pytest.raises(ValueError, match="gamma"):
        RidgeArms(2, 2, gamma=0.9).refit(0, X, r)
    with pytest.raises(ValueError, match=r"X \(n, 2\)"):
        ridge.refit(0, X[:, :1], r)


def test_selector_refit_offsets_the_prior_reward_and_refuses_what_it_cannot_do():
    X, r = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([0.9, 0.7])
    ts = LinTS(3, 2, v=0.1, prior_reward=0.5)
    ts.refit(2, X, r)  # fitted to r - 0.5: theta_0 = (0.4 + 0.2) / (1 + 2) = 0.2
    np.testing.assert_allclose(ts.theta(2), [0.2, 0.0])
    with pytest.raises(ValueError, match="finite"):
        ts.refit(0, X, np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="rewards"):
        ts.refit(0, X, r[:1])
    with pytest.raises(ValueError, match="v to a number"):
        LinTS(3, 2, v="auto").check_refit()
    with pytest.raises(ValueError, match="gamma"):
        LinUCB(3, 2, gamma=0.9).refit(0, X, r)


def fixed(values):
    return FunctionReward(lambda prompts, completions, **kw: [values[c] for c in completions])


GOLD = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
ORDERS = {  # scores of samples a..h (gold order a > b > ... > h)
    "expert": GOLD,
    "expert2": [g + 0.1 * (i % 2) for i, g in enumerate(GOLD)],
    "generalist": [GOLD[i ^ 1] for i in range(8)],  # swaps 4 adjacent pairs
    "believer": [-g for g in GOLD],
}


def pool():
    return {name: fixed(dict(zip("abcdefgh", v))) for name, v in ORDERS.items()}


def batch(rms_name: str, context: torch.Tensor) -> ArmBatch:
    return ArmBatch(
        prompts=[0],
        samples=list(range(8)),
        texts=["q"] * 8,
        completions=list("abcdefgh"),
        group=torch.zeros(8, dtype=torch.long),
        rewards=torch.tensor(ORDERS[rms_name]),
        metadata={},
        contexts=context[None],
    )


def test_the_signal_keeps_its_audits_and_grades_them_with_the_current_model():
    rms = pool()
    signal = PooledSpectralAgreement(rms, audit=1.0, all_arms=True, refit=True)
    assert signal.current_values() is None
    signal.after(rms["expert"], None, None, batch("expert", E1))
    signal.after(rms["generalist"], None, None, batch("generalist", E2))
    xs, values, seen = signal.current_values()
    assert xs.tolist() == [[1.0, 0.0], [0.0, 1.0]] and seen.all()
    for x, row in zip(xs, values):  # the model as it is now, at each audited context
        torch.testing.assert_close(row, rank_one_fit(signal.model.predict(x)), atol=1e-9, rtol=0)
    assert signal.names == list(ORDERS)
    fresh = PooledSpectralAgreement(rms, audit=1.0, all_arms=True, refit=True)
    fresh.load_state_dict(signal.state_dict())
    for a, b in zip(fresh.current_values(), signal.current_values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="refit=True, this run has refit=False"):
        PooledSpectralAgreement(rms, all_arms=True).load_state_dict(signal.state_dict())
    plain = PooledSpectralAgreement(rms, all_arms=True).state_dict()
    with pytest.raises(ValueError, match="refit=False, this run has refit=True"):
        fresh.load_state_dict(plain)
    with pytest.raises(ValueError, match="needs all_arms=true"):
        PooledSpectralAgreement(rms, refit=True)


class ChangesItsMind(_Signal):
    """A refit signal whose model, at the one audited context e1, first rates RM a best and,
    after more evidence, RM b: what happened on world 9 (README, "Why world 9 fails")."""

    name = "mind"
    all_arms = True
    refit = True
    names = ["a", "b", "c"]

    def __init__(self):
        self.audits: list[torch.Tensor] = []
        self.now = torch.tensor([0.9, 0.1, 0.0], dtype=torch.float64)

    def after(self, rm, stats, before, batch):
        self.audits.append(batch.contexts[0].double())
        return {0: float(self.now[self.names.index(self._chosen)])}

    def current_values(self):
        n = len(self.audits)
        return torch.stack(self.audits), self.now.repeat(n, 1), torch.ones(n, 3, dtype=bool)


def step(router, signal, arm):
    signal._chosen = "abc"[arm]
    decision = Decision({arm: [0]}, {arm: [0]}, {arm: "abc"[arm]}, [1.0], E1[None], None,
                        torch.tensor([0]))  # fmt: skip
    samples = Samples(["q"], ["a"], {})
    return router.feedback(decision, Scores(torch.zeros(1), set()), None, {arm: 0}, samples, 1)


def test_the_router_refits_on_current_values_and_follows_a_model_that_changed_its_mind():
    """Three steps at e1: the model rates a best, then b. Each arm's theta is the ridge fit
    of the rescaled current values at the audited contexts, (I + n e1 e1^T)^-1 n v e1, with
    v the value rescaled among all 3n of them (percentiles 20 and 80)."""
    rms = {n: fixed({"a": 0.0}) for n in "abc"}
    signal = ChangesItsMind()
    router = Router(rms, LinTS(3, 2, v=0.1), PercentileNormalizer(), PerPrompt(), signal)
    step(router, signal, 0)
    step(router, signal, 0)
    signal.now = torch.tensor([0.2, 0.8, 0.0], dtype=torch.float64)  # more audits: b is best
    step(router, signal, 1)
    n = 3
    scaled = percentile_rescale(np.repeat(signal.now.numpy()[None], n, 0).ravel(), 20, 80)
    for k in range(3):
        expected = n * scaled[k] / (1 + n)  # e1 weight: n v / (1 + n)
        np.testing.assert_allclose(router.selector.theta(k), [expected, 0.0], atol=1e-12)
    means = [router.selector.theta(k)[0] for k in range(3)]
    assert means[1] > means[0] > means[2]  # b first now; averaging past values kept a first

    stale = LinTS(3, 2, v=0.1)  # the same three steps without refit: a still first
    plain = ChangesItsMind()
    plain.refit = False
    router = Router(rms, stale, PercentileNormalizer(), PerPrompt(), plain)
    step(router, plain, 0)
    step(router, plain, 0)
    plain.now = torch.tensor([0.2, 0.8, 0.0], dtype=torch.float64)
    step(router, plain, 1)
    assert stale.theta(0)[0] > stale.theta(1)[0]


def test_router_refuses_refit_it_cannot_do():
    rms = {n: fixed({"a": 0.0}) for n in "abc"}
    cases = [
        (RandomArm(3), PercentileNormalizer(), PerPrompt(), "bandit=lints"),
        (LinTS(3, 2, gamma=0.9), PercentileNormalizer(), PerPrompt(), "gamma"),
        (LinTS(3, 2, v="auto"), PercentileNormalizer(), PerPrompt(), "v to a number"),
        (LinTS(3, 2), RunningZScore(), PerPrompt(), "percentile"),
        (LinTS(3, 2), PercentileNormalizer(), PerBatch(), "loop.selection=prompt"),
    ]
    for selector, normalizer, granularity, message in cases:
        with pytest.raises(ValueError, match=message):
            Router(rms, selector, normalizer, granularity, ChangesItsMind())


def run_steps(router, rms, steps):
    """Route one prompt per step at e1 or e2 and credit it through the real signal."""
    for t in steps:
        x = (E1 if t % 2 else E2)[None]
        decision = router.decide(x, torch.zeros(8, dtype=torch.long))
        arm = next(iter(decision.prompts))
        name = decision.names[arm]
        samples = Samples(["q"] * 8, list("abcdefgh"), {})
        scores = Scores(torch.tensor(ORDERS[name]), set())
        decision.samples = {arm: list(range(8))}
        router.feedback(decision, scores, None, {arm: 0}, samples, t)


def test_refit_resumes_exactly():
    """Four steps in one go, or two, a checkpoint, and two more in a new router: the same
    selector data and the same signal state (the kept audits travel with the checkpoint)."""

    def make():
        rms = pool()
        signal = PooledSpectralAgreement(rms, audit=1.0, all_arms=True, refit=True)
        selector = LinTS(4, 2, v=0.1, seed=3)
        return Router(rms, selector, PercentileNormalizer(), PerPrompt(), signal), rms

    full, rms = make()
    run_steps(full, rms, range(4))
    cut, rms_cut = make()
    run_steps(cut, rms_cut, range(2))
    resumed, rms_new = make()
    resumed.load_state_dict(cut.state_dict())
    run_steps(resumed, rms_new, range(2, 4))
    a, b = full.selector.state_dict(), resumed.selector.state_dict()
    for arm_a, arm_b in zip(a["state"]["arms"], b["state"]["arms"]):
        assert torch.equal(arm_a["A"], arm_b["A"]) and torch.equal(arm_a["b"], arm_b["b"])
    assert len(full.signal.contexts) == len(resumed.signal.contexts) == 4
    assert full.selector.estimator.arms[0].updates == 4  # every arm has every audit


def test_routing_diag_reads_the_model_and_the_selector_per_domain():
    """experiments.routing_diag on a hand-made run: two domains at contexts e1 and e2; its
    model column is the rank-one fit of M(x), its selector column the selector's mean."""
    from types import SimpleNamespace

    from experiments.routing_diag import markdown, per_domain

    rms = pool()
    signal = PooledSpectralAgreement(rms, audit=1.0, all_arms=True, refit=True)
    full = Router(rms, LinTS(4, 2, v=0.1, seed=3), PercentileNormalizer(), PerPrompt(), signal)
    run_steps(full, rms, range(4))
    examples = [SimpleNamespace(domain=d) for d in ("one", "two", "one")]
    contexts = {"one": E1, "two": E2}
    table = per_domain(
        signal, full.selector, lambda es: torch.stack([contexts[e.domain] for e in es]), examples
    )
    assert list(table) == ["one", "two"]
    for domain, x in contexts.items():
        model = rank_one_fit(signal.model.predict(x)).tolist()
        assert table[domain]["model"] == pytest.approx(model, abs=1e-9)
        mean = full.selector.estimator.predict(x.double().numpy())[0]
        assert table[domain]["selector"] == pytest.approx(mean.tolist(), abs=1e-12)
    assert markdown(signal.names, table).count("\n") == 3
