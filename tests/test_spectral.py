"""Spectral agreement: the rank-one fit against hand-computed numbers, the signal on a
hand-made pool, and the case it exists for (a consensus reference misranking the RMs)."""

import pytest
import torch

from laser.feedback import ArmBatch
from laser.rewards import FunctionReward
from laser.spectral import SpectralAgreement, agreement_matrix, pair_signs, rank_one_fit


def test_pair_signs_and_agreement_matrix_hand_computed():
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 0.0]])
    signs = pair_signs(scores, [0, 1, 2])  # pairs (0,1), (0,2), (1,2)
    assert signs.tolist() == [[1, 1, 1], [-1, -1, -1], [0, 1, 1]]
    m = agreement_matrix(signs)
    assert m[0, 1] == -1.0 and m[0, 2] == pytest.approx(2 / 3) and m[1, 2] == pytest.approx(-2 / 3)


def test_rank_one_fit_recovers_reliabilities():
    c = torch.tensor([0.9, 0.8, 0.4, -0.4], dtype=torch.float64)
    m = torch.outer(c, c)
    m.fill_diagonal_(1.0)  # the diagonal (always 1) carries no information and is ignored
    assert torch.allclose(rank_one_fit(m), c, atol=1e-9)
    assert torch.allclose(rank_one_fit(m.flip(0).flip(1)), c.flip(0), atol=1e-9)
    # simulated pair orders: RM k right with probability p_k, independently
    p = torch.tensor([0.95, 0.9, 0.7, 0.3])
    g = torch.Generator().manual_seed(0)
    signs = torch.where(torch.rand(4, 20_000, generator=g) < p[:, None], 1.0, -1.0)
    assert torch.allclose(rank_one_fit(agreement_matrix(signs)).float(), 2 * p - 1, atol=0.02)
    with pytest.raises(ValueError, match="at least 3"):
        rank_one_fit(torch.eye(2))


def fixed(values):
    return FunctionReward(lambda prompts, completions, **kw: [values[c] for c in completions])


def batch_of(rewards):
    n = len(rewards)
    return ArmBatch(
        prompts=[0],
        samples=list(range(n)),
        texts=["q"] * n,
        completions=list("abcdefgh"[:n]),
        group=torch.zeros(n, dtype=torch.long),
        rewards=torch.tensor(rewards),
        metadata={},
    )


def test_the_signal_grades_the_chosen_rm_from_the_pools_agreements_and_counts_the_audit():
    right = {c: float(-i) for i, c in enumerate("abcd")}  # a > b > c > d
    rms = {"me": fixed(right), "p": fixed(right), "q": fixed(right), "r": fixed(right)}
    signal = SpectralAgreement(rms, audit=1.0)
    # four RMs that agree on every pair: M = 1 off the diagonal, c = 1 for each
    assert signal.after(rms["me"], None, None, batch_of(list(right.values()))) == {
        0: pytest.approx(1.0)
    }
    assert rms["p"].forward_samples == 4 and rms["me"].forward_samples == 0
    wrong = [-v for v in right.values()]  # the chosen RM orders every pair the other way
    assert signal.after(rms["me"], None, None, batch_of(wrong))[0] == pytest.approx(-1.0, abs=0.4)
    tied = [0.0] * 4  # the chosen RM scores every sample alike: nothing to grade
    assert signal.after(rms["me"], None, None, batch_of(tied)) == {}
    # a pool of two: the rank-one model is not identified; agreement with the other RM
    two = SpectralAgreement({"me": rms["me"], "p": rms["p"]}, audit=1.0)
    assert two.after(rms["me"], None, None, batch_of(wrong)) == {0: 0.0}


def _orders():
    """Eight samples' scores, gold order a > b > ... > h: two experts, a generalist that
    swaps 4 adjacent pairs and a believer that orders every pair the wrong way."""
    gold = [float(g) for g in range(8, 0, -1)]
    swapped = [gold[1], gold[0], gold[3], gold[2], gold[5], gold[4], gold[7], gold[6]]
    return {
        "expert": gold,
        "expert2": [g + 0.1 * (i % 2) for i, g in enumerate(gold)],
        "generalist": swapped,
        "believer": [-g for g in gold],
    }


def test_the_fit_orders_an_expert_a_noisy_generalist_and_a_believer():
    """Eight samples, gold order a > b > ... > h. Two experts order every pair right; the
    generalist swaps 4 adjacent pairs (24 of 28 right); the believer orders every pair the
    wrong way. Graded from the same fit of the pool: expert > generalist > 0 > believer."""
    orders = _orders()
    rms = {name: fixed(dict(zip("abcdefgh", v))) for name, v in orders.items()}
    spectral = SpectralAgreement(rms, audit=1.0)
    value = {
        name: spectral.after(rms[name], None, None, batch_of(orders[name]))[0]
        for name in ("expert", "generalist", "believer")
    }
    assert value["expert"] > value["generalist"] > 0 > value["believer"]


