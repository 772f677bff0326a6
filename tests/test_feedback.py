"""Bandit feedback signals on hand-made batches, and per-prompt credit in the loop: with
per-prompt selection each RM is credited with its own prompts' outcome only."""

import pytest
import torch

from laser.feedback import ArmBatch, GoldAgreement, NegLoss, task_checker
from laser.policy.stats import StepStats


class Checker:
    """Gold: a completion is right when it equals the metadata's answer."""

    def evaluate(self, prompt, completion, metadata):
        return float(completion == metadata["answer"])


def arm_batch(prompts, samples, completions, group, answers, rewards):
    n = len(completions)
    return ArmBatch(
        prompts, samples, ["p"] * n, completions, torch.tensor(group), rewards, {"answer": answers}
    )


def stats(train_loss=1.0, group_loss=None):
    return StepStats(
        None, None, None, None, None, None, None, 0.0, 0.0, train_loss, group_loss=group_loss
    )


def test_gold_agreement_hand_computed():
    # prompt 0: gold a=1, b=0, c=0; rewards 2, 1, 3 -> (a,b) agrees, (a,c) does not: 1/2
    # prompt 1: every sample wrong -> no information, left out
    # prompt 2: gold x=1, y=0 with tied rewards -> half credit
    samples = (
        ["a", "b", "c", "q", "r", "x", "y"],
        [0, 0, 0, 1, 1, 2, 2],
        ["a", "a", "a", "z", "z", "x", "x"],
    )
    rewards = torch.tensor([2.0, 1.0, 3.0, 0.0, 1.0, 5.0, 5.0])
    batch = arm_batch([0, 1, 2], list(range(7)), *samples, rewards)
    signal = GoldAgreement(task_checker(Checker()))
    assert signal.after(None, stats(), None, batch) == {0: 0.5, 2: 0.5}
    # only prompt 0's samples are this RM's
    batch = arm_batch([0], [0, 1, 2], *samples, torch.tensor([3.0, 1.0, 2.0, 0, 0, 0, 0]))
    assert signal.after(None, stats(), None, batch) == {0: 1.0}


def test_neg_loss_per_prompt_and_batch():
    samples = (["a"] * 4, [0, 0, 1, 1], ["a"] * 4, torch.zeros(4))
    batch = arm_batch([0, 1], [0, 1, 2, 3], *samples)
    assert NegLoss().after(None, stats(2.0, {0: 1.5, 1: 2.5}), None, batch) == {
        0: -1.5,
        1: -2.5,
    }
    only_1 = arm_batch([1], [2, 3], *samples)
    assert NegLoss().after(None, stats(2.0, {0: 1.5}), None, only_1) is None
    assert NegLoss().after(None, stats(2.0, None), None, batch) == -2.0  # PPO
    assert NegLoss().after(None, stats(None), None, batch) is None  # no pair at all


class Identity:
    floor = -1.0

    def normalize(self, raw):
        return raw

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class PerPrompt:
    """Feedback = the prompt's id, so each selector update shows whose outcome it carries."""

    name = "per_prompt"

    def before(self, rm):
        return None

    def after(self, rm, stats, before, batch):
        return {p: float(p) for p in batch.prompts}


