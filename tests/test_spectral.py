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


def test_the_fit_orders_an_expert_a_noisy_generalist_and_a_believer():
    """Eight samples, gold order a > b > ... > h. Two experts order every pair right; the
    generalist swaps 4 adjacent pairs (24 of 28 right); the believer orders every pair the
    wrong way. Graded from the same fit of the pool: expert > generalist > 0 > believer."""
    gold = [float(g) for g in range(8, 0, -1)]
    samples = "abcdefgh"
    swapped = [gold[1], gold[0], gold[3], gold[2], gold[5], gold[4], gold[7], gold[6]]
    orders = {
        "expert": gold,
        "expert2": [g + 0.1 * (i % 2) for i, g in enumerate(gold)],
        "generalist": swapped,
        "believer": [-g for g in gold],
    }
    rms = {name: fixed(dict(zip(samples, v))) for name, v in orders.items()}
    spectral = SpectralAgreement(rms, audit=1.0)
    value = {
        name: spectral.after(rms[name], None, None, batch_of(orders[name]))[0]
        for name in ("expert", "generalist", "believer")
    }
    assert value["expert"] > value["generalist"] > 0 > value["believer"]