def test_the_pooled_agreement_model_is_a_ridge_fit_per_entry():
    """ContextAgreement on one-hot contexts: n observations of M at e1 predict n / (n + l2) M
    there and nothing at e2; the state round-trips and a changed pool starts afresh."""
    from laser.spectral import ContextAgreement

    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    m1 = torch.tensor([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    model = ContextAgreement(["a", "b", "c"], l2=1.0)
    assert torch.equal(model.predict(e1), torch.zeros(3, 3, dtype=torch.float64))
    for _ in range(3):
        model.update(e1, m1)
    assert torch.allclose(model.predict(e1), 0.75 * m1.double())
    assert torch.allclose(model.predict(e2), torch.zeros(3, 3, dtype=torch.float64))
    model.update(e2, -m1)
    assert torch.allclose(model.predict(e2), -0.5 * m1.double())
    assert torch.allclose(model.predict(e1), 0.75 * m1.double())
    copy = ContextAgreement(["a", "b", "c"])
    copy.load_state_dict(model.state_dict())
    assert torch.equal(copy.predict(e1), model.predict(e1))
    other = ContextAgreement(["a", "b", "d"])
    other.load_state_dict(model.state_dict())  # another pool: not loaded
    assert torch.equal(other.predict(e1), torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="l2"):
        ContextAgreement(["a"], l2=0.0)


def test_a_forgetting_agreement_model_follows_the_latest_audits():
    """gamma = 0.5 at one context e1 (A's e1 entry a, B's b; the prior decays back in):
    a = 0.5 * 1 + 0.5 + 1 = 2, b = m1 -> M = m1 / 2; then a = 0.5 * 2 + 0.5 + 1 = 2.5,
    b = 0.5 m1 + m1 -> 0.6 m1; then an audit of -m1: a = 2.75, b = 0.75 m1 - m1 ->
    -m1 / 11, where the model that forgets nothing still says (m1 + m1 - m1) / 4 = m1 / 4."""
    from laser.spectral import ContextAgreement

    e1 = torch.tensor([1.0, 0.0])
    m1 = torch.tensor([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]], dtype=torch.float64)
    names = ["a", "b", "c"]
    fading, keeping = ContextAgreement(names, gamma=0.5), ContextAgreement(names)
    for m, expected in ((m1, 0.5), (m1, 0.6), (-m1, -1 / 11)):
        fading.update(e1, m)
        keeping.update(e1, m)
        assert torch.allclose(fading.predict(e1), expected * m1)
    assert torch.allclose(keeping.predict(e1), m1 / 4)
    copy = ContextAgreement(names, gamma=0.5)
    copy.load_state_dict(fading.state_dict())
    assert torch.equal(copy.predict(e1), fading.predict(e1))
    with pytest.raises(ValueError, match="gamma=0.5, this run's gamma=1.0"):
        keeping.load_state_dict(fading.state_dict())
    with pytest.raises(ValueError, match="gamma"):
        ContextAgreement(["a"], gamma=0.0)


def test_the_pooled_signal_grades_from_the_pooled_matrix():
    """Four RMs that agree on every pair: each audit adds M = 1 off the diagonal at the
    prompt's context, so after n audits M(x) = n / (n + 1) and c = sqrt(n / (n + 1)) (0.707,
    then 0.816), where the per-prompt fit says 1 at once. Without contexts: the per-prompt
    fit. Router state carries the model; two processes are refused."""
    from types import SimpleNamespace

    from laser.bandits import LinUCB, PercentileNormalizer
    from laser.granularity import PerPrompt
    from laser.routing import Router
    from laser.spectral import PooledSpectralAgreement

    right = {c: float(-i) for i, c in enumerate("abcd")}
    rms = {"me": fixed(right), "p": fixed(right), "q": fixed(right), "r": fixed(right)}
    signal = PooledSpectralAgreement(rms, audit=1.0)
    batch = batch_of(list(right.values()))
    batch.contexts = torch.tensor([[1.0, 0.0]])
    assert signal.after(rms["me"], None, None, batch)[0] == pytest.approx(0.5**0.5, abs=1e-6)
    assert signal.after(rms["p"], None, None, batch)[0] == pytest.approx((2 / 3) ** 0.5, abs=1e-6)
    batch.contexts = None
    spent = sum(r.forward_samples for r in rms.values())
    assert signal.after(rms["me"], None, None, batch) == {0: pytest.approx(1.0)}
    assert sum(r.forward_samples for r in rms.values()) - spent == 3 * 4  # one audit, not two
    router = Router(rms, LinUCB(4, 2), PercentileNormalizer(), PerPrompt(), signal)
    fresh = PooledSpectralAgreement(rms, audit=1.0)
    Router(rms, LinUCB(4, 2), PercentileNormalizer(), PerPrompt(), fresh).load_state_dict(
        router.state_dict()
    )
    x = torch.tensor([1.0, 0.0])
    assert torch.equal(fresh.model.predict(x), signal.model.predict(x))
    with pytest.raises(ValueError, match="one process"):
        Router(
            rms,
            LinUCB(4, 2),
            PercentileNormalizer(),
            PerPrompt(),
            signal,
            dist=SimpleNamespace(enabled=True),
        )


@pytest.mark.parametrize("pooled", [False, True], ids=["per-prompt", "pooled"])
def test_all_arms_grades_every_rm_of_the_audit_from_the_same_fit(pooled):
    """With all_arms the chosen RM's value is unchanged and every other working RM gets the
    value it would have earned had it been chosen (same audit, same fit); an RM that ties
    every pair gets none, as a chosen one does not; no extra RM pass is spent."""
    from laser.feedback import Counterfactual
    from laser.spectral import PooledSpectralAgreement

    orders = _orders() | {"tied": [0.0] * 8}  # scores every sample alike: no order to grade
    rms = {name: fixed(dict(zip("abcdefgh", v))) for name, v in orders.items()}
    make = PooledSpectralAgreement if pooled else SpectralAgreement

    def graded(name, all_arms):
        batch = batch_of(orders[name])
        batch.contexts = torch.tensor([[1.0, 0.0]])  # the pooled fit's context
        return make(rms, audit=1.0, all_arms=all_arms).after(rms[name], None, None, batch)

    plain = {
        name: graded(name, False)[0] for name in ("expert", "expert2", "generalist", "believer")
    }
    spent = sum(r.forward_samples for r in rms.values())
    full = graded("generalist", True)
    assert sum(r.forward_samples for r in rms.values()) - spent == 4 * 8  # the same audit
    assert isinstance(full, Counterfactual)
    assert full.chosen == {0: pytest.approx(plain["generalist"], abs=1e-9)}
    assert set(full.others) == {"expert", "expert2", "believer", "tied"}
    assert full.others["tied"] == {}
    for name in ("expert", "expert2", "believer"):
        assert full.others[name] == {0: pytest.approx(plain[name], abs=1e-6)}
    assert full.others["expert"][0] > full.chosen[0] > 0 > full.others["believer"][0]


def test_a_counterfactual_updates_the_arms_not_chosen_and_stays_out_of_the_decision_log(
    tmp_path,
):
    """Router side: the chosen arm's values are credited and logged as before; then every
    other arm of the pool learns its values at the same prompts' contexts, unlogged; an RM
    that left the pool is skipped; per batch, each other arm gets its mean at the batch
    context. The normaliser sees the raw values in that order."""
    import json

    from laser.bandits import LinUCB, PercentileNormalizer
    from laser.feedback import Counterfactual, _Signal
    from laser.granularity import PerBatch, PerPrompt
    from laser.logging import DecisionWriter
    from laser.routing import Decision, Router, Samples, Scores

    class Full(_Signal):
        name = "full"
        all_arms = True

        def after(self, rm, stats, before, batch):
            others = {"b": {0: 0.9, 1: 0.9}, "c": {0: 0.1, 1: 0.3}, "gone": {0: 1.0}}
            return Counterfactual({p: 0.5 for p in batch.prompts}, others)

    class Recording(LinUCB):
        def update(self, arm, x, reward):
            self.seen.append((arm, [float(v) for v in x]))
            super().update(arm, x, reward)

    rms = {n: fixed({c: 0.0 for c in "ab"}) for n in "abc"}
    contexts = torch.eye(2)
    samples = Samples(["q", "q"], ["a", "b"], {})
    expected = {
        "PerPrompt": ([0.5, 0.5, 0.9, 0.9, 0.1, 0.3], [0, 0, 1, 1, 2, 2], 2),
        "PerBatch": ([0.5, 0.9, 0.2], [0, 1, 2], 1),
    }
    for granularity in (PerPrompt(), PerBatch()):
        kind = type(granularity).__name__
        log = tmp_path / f"{kind}.jsonl"
        selector = Recording(3, 2)
        selector.seen = []
        router = Router(
            rms, selector, PercentileNormalizer(), granularity, Full(),
            decisions=DecisionWriter(log),
        )  # fmt: skip
        batch_x = contexts.mean(0) if kind == "PerBatch" else None
        decision = Decision(
            {0: [0, 1]}, {0: [0, 1]}, {0: "a"}, [1.0, 1.0], contexts, batch_x, torch.tensor([0, 1])
        )
        scores = Scores(torch.zeros(2), set())
        result = router.feedback(decision, scores, None, {0: None}, samples, 1)
        history, arms, logged = expected[kind]
        assert list(router.normalizer.history) == pytest.approx(history)
        assert [arm for arm, _ in selector.seen] == arms
        if kind == "PerPrompt":  # each prompt's own context, for every arm
            assert [x for _, x in selector.seen] == [[1, 0], [0, 1]] * 3
        else:
            assert all(x == [0.5, 0.5] for _, x in selector.seen)
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(rows) == logged and {r["rm"] for r in rows} == {"a"}  # decisions only
        assert result.counterfactual == len(arms) - logged and len(result.given) == logged
        assert result.metrics()["bandit/counterfactual_updates"] == len(arms) - logged