class Recording:
    def __init__(self, inner):
        self.inner, self.selected, self.updates = inner, [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def select(self, x):
        arm = self.inner.select(x)
        self.selected.append(arm)
        return arm

    def update(self, arm, x, reward):
        self.updates.append((arm, reward))
        self.inner.update(arm, x, reward)


@pytest.mark.parametrize("selection", ["prompt", "batch"])
def test_each_rm_is_credited_with_its_own_prompts(tmp_path, selection):
    from test_loop import cfg_for

    from laser.bandits import NormalizedBandit
    from laser.build import build_loop
    from laser.logging import NullLogger

    cfg = cfg_for(
        tmp_path / "cache", tmp_path, "bandit=random", "policy=dpo", f"loop.selection={selection}"
    )
    loop = build_loop(cfg, NullLogger())
    recording = Recording(loop.router.selector)
    loop.router.bandit = NormalizedBandit(recording, Identity())
    loop.router.signal = PerPrompt()
    loop.step()
    if selection == "prompt":
        # prompt p was routed to selected[p] and its update carries exactly its own value
        expected = sorted((arm, float(p)) for p, arm in enumerate(recording.selected))
        assert sorted(recording.updates) == expected
    else:
        arm = recording.selected[0]
        mean = sum(range(cfg.loop.batch_size)) / cfg.loop.batch_size
        assert recording.updates == [(arm, pytest.approx(mean))]


def test_majority_agreement_hand_computed():
    from laser.feedback import MajorityAgreement

    # prompt 0: answers x, x, y -> majority x (2/3); rewards 3, 1, 2: pairs (0,2) agree,
    #   (1,2) disagree -> 1/2
    # prompt 1: every sample says z -> no contrast, left out
    # prompt 2: a, b, c, d (no answer holds half) -> left out
    # prompt 3: majority "" (empty answers) -> left out
    completions = ["x", "x", "y", "z", "z", "a", "b", "c", "d", "", "", "q"]
    group = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    rewards = torch.tensor([3.0, 1.0, 2.0, 0, 0, 0, 0, 0, 0, 1.0, 2.0, 3.0])
    batch = arm_batch([0, 1, 2, 3], list(range(12)), completions, group, [""] * 12, rewards)
    assert MajorityAgreement().after(None, stats(), None, batch) == {0: 0.5}
    # the answer is the first line, stripped: " x\\nmore" counts as "x"
    batch = arm_batch([0], [0, 1, 2], [" x\nmore", "x", "y"], [0, 0, 0], [""] * 3, rewards[:3])
    assert MajorityAgreement().after(None, stats(), None, batch) == {0: 0.5}
    with pytest.raises(ValueError, match="min_share"):
        MajorityAgreement(min_share=0.0)


def test_consensus_agreement_hand_computed_and_counts_the_peers_passes():
    from laser.consensus import ConsensusAgreement
    from laser.rewards import FunctionReward

    def fixed(values):
        return FunctionReward(lambda prompts, completions, **kw: [values[c] for c in completions])

    # one prompt, samples a, b, c; the chosen RM ranks a > b > c
    chosen = fixed({"a": 3.0, "b": 2.0, "c": 1.0})
    agree = fixed({"a": 1.0, "b": 0.5, "c": 0.0})  # same order
    invert = fixed({"a": 0.0, "b": 1.0, "c": 2.0})  # reverse order
    rewards = torch.tensor([3.0, 2.0, 1.0])
    batch = arm_batch([0], [0, 1, 2], ["a", "b", "c"], [0, 0, 0], [""] * 3, rewards)
    rms = {"me": chosen, "p": agree, "q": invert}
    both = ConsensusAgreement(rms, audit=1.0, reference="others")
    # consensus = mean of the peers' z-scores: agree z = (+1.22, 0, -1.22), invert the
    # opposite -> all 0: no pair differs, no information
    assert both.after(chosen, stats(), None, batch) == {}
    one = ConsensusAgreement({"me": chosen, "p": agree}, audit=1.0, reference="others")
    assert one.after(chosen, stats(), None, batch) == {0: 1.0}
    against = ConsensusAgreement({"me": chosen, "q": invert}, audit=1.0, reference="others")
    assert against.after(chosen, stats(), None, batch) == {0: 0.0}
    assert agree.forward_samples == 3 + 3 and invert.forward_samples == 3 + 3  # counted
    assert chosen.forward_samples == 0  # the chosen RM is not scored again
    # audit share 0+: no prompt audited, no peer pass
    none = ConsensusAgreement({"me": chosen, "p": agree}, audit=1e-12)
    assert none.after(chosen, stats(), None, batch) == {} and agree.forward_samples == 6
    for share in (0.0, 1.5):  # the audit (shared with spectral_agreement) refuses a bad share
        with pytest.raises(ValueError, match="audit must lie in"):
            ConsensusAgreement(rms, audit=share)


def test_consensus_against_the_whole_pool_grades_every_arm_by_one_reference():
    """reference=pool: the chosen RM's own z-scores join the peers', so every arm of a prompt
    is graded against the same consensus (hand-computed), unlike the leave-one-out one."""
    from laser.consensus import ConsensusAgreement, consensus_reference
    from laser.rewards import FunctionReward

    def fixed(values):
        return FunctionReward(lambda prompts, completions, **kw: [values[c] for c in completions])

    values = {
        "me": {"a": 3.0, "b": 2.0, "c": 1.0},  # z = (+1.22, 0, -1.22)
        "p": {"a": 1.0, "b": 0.5, "c": 0.0},  # the same order, another scale: the same z
        "q": {"a": 0.0, "b": 1.0, "c": 2.0},  # the reverse order: z = (-1.22, 0, +1.22)
    }
    rms = {name: fixed(v) for name, v in values.items()}
    signal = ConsensusAgreement(rms, audit=1.0)  # reference=pool is the default
    # pool consensus = (z_me + z_p + z_q) / 3 = z_me / 3 = (+0.41, 0, -0.41), whoever is graded
    for name, expected in (("me", 1.0), ("p", 1.0), ("q", 0.0)):
        rewards = torch.tensor([values[name][c] for c in "abc"])
        batch = arm_batch([0], [0, 1, 2], ["a", "b", "c"], [0, 0, 0], [""] * 3, rewards)
        assert signal.after(rms[name], stats(), None, batch) == {0: expected}
    z = torch.tensor([1.0, 0.0, -1.0]) * (1.5**0.5)
    ref = consensus_reference([z, z, -z], {0: [0, 1, 2]})
    assert torch.allclose(ref, z / 3, atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        ConsensusAgreement(rms, reference="everyone")
    with pytest.raises(ValueError, match="at least one"):
        consensus_reference([], {0: [0]})


def test_margin_agreement_weights_each_pair_by_the_reference_margin():
    from laser.feedback import margin_agreement, pairwise_agreement

    ref = torch.tensor([2.0, 1.0, 0.0, 5.0, 5.0])  # prompt 0: samples 0-2; prompt 1: flat
    groups = {0: [0, 1, 2], 1: [3, 4]}
    rewards = torch.tensor([3.0, 1.0, 2.0, 0.0, 1.0])  # a > c > b
    # pairs (a,b) margin 1 agree, (a,c) margin 2 agree, (b,c) margin 1 disagree: 3/4;
    # unweighted 2/3; the flat prompt carries no information
    assert margin_agreement(rewards, ref, groups) == {0: pytest.approx(0.75)}
    assert pairwise_agreement(rewards, ref, groups) == {0: pytest.approx(2 / 3)}
    tied = torch.tensor([3.0, 1.0, 1.0, 0.0, 0.0])  # b == c: that pair counts half
    assert margin_agreement(tied, ref, groups) == {0: pytest.approx(3.5 / 4)}
    with pytest.raises(ValueError, match="weight"):
        from laser.consensus import ConsensusAgreement

        ConsensusAgreement({}, weight="square")


def test_configs_naming_the_old_consensus_target_still_build():
    """ConsensusAgreement moved to laser.consensus; a config written before names
    laser.feedback.ConsensusAgreement and must build the same class."""
    from hydra.utils import instantiate

    import laser.feedback
    from laser.consensus import ConsensusAgreement

    assert laser.feedback.ConsensusAgreement is ConsensusAgreement
    from laser.feedback import audited, consensus_reference, group_zscores  # noqa: F401

    node = {"_target_": "laser.feedback.ConsensusAgreement", "pool": {}, "audit": 0.5}
    assert isinstance(instantiate(node), ConsensusAgreement)
    with pytest.raises(AttributeError, match="NoSuchSignal"):
        laser.feedback.NoSuchSignal  # noqa: B018
