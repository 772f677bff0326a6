"""Bandit feedback signals on hand-made batches, and per-prompt credit in the loop: with
per-prompt selection each RM is credited with its own prompts' outcome only."""

import pytest
import torch

from laser.feedback import ArmBatch, GoldAgreement, NegLoss
from laser.policy.rollout import Rollout
from laser.policy.stats import StepStats


class Checker:
    """Gold: a completion is right when it equals the metadata's answer."""

    def evaluate(self, prompt, completion, metadata):
        return float(completion == metadata["answer"])


class FakeLoop:
    task = Checker()


def rollout(completions, group, answers):
    n = len(completions)
    z = torch.zeros(n, 1)
    return Rollout(
        ["p"] * n,
        completions,
        torch.tensor(group),
        z,
        z,
        z,
        z,
        None,
        z,
        metadata={"answer": answers},
    )


def stats(train_loss=1.0, group_loss=None):
    return StepStats(
        None, None, None, None, None, None, None, 0.0, 0.0, train_loss, group_loss=group_loss
    )


def test_gold_agreement_hand_computed():
    # prompt 0: gold a=1, b=0, c=0; rewards 2, 1, 3 -> (a,b) agrees, (a,c) does not: 1/2
    # prompt 1: every sample wrong -> no information, left out
    # prompt 2: gold x=1, y=0 with tied rewards -> half credit
    ro = rollout(
        ["a", "b", "c", "q", "r", "x", "y"],
        [0, 0, 0, 1, 1, 2, 2],
        ["a", "a", "a", "z", "z", "x", "x"],
    )
    rewards = torch.tensor([2.0, 1.0, 3.0, 0.0, 1.0, 5.0, 5.0])
    batch = ArmBatch([0, 1, 2], list(range(7)), ro, rewards)
    assert GoldAgreement().after(FakeLoop(), "rm", stats(), None, batch) == {0: 0.5, 2: 0.5}
    # only prompt 0's samples are this RM's
    batch = ArmBatch([0], [0, 1, 2], ro, torch.tensor([3.0, 1.0, 2.0, 0, 0, 0, 0]))
    assert GoldAgreement().after(FakeLoop(), "rm", stats(), None, batch) == {0: 1.0}


def test_neg_loss_per_prompt_and_batch():
    ro = rollout(["a"] * 4, [0, 0, 1, 1], ["a"] * 4)
    batch = ArmBatch([0, 1], [0, 1, 2, 3], ro, torch.zeros(4))
    assert NegLoss().after(None, "rm", stats(2.0, {0: 1.5, 1: 2.5}), None, batch) == {
        0: -1.5,
        1: -2.5,
    }
    only_1 = ArmBatch([1], [2, 3], ro, torch.zeros(4))
    assert NegLoss().after(None, "rm", stats(2.0, {0: 1.5}), None, only_1) is None
    assert NegLoss().after(None, "rm", stats(2.0, None), None, batch) == -2.0  # PPO
    assert NegLoss().after(None, "rm", stats(None), None, batch) is None  # no pair at all


class Identity:
    floor = -1.0

    def normalize(self, raw):
        return raw


class PerPrompt:
    """Feedback = the prompt's id, so each selector update shows whose outcome it carries."""

    name = "per_prompt"

    def before(self, loop, rm_name):
        return None

    def after(self, loop, rm_name, stats, before, batch):
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

    from laser.logging import NullLogger
    from laser.train import build_loop

    cfg = cfg_for(
        tmp_path / "cache", tmp_path, "bandit=random", "policy=dpo", f"loop.selection={selection}"
    )
    loop = build_loop(cfg, NullLogger())
    loop.selector = Recording(loop.selector)
    loop.feedback, loop.normalizer = PerPrompt(), Identity()
    loop.step()
    if selection == "prompt":
        # prompt p was routed to selected[p] and its update carries exactly its own value
        expected = sorted((arm, float(p)) for p, arm in enumerate(loop.selector.selected))
        assert sorted(loop.selector.updates) == expected
    else:
        arm = loop.selector.selected[0]
        mean = sum(range(cfg.loop.batch_size)) / cfg.loop.batch_size
        assert loop.selector.updates == [(arm, pytest.approx(mean))]
