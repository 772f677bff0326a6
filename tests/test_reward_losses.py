"""RM losses against hand-computed values and torch.nn.functional references."""

import math

import pytest
import torch
import torch.nn.functional as F

from laser.rewards import bradley_terry_loss, segment_regression_loss


def test_bradley_terry_hand_computed():
    loss = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))), rel=1e-6)
    with_margin = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor([1.0]))
    assert with_margin.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))), rel=1e-6)


def test_bradley_terry_larger_gap_smaller_loss_and_reference():
    gaps = torch.tensor([0.1, 1.0, 3.0])
    per_pair = [bradley_terry_loss(g[None], torch.zeros(1)).item() for g in gaps]
    assert per_pair[0] > per_pair[1] > per_pair[2]
    r_c, r_r = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    reference = F.binary_cross_entropy_with_logits(r_c - r_r, torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(bradley_terry_loss(r_c, r_r), reference)


def test_bradley_terry_is_stable_at_large_gaps():
    loss = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert loss.item() == pytest.approx(400.0)  # log(sigmoid) would give inf


def test_bradley_terry_gradient_pushes_chosen_up_rejected_down():
    r_c = torch.tensor([0.3, -1.0], requires_grad=True)
    r_r = torch.tensor([0.5, 2.0], requires_grad=True)
    bradley_terry_loss(r_c, r_r).backward()
    assert (r_c.grad < 0).all() and (r_r.grad > 0).all()  # descent raises r_c, lowers r_r


def test_segment_regression_hand_computed_and_reference():
    pred = torch.tensor([[1.0, 2.0, 0.0], [0.5, 9.0, 9.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # masked squared errors: 0, 4, 0, 0.25 -> mean over 4 real segments
    assert segment_regression_loss(pred, target, mask).item() == pytest.approx(4.25 / 4)
    full = torch.randn(4, 5)
    torch.testing.assert_close(
        segment_regression_loss(full, torch.zeros(4, 5)), F.mse_loss(full, torch.zeros(4, 5))
    )


def test_segment_with_largest_error_contributes_most():
    pred = torch.tensor([[0.1, 3.0, 0.5]], requires_grad=True)
    segment_regression_loss(pred, torch.zeros(1, 3)).backward()
    assert pred.grad.abs().argmax().item() == 1


def test_loss_shape_errors():
    with pytest.raises(ValueError, match="differ"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="no segment"):
        segment_regression_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2))
