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
