"""audit_decay: audits fall on contexts new to the chosen RM (laser.consensus.AuditNovelty).
Hand-computed shares, the RM passes it saves, a new context or a newly chosen RM audited
again, state round trip, bad values."""

from types import SimpleNamespace

import pytest
import torch

from laser.consensus import AuditNovelty, ConsensusAgreement
from laser.feedback import ArmBatch
from laser.rewards import FunctionReward
from laser.spectral import PooledSpectralAgreement, SpectralAgreement

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_shares_hand_computed():
    """V_k = I, then each context is added after its share is taken: x^T V_k^-1 x is 1 for a
    unit context new to RM k and 1 / (1 + m) for one it was played at m times; a mix of two
    sums their parts. Another RM has its own V."""
    novelty = AuditNovelty(0.3)
    xs = torch.stack([E1, E1, E2, E1, (E1 + E2) / 2**0.5])
    # e1: min(0.25, 0.3 * 1); e1 again: 0.3 / 2; e2: new; e1 a third time: 0.3 / 3;
    # (e1 + e2) / sqrt 2 with V = diag(4, 2): 0.3 * (1/4 + 1/2) / 2
    expected = [0.25, 0.15, 0.25, 0.1, 0.3 * 0.375]
    assert novelty.shares(0.25, xs, "k") == pytest.approx(expected)
    assert novelty.shares(0.25, xs[:2], "j") == pytest.approx([0.25, 0.15])  # new to j


def counting(values):
    """An RM scoring each completion by ``values``; counts its forward samples."""
    return FunctionReward(lambda prompts, completions, **kw: [values[c] for c in completions])


ORDERS = {"me": [3.0, 2.0, 1.0], "p": [1.0, 0.5, 0.0], "q": [0.0, 1.0, 2.0]}


def pool():
    return {name: counting(dict(zip("abc", v))) for name, v in ORDERS.items()}


def batch(prompt: str, context: torch.Tensor | None) -> ArmBatch:
    """One prompt with three samples a, b, c, scored by ``me``."""
    return ArmBatch(
        prompts=[0],
        samples=[0, 1, 2],
        texts=[prompt] * 3,
        completions=["a", "b", "c"],
        group=torch.zeros(3, dtype=torch.long),
        rewards=torch.tensor(ORDERS["me"]),
        metadata={},
        contexts=None if context is None else context[None],
    )


def audits(signal, rms, prompts, context):
    """How many of ``prompts`` (one batch each, all at ``context``) were audited."""
    before = rms["p"].forward_samples
    for text in prompts:
        signal.after(rms["me"], None, None, batch(text, context))
    return (rms["p"].forward_samples - before) // 3


def test_a_settled_choice_is_audited_less_and_a_new_one_at_the_full_share():
    """400 prompts at one context, all to one RM: the fixed share audits about a quarter of
    them, the decay sum_m min(0.25, 1 / (1 + m)) ~ 1 + ln(400 / 4) ~ 5.6 in expectation; every
    peer pass is counted. A context new to that RM, or another RM chosen at the familiar
    context, then gets the full share again."""
    prompts = [f"prompt {i}" for i in range(400)]
    fixed_rms, decayed_rms = pool(), pool()
    fixed = audits(ConsensusAgreement(fixed_rms, audit=0.25), fixed_rms, prompts, E1)
    signal = ConsensusAgreement(decayed_rms, audit=0.25, audit_decay=1.0)
    decayed = audits(signal, decayed_rms, prompts, E1)
    assert 80 <= fixed <= 120
    assert 1 <= decayed <= 15
    assert decayed_rms["q"].forward_samples == 3 * decayed  # both peers pay each audit
    assert decayed_rms["me"].forward_samples == 0  # the chosen RM is not scored again
    novelty = signal.peers.novelty
    assert novelty.shares(0.25, E1[None], "me")[0] == pytest.approx(1 / 401)
    assert novelty.shares(0.25, E2[None], "me") == [0.25]  # a new context
    assert novelty.shares(0.25, E1[None], "p") == [0.25]  # a newly chosen RM


@pytest.mark.parametrize("make", [ConsensusAgreement, SpectralAgreement, PooledSpectralAgreement])
def test_a_restored_signal_audits_the_same_prompts(make):
    """Every audited signal checkpoints the contexts it has seen: a copy restored from its
    state_dict audits exactly the prompts the original goes on to audit."""
    rms = pool() | {"r": counting({"a": 2.0, "b": 1.5, "c": 1.0})}
    prompts = [f"prompt {i}" for i in range(60)]
    original = make(rms, audit=0.5, audit_decay=2.0)
    audits(original, rms, prompts[:30], E1)
    restored = make(rms, audit=0.5, audit_decay=2.0)
    restored.load_state_dict(original.state_dict())
    assert restored.stateful and original.stateful
    picked = []
    for signal in (original, restored):
        picked.append([audits(signal, rms, [text], E1) for text in prompts[30:]])
    assert picked[0] == picked[1] and 0 < sum(picked[0]) < 30
    fresh = make(rms, audit=0.5, audit_decay=2.0)  # without the state: more audits
    assert sum(audits(fresh, rms, [t], E1) for t in prompts[30:]) > sum(picked[0])


def test_without_decay_nothing_is_kept_and_several_processes_are_allowed():
    from laser.bandits import LinUCB, PercentileNormalizer
    from laser.granularity import PerPrompt
    from laser.routing import Router

    rms = pool()
    plain = SpectralAgreement(rms, audit=0.25)
    assert not plain.stateful and plain.state_dict() == {}
    many = SimpleNamespace(enabled=True)
    Router(rms, LinUCB(3, 2), PercentileNormalizer(), PerPrompt(), plain, dist=many)
    decayed = SpectralAgreement(rms, audit=0.25, audit_decay=1.0)
    with pytest.raises(ValueError, match="audit_decay's record"):
        Router(rms, LinUCB(3, 2), PercentileNormalizer(), PerPrompt(), decayed, dist=many)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "often"])
def test_bad_decay_values_are_named(bad):
    with pytest.raises(ValueError, match="audit_decay"):
        ConsensusAgreement(pool(), audit_decay=bad)


def test_a_batch_without_contexts_is_refused_with_decay():
    rms = pool()
    signal = ConsensusAgreement(rms, audit=1.0, audit_decay=1.0)
    with pytest.raises(ValueError, match="audit_decay needs each prompt's context"):
        signal.after(rms["me"], None, None, batch("x", None))
    with pytest.raises(ValueError, match="3-d context, earlier ones were 2-d"):
        signal.after(rms["me"], None, None, batch("x", E1))
        signal.after(rms["me"], None, None, batch("y", torch.ones(3)))
