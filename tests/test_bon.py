"""Best-of-n selection without training (laser/bon.py, laser-bon): the pick is each prompt's
argmax (ties to the first sample); the paper's signal is minus the picked sample's per-token
NLL; each RM scores only the prompts routed to it and the cost counts every pass; LASER
learns to route from gold-free signals on hand-made candidates (beats random, leaves the RM
that believes a domain's shortcut); laser-bon runs end to end on the tiny world."""

import json
import os
import random
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from laser.bandits import LinUCB, PercentileNormalizer, RandomArm, RunningZScore
from laser.bandits.baselines import FixedArm
from laser.bon import (
    Candidates,
    ConsensusPick,
    GoldPick,
    any_correct,
    bon_step,
    check_signal,
    first_sample,
    majority_vote,
    pick_best,
    select,
    selection_stats,
)
from laser.cli import CONF_DIR
from laser.consensus import ConsensusAgreement
from laser.features import DomainOneHot
from laser.feedback import (
    GoldAgreement,
    NegLoss,
    NoFeedback,
    RewardGain,
    task_checker,
)
from laser.granularity import PerPrompt
from laser.policy.losses import sequence_nll
from laser.rewards import FunctionReward
from laser.routing import Router
from laser.tasks.base import Example
from laser.tasks.shortcuts import shortcut
from laser.tasks.synthetic import SyntheticSuite

TASK = SyntheticSuite(("reverse", "max"))


def router(pool, selector, signal=None, normalizer=None):
    normalizer = normalizer or PercentileNormalizer()
    return Router(pool, selector, normalizer, PerPrompt(), signal or NoFeedback())


# ------------------------------------------------------------------------- selection math
def test_pick_best_takes_each_prompts_argmax_and_the_first_of_ties():
    rewards = torch.tensor([0.1, 0.9, 0.3, 2.0, 2.0, -1.0, -5.0, -5.0, -5.0])
    group = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert pick_best(rewards, group, 3).tolist() == [1, 0, 0]  # ties: the earliest sample


def test_pick_best_refuses_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        pick_best(torch.tensor([0.0, float("nan")]), torch.tensor([0, 0]), 1)
    with pytest.raises(ValueError, match="differ"):
        pick_best(torch.tensor([0.0, 1.0]), torch.tensor([0]), 1)
    with pytest.raises(ValueError, match="no sample"):
        pick_best(torch.tensor([0.0, 1.0]), torch.tensor([0, 0]), 2)


