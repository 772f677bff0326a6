"""Policy losses against hand-computed numbers and reference loops; preference pairs."""

import math

import pytest
import torch

from laser.policy.losses import (
    a2c_actor_loss,
    dpo_loss,
    entropy,
    gae,
    kl_penalty,
    masked_whiten,
    nll_loss,
    ppo_clip_loss,
    value_loss,
)
from laser.policy.pairs import make_pairs

ONE = torch.ones(1, 4)


def test_ppo_clip_both_sides_hand_computed():
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipfrac, approx_kl = ppo_clip_loss(ratio.log(), torch.zeros(1, 4), adv, ONE, 0.2)
    # A>0, r=1.5: max(-1.5, -1.2) = -1.2 (clipped)   A>0, r=0.5: max(-0.5, -0.8) = -0.5
    # A<0, r=0.5: max(0.5, 0.8) = 0.8 (clipped)      A<0, r=1.5: max(1.5, 1.2) = 1.5
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8 + 1.5) / 4)
    assert clipfrac.item() == pytest.approx(0.5)
    expected_kl = sum((r - 1) - math.log(r) for r in (1.5, 0.5, 0.5, 1.5)) / 4
    assert approx_kl.item() == pytest.approx(expected_kl)


def test_ppo_clip_ignores_masked_tokens():
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    ratio = torch.tensor([[1.0, 1.0, 100.0, 100.0]])
    loss, _, _ = ppo_clip_loss(ratio.log(), torch.zeros(1, 4), torch.ones(1, 4), mask)
    assert loss.item() == pytest.approx(-1.0)


def test_a2c_sign_raises_logprob_of_positive_advantage():
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[2.0, -1.0]])
    loss = a2c_actor_loss(logprobs, adv, torch.ones(1, 2))
    assert loss.item() == pytest.approx((2.0 * 1.0 + -1.0 * 2.0) / 2)  # -(lp * A) mean
    loss.backward()
    assert logprobs.grad[0, 0] < 0 < logprobs.grad[0, 1]  # descent: up for A>0, down for A<0


def test_dpo_matches_formula_and_ipo():
    pi_c, pi_r = torch.tensor([-3.0, -1.0]), torch.tensor([-4.0, -0.5])
    ref_c, ref_r = torch.tensor([-3.5, -1.2]), torch.tensor([-3.0, -0.7])
    beta = 0.5
    h = (pi_c - ref_c) - (pi_r - ref_r)
    expected = torch.mean(-torch.log(torch.sigmoid(beta * h)))
    assert dpo_loss(pi_c, pi_r, ref_c, ref_r, beta).item() == pytest.approx(expected.item())
    first = -math.log(1 / (1 + math.exp(-0.5 * ((-3.0 + 3.5) - (-4.0 + 3.0)))))
    assert dpo_loss(pi_c[:1], pi_r[:1], ref_c[:1], ref_r[:1], beta).item() == pytest.approx(first)
    ipo = torch.mean((h - 1 / (2 * beta)) ** 2)
    assert dpo_loss(pi_c, pi_r, ref_c, ref_r, beta, "ipo").item() == pytest.approx(ipo.item())


def _gae_reference(rewards, values, mask, gamma, lam):
    B, T = rewards.shape
    adv = torch.zeros(B, T)
    for b in range(B):
        length = int(mask[b].sum())
        running = 0.0
        for t in reversed(range(length)):
            next_v = values[b, t + 1].item() if t + 1 < length else 0.0
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            running = delta + gamma * lam * running
            adv[b, t] = running
    return adv, (adv + values) * mask


def test_vectorised_gae_equals_reference_loop():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 1, 3, 7])
    mask = (torch.arange(7)[None, :] < lengths[:, None]).float()
    rewards, values = torch.randn(4, 7), torch.randn(4, 7)
    adv, ret = gae(rewards, values, mask, gamma=0.9, gae_lambda=0.8)
    ref_adv, ref_ret = _gae_reference(rewards, values * mask, mask, 0.9, 0.8)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(ret, ref_ret)


def test_gae_lambda_one_gamma_one_is_return_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.6]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    torch.testing.assert_close(ret, torch.ones(1, 3))
    torch.testing.assert_close(adv, 1.0 - values)


def test_kl_estimators_on_known_distributions():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    true_kl = float((p * (p / q).log()).sum())
    samples = torch.multinomial(
        p, 200000, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    lp, lq = p.log()[samples], q.log()[samples]
    k1, k3 = kl_penalty(lp, lq, "k1"), kl_penalty(lp, lq, "k3")
    assert k1.mean().item() == pytest.approx(true_kl, rel=0.03)
    assert k3.mean().item() == pytest.approx(true_kl, rel=0.03)
    assert (k3 >= 0).all()
    with pytest.raises(ValueError, match="k1"):
        kl_penalty(lp, lq, "k2")


def test_value_loss_clipped_hand_computed():
    v, old, ret = torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[0.0]])
    assert value_loss(v, old, ret, torch.ones(1, 1), clip_coef=0.2).item() == pytest.approx(0.5)
    v = torch.tensor([[0.5]])
    ret = torch.tensor([[1.0]])  # unclipped err 0.25, clipped (0.2 - 1)^2 = 0.64: max wins
    assert value_loss(v, old, ret, torch.ones(1, 1), clip_coef=0.2).item() == pytest.approx(0.32)
    assert value_loss(v, old, ret, torch.ones(1, 1), clip_coef=None).item() == pytest.approx(0.125)


def test_entropy_nll_and_whiten():
    logits = torch.zeros(2, 3, 7)
    assert entropy(logits, torch.ones(2, 3)).item() == pytest.approx(math.log(7))
    lp = torch.tensor([[-1.0, -3.0, -100.0]])
    assert nll_loss(lp, torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(2.0)
    w = masked_whiten(torch.tensor([[1.0, 2.0, 3.0, 50.0]]), torch.tensor([[1, 1, 1, 0]]))
    assert w[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6) and w[0, 3] == 0


def test_pairs_never_mix_prompts_and_are_strict():
    torch.manual_seed(0)
    group = torch.randint(0, 5, (40,))
    scores = torch.randint(0, 3, (40,)).float()  # many ties
    for scheme in ("laser", "best_vs_worst"):
        for c, r in make_pairs(group, scores, scheme, max_pairs=3):
            assert group[c] == group[r] and scores[c] > scores[r]


def test_pair_schemes_hand_made():
    group = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    scores = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.7, 1.0])
    assert make_pairs(group, scores, "laser", max_pairs=2) == [(1, 2), (1, 3)]
    assert make_pairs(group, scores, "laser", max_pairs=5) == [(1, 2), (1, 3), (1, 0)]
    assert make_pairs(group, scores, "best_vs_worst") == [(1, 0)]  # group 1 tied, 2 alone


def test_pairs_reject_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        make_pairs(torch.tensor([0, 0]), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="scheme"):
        make_pairs(torch.tensor([0, 0]), torch.tensor([1.0, 0.0]), "top2")
