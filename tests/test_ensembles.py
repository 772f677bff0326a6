"""Ensembles on hand-made scores, with forward-pass accounting."""

import pytest
import torch

from laser.rewards import (
    AgreementEnsemble,
    FunctionReward,
    MeanEnsemble,
    MinEnsemble,
    RewardModelError,
    UncertaintyEnsemble,
)


def fixed(name, values):
    """An RM returning preset scores for the samples (in order)."""
    return FunctionReward(lambda prompts, completions, **kw: list(values[: len(prompts)]), name)


P = ["p", "p", "p"]
C = ["a", "b", "c"]


def test_mean_of_batch_standardised_scores_hand_computed():
    a, b = fixed("a", [1.0, 2.0, 3.0]), fixed("b", [10.0, 30.0, 20.0])
    ens = MeanEnsemble([a, b], standardize="batch")
    # z(a) = [-1.2247, 0, 1.2247]; z(b) = [-1.2247, 1.2247, 0]
    z = 1.224744871391589
    torch.testing.assert_close(ens.score(P, C), torch.tensor([-z, z / 2, z / 2]))


def test_standardisation_removes_scale_differences():
    a = fixed("a", [0.0, 1.0, 0.0])
    big = fixed("big", [0.0, 1000.0, 2000.0])  # would dominate a raw mean
    raw = MeanEnsemble([a, big], standardize="none").score(P, C)
    std = MeanEnsemble([a, big], standardize="batch").score(P, C)
    assert raw.argmax().item() == 2
    assert std.argmax().item() == 1  # sample b is best for a and middling for big


def test_running_standardisation_uses_history():
    ens = MeanEnsemble([fixed("a", [1.0, 3.0]), fixed("b", [2.0, 6.0])])
    first = ens.score(["p", "p"], ["x", "y"])
    torch.testing.assert_close(first, torch.tensor([-1.0, 1.0]))
    second = ens.score(["p"], ["x"])  # a=1 after history [1,3]; b=2 after [2,6]
    mean_a, std_a = 5 / 3, (((1 - 5 / 3) ** 2 * 2 + (3 - 5 / 3) ** 2) / 3) ** 0.5
    torch.testing.assert_close(second, torch.tensor([(1 - mean_a) / std_a]), rtol=1e-5, atol=1e-6)


def test_min_and_mean_minus_std():
    a, b = fixed("a", [1.0, -1.0, 0.0]), fixed("b", [-1.0, 1.0, 0.0])
    torch.testing.assert_close(
        MinEnsemble([a, b], standardize="none").score(P, C), torch.tensor([-1.0, -1.0, 0.0])
    )
    unc = UncertaintyEnsemble([a, b], lam=0.5, standardize="none").score(P, C)
    torch.testing.assert_close(unc, torch.tensor([-0.5, -0.5, 0.0]))  # mean 0, std 1 / 1 / 0


def test_agreement_majority_of_pairwise_preferences():
    a = fixed("a", [3.0, 2.0, 1.0])  # prefers x > y > z
    b = fixed("b", [3.0, 1.0, 2.0])  # x > z > y
    c = fixed("c", [1.0, 3.0, 2.0])  # y > z > x
    scores = AgreementEnsemble([a, b, c]).score(["p"] * 3, ["x", "y", "z"])
    # x beats y (2-1) and z (2-1): 1.0; y beats z (2-1): 0.5; z: 0
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.5, 0.0]))


def test_agreement_groups_by_prompt_and_splits_draws():
    a, b = fixed("a", [1.0, 0.0, 5.0]), fixed("b", [0.0, 1.0, 5.0])
    scores = AgreementEnsemble([a, b]).score(["p", "p", "q"], ["x", "y", "z"])
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.5, 0.5]))  # 1-1 draw; lone prompt


def test_ensembles_count_every_members_forward_passes():
    members = [fixed(n, [0.1, 0.2, 0.3]) for n in "abc"]
    ens = MeanEnsemble(members)
    ens.score(P, C)
    ens.score(P[:2], C[:2])
    assert ens.forward_samples == 3 * 5
    assert all(m.forward_samples == 5 for m in members)


def test_ensemble_errors():
    with pytest.raises(ValueError, match="at least 2"):
        MeanEnsemble([fixed("a", [1.0])])
    with pytest.raises(ValueError, match="distinct names"):
        MeanEnsemble([fixed("a", [1.0]), fixed("a", [2.0])])
    with pytest.raises(ValueError, match="standardize"):
        MeanEnsemble([fixed("a", [1.0]), fixed("b", [2.0])], standardize="zscore")
    bad = FunctionReward(lambda prompts, completions, **kw: [float("inf")] * len(prompts), "bad")
    with pytest.raises(RewardModelError, match="'bad'"):
        MeanEnsemble([fixed("a", [1.0, 2.0, 3.0]), bad]).score(P, C)


def test_ensemble_rejects_mismatched_batches_and_counts_partial_work():
    ens = MeanEnsemble([fixed("a", [1.0, 2.0]), fixed("b", [1.0, 2.0])])
    with pytest.raises(RewardModelError, match="0 prompts but 2 completions"):
        ens.score([], ["x", "y"])
    bad = FunctionReward(lambda prompts, completions, **kw: [float("nan")] * len(prompts), "bad")
    partial = MeanEnsemble([fixed("a", [1.0, 2.0]), bad])
    with pytest.raises(RewardModelError):
        partial.score(["p", "p"], ["x", "y"])
    assert partial.forward_samples == 4  # "a" ran and "bad" ran: both cost compute