def test_the_paper_signal_is_minus_the_picked_samples_per_token_nll():
    # two prompts x two samples, responses of up to 3 tokens (mask 0 = after EOS)
    logprobs = torch.tensor(
        [[-1.0, -3.0, 0.0], [-0.5, -0.5, -0.5], [-2.0, 0.0, 0.0], [-0.1, -0.3, -0.2]]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    nll = sequence_nll(logprobs, mask)
    assert nll.tolist() == pytest.approx([2.0, 0.5, 2.0, 0.2])
    examples = [Example("rev ab=", "ba", "reverse"), Example("max 19=", "9", "max")]
    candidates = Candidates(examples, ["x", "ba", "9", "1"], nll, torch.tensor([0, 1, 1, 0.0]), 2)
    # an RM that prefers the first sample of prompt 0 and the second of prompt 1
    rm = FunctionReward(lambda prompts, completions, **_: [1.0, 0.0, 0.0, 1.0], "rm")
    r = router({"rm": rm}, FixedArm(1, 0), NegLoss())
    samples, group, batch_nll = candidates.batch(range(2), step=1)
    out = bon_step(r, samples, group, batch_nll, torch.zeros(2, 1), step=1)
    assert out.picks.tolist() == [0, 1]
    assert out.feedback.raw == pytest.approx([-2.0, -0.2])  # minus each pick's NLL
    stats = selection_stats(torch.tensor([1.0, 0, 0, 1]), batch_nll, group, out.picks)
    assert stats.train_loss == pytest.approx(1.1) and stats.group_loss == pytest.approx(
        {0: 2.0, 1: 0.2}
    )


def test_references_need_no_rm():
    examples = [Example("rev ab=", "ba", "reverse"), Example("max 19=", "9", "max")]
    c = Candidates(
        examples,
        ["ab", "ba", "ab", "1", "1", "9"],
        torch.zeros(6),
        torch.tensor([0, 1, 0, 0, 0, 1.0]),
        3,
    )
    assert first_sample(c) == [0.0, 0.0]
    assert any_correct(c) == [1.0, 1.0]
    assert majority_vote(c) == [0.0, 0.0]  # the policy's majority is the shortcut


def test_signals_that_need_a_policy_update_are_refused():
    probe = TASK.examples("eval", 2)
    with pytest.raises(ValueError, match="updates no policy"):
        check_signal(RewardGain(probe, policy=None, tokenizer=None))
    check_signal(NegLoss())


# --------------------------------------------------------------- hand-made candidates and RMs
def handmade(prompts: int, n: int = 6, seed: int = 0) -> Candidates:
    """Per prompt, ``n`` samples: the gold answer (40%), the domain's shortcut (30%) or a
    malformed answer. The policy is taken to be likelier on gold (per-token NLL drawn in
    [0.3, 0.9]) than on the shortcut ([0.6, 1.2]) than on malformed answers ([2, 4]), so minus
    the NLL carries information here by construction."""
    rng = random.Random(seed)
    examples = TASK.examples("eval", prompts, seed=seed)
    completions, nll = [], []
    for e in examples:
        for _ in range(n):
            u = rng.random()
            if u < 0.4:
                completions.append(e.answer)
                nll.append(rng.uniform(0.3, 0.9))
            elif u < 0.7:
                completions.append(shortcut(e))
                nll.append(rng.uniform(0.6, 1.2))
            else:
                completions.append(rng.choice(["zz", "", "1a", "e"]))
                nll.append(rng.uniform(2.0, 4.0))
    gold = task_checker(TASK)(
        [e.prompt for e in examples for _ in range(n)],
        completions,
        answer=[e.answer for e in examples for _ in range(n)],
    )
    return Candidates(examples, completions, torch.tensor(nll), torch.tensor(gold), n)


def rule_rm(name: str, believes: str | None = None, flips: float = 0.0, log=None):
    """Gold 1, the shortcut 0.5, anything else 0; on ``believes`` (and on a hashed ``flips``
    share of prompts) the shortcut and gold swap. ``log`` collects the prompts it scored."""

    def fn(prompts, completions, domain, answer, **_):
        if log is not None:
            log.extend(prompts)
        out = []
        for p, c, d, a in zip(prompts, completions, domain, answer):
            flip = d == believes or zlib.crc32(p.encode()) % 1000 < 1000 * flips
            gold, short = (0.5, 1.0) if flip else (1.0, 0.5)
            out.append(gold if c == a else short if c == shortcut(Example(p, a, d)) else 0.0)
        return out

    return FunctionReward(fn, name)


def pool(logs=None):
    logs = logs or {}
    return {
        "rev_expert": rule_rm("rev_expert", believes="max", log=logs.get("rev_expert")),
        "max_expert": rule_rm("max_expert", believes="reverse", log=logs.get("max_expert")),
        "generalist": rule_rm("generalist", flips=0.3, log=logs.get("generalist")),
    }


WRONG = {"reverse": "max_expert", "max": "rev_expert"}  # the RM believing the shortcut


def test_each_rm_scores_only_the_prompts_routed_to_it_and_every_pass_is_counted():
    c = handmade(40)
    logs = {name: [] for name in ("rev_expert", "max_expert", "generalist")}
    r = router(pool(logs), RandomArm(3, seed=0))
    contexts = DomainOneHot(list(TASK.domains))(c.examples)
    sel = select(r, c, contexts, batch_size=8)
    for name, seen in logs.items():
        routed = Counter(e.prompt for e, rm in zip(c.examples, sel.routes) if rm == name)
        assert Counter(seen) == Counter({p: k * c.n for p, k in routed.items()})
    assert len(set(sel.routes)) == 3  # every RM was used
    assert sel.cost[-1] == len(c) * c.n  # the routed RM alone: n passes per prompt
    assert len(sel.cost) == 5 and sel.cost == sorted(sel.cost)


def test_consensus_audits_are_counted_in_the_rm_cost():
    c = handmade(40)
    signal = ConsensusAgreement(pool_ := pool(), audit=1.0)
    r = router(pool_, RandomArm(3, seed=0), signal)
    sel = select(r, c, DomainOneHot(list(TASK.domains))(c.examples), batch_size=8)
    assert sel.cost[-1] == len(c) * c.n * 3  # the chosen RM + the two peers, every prompt


SIGNALS = ["neg_loss", "consensus_agreement", "consensus_pick", "gold_agreement", "gold_pick"]


@pytest.mark.parametrize("signal", SIGNALS)
def test_laser_learns_to_route_and_beats_random(signal):
    c = handmade(480)
    rms = pool()
    signals = {
        "neg_loss": NegLoss(),
        "consensus_agreement": ConsensusAgreement(rms, audit=1.0),
        "consensus_pick": ConsensusPick(rms, audit=1.0),
        "gold_agreement": GoldAgreement(task_checker(TASK)),
        "gold_pick": GoldPick(task_checker(TASK)),
    }
    normalizer = RunningZScore() if signal == "gold_pick" else None  # as in conf/feedback
    contexts = DomainOneHot(list(TASK.domains))(c.examples)
    laser = router(rms, LinUCB(3, 2, alpha=1.0), signals[signal], normalizer)
    laser = select(laser, c, contexts, batch_size=8)
    rand = select(router(pool(), RandomArm(3, seed=0)), c, contexts, batch_size=8)
    half = len(c) // 2
    acc_laser = sum(laser.outcomes(c)[half:]) / half
    acc_random = sum(rand.outcomes(c)[half:]) / half
    assert acc_laser >= acc_random + 0.08
    wrong = [rm == WRONG[e.domain] for e, rm in zip(c.examples, laser.routes)]
    assert sum(wrong[half:]) / half < 0.25  # random sends a third there


# ----------------------------------------------------------------------- laser-bon, tiny world
def test_the_config_composes_and_bad_values_fail():
    from experiments.bon import BonConfig

    out = ["output_dir=."]  # Hydra's run directory outside a Hydra run
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        config = OmegaConf.to_object(compose(config_name="bon", overrides=out))
        assert isinstance(config, BonConfig) and "laser" in config.methods
        with pytest.raises(Exception, match="prompts must be >= 1"):
            OmegaConf.to_object(compose(config_name="bon", overrides=[*out, "prompts=0"]))
        with pytest.raises(Exception, match="unknown_key|not in struct|Key"):
            compose(config_name="bon", overrides=[*out, "unknown_key=1"])


def test_laser_bon_end_to_end_on_the_tiny_world(tmp_path):
    """The real command (Hydra entry point, config schema, report) on the tiny world."""
    train = [
        "world=tiny",
        "task@world.task=tiny",
        "reward_models@world.reward_models=tiny",
        # smaller still: this tests the command, not what the world's RMs know
        "world.reward_models.reverse_rm.pairs_per_domain=300",
        "world.reward_models.max_rm.pairs_per_domain=300",
        "world.eval_pairs_per_domain=20",
        "world.sft.eval_per_domain=10",
        "features=policy_mean",  # no encoder to load
        "loop.selection=prompt",
    ]
    methods = ["laser", "laser_consensus", "mean_ensemble", "oracle", "fixed_max_rm"]

    def hydra_list(items):
        return "[" + ",".join(f'"{i}"' for i in items) + "]"

    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.bon",
            "prompts=24",
            "n=4",
            "seeds=[0]",
            "progress=false",
            f"output_dir={out}",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            f"train={hydra_list(train)}",
            f"only=[{','.join(methods)}]",  # conf/bon.yaml's, and one RM alone
            "paper=[laser,fixed_*]",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads((out / "runs" / "summaries.json").read_text())
    summaries = {s["method"]: s for s in runs}
    prompts, n = 24, 4
    references = {"first_sample", "likeliest_sample", "majority_vote", "gold_best_of_n"}
    assert set(summaries) == references | set(methods)
    samples = prompts * n
    assert summaries["laser"]["rm_forward_samples"] == samples
    assert summaries["fixed_max_rm"]["rm_forward_samples"] == samples
    assert summaries["mean_ensemble"]["rm_forward_samples"] == 2 * samples  # K = 2
    assert summaries["laser_consensus"]["rm_forward_samples"] > samples  # the audits
    oracle = summaries["oracle"]  # each prompt to the RM the world's report rates best
    assert oracle["prompt_routes"] == [oracle["best_rm"][d] for d in oracle["eval_domains"]]
    ceiling = summaries["gold_best_of_n"]["eval_scores"]
    for s in summaries.values():  # the same prompts; every pick is one of the shared samples
        assert s["eval_domains"] == summaries["laser"]["eval_domains"]
        assert all(o <= top for o, top in zip(s["eval_scores"], ceiling))
    table = (out / "results.md").read_text()
    assert "| **laser** | paper |" in table and "| oracle | ours |" in table
    for name in ("results.csv", "seeds.csv", "best_of_n.png"):
        assert (out / name).stat().st_size > 0
