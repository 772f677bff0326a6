"""The robustness experiments' degraded RMs: noise of the stated size, a sign flip from the
stated step on, the wrapped RM's name and cost kept."""

import pytest
import torch

from laser.rewards import FunctionReward
from laser.rewards.wrappers import NoisyReward, TurnsBad


def ramp(prompts, completions, **kw):
    return [float(len(c)) for c in completions]


def test_noise_has_the_stated_spread_and_keeps_name_and_cost():
    rm = FunctionReward(ramp, "ramp")
    noisy = NoisyReward(rm, sigma=0.5, seed=0)
    completions = ["a" * (i % 7) for i in range(4000)]
    clean = torch.tensor(ramp(None, completions))
    out = noisy.score(["p"] * 4000, completions)
    residual = out - clean
    # noise std = sigma x the scores' own spread (std of 0..6 repeated: 2.0)
    assert residual.std().item() == pytest.approx(0.5 * clean.std(unbiased=False).item(), rel=0.05)
    assert abs(residual.mean().item()) < 0.05
    assert noisy.name == "ramp" and noisy.forward_samples == 4000
    assert torch.equal(NoisyReward(rm, 0.0).score(["p"], ["abc"]), torch.tensor([3.0]))
    with pytest.raises(ValueError, match="sigma"):
        NoisyReward(rm, sigma=-1.0)


def test_turns_bad_negates_from_the_step_on():
    bad = TurnsBad(FunctionReward(ramp, "ramp"), after_step=5)
    out = bad.score(["p"] * 3, ["a", "bb", "ccc"], step=[4, 5, 6])
    assert out.tolist() == [1.0, 2.0, -3.0]
    with pytest.raises(ValueError, match="step"):
        bad.score(["p"], ["a"])
