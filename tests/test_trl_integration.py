"""LASER inside TRL's GRPOTrainer / RLOOTrainer on CPU with a tiny policy: the callback updates
the bandit after each step, only the chosen RM runs, metrics reach TRL's logs, training runs."""

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM

from laser.bandits import LinUCB
from laser.features import DomainOneHot
from laser.feedback import GoldAgreement, NegLoss
from laser.integrations import LaserRewardSelector
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards import FunctionReward

PROMPTS = [("go: ", "x"), ("run: ", "y"), ("do: ", "x"), ("be: ", "y")]


def share(ch):
    def fn(prompts, completions, **kw):
        return [sum(c == ch for c in s) / max(len(s), 1) for s in completions]

    return fn


class Constant:
    """A feedback signal of 1.0 per batch: the tests below check plumbing, not a signal."""

    name = "constant"

    @classmethod
    def check_update(cls, policy):
        return None

    def before(self, rm):
        return None

    def after(self, rm, stats, before, batch):
        return 1.0


def make_trainer(kind, tmp_path, selector, steps=3, **config):
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    tok = char_tokenizer("abcdefgh :")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(
        tiny_gpt2_config(tok, n_layer=1, n_head=2, n_embd=32, n_positions=64)
    ).save_pretrained(tmp_path / "policy")
    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if kind == "grpo" else (RLOOConfig, RLOOTrainer)
    )
    args = config_cls(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        learning_rate=1e-3,
        max_steps=steps,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        **config,
    )
    rows = [{"prompt": p, "domain": d} for _ in range(steps * 2) for p, d in PROMPTS]
    return trainer_cls(
        model=str(tmp_path / "policy"),
        reward_funcs=[selector],
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[selector.callback()],
    )


def make_selector(**kw):
    pool = {"a_rm": FunctionReward(share("a"), "a_rm"), "b_rm": FunctionReward(share("b"), "b_rm")}
    return LaserRewardSelector(pool, LinUCB(2, 2, alpha=1.0), DomainOneHot(["x", "y"]), **kw)


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_selector_trains_inside_trl(tmp_path, kind):
    selector = make_selector(signal=Constant(), per_prompt=False)
    trainer = make_trainer(kind, tmp_path, selector)
    trainer.train()
    assert trainer.state.global_step == 3
    assert selector.updates == 3 and not selector.pending  # one decision per step, fed back
    # only the chosen RM scored each batch: 3 batches x 8 completions in all
    assert sum(rm.forward_samples for rm in selector.pool.values()) == 3 * 8
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(h["laser/arm_frac/a_rm"] + h["laser/arm_frac/b_rm"] == 1.0 for h in logs)
    assert any(k.startswith("rewards/a_rm/") or k.startswith("rewards/b_rm/") for k in logs[0])


def test_verifier_feedback_updates_after_each_step(tmp_path):
    def verifier(prompts, completions, **kw):  # "right" = mostly a's
        return [float(v > 0.3) for v in share("a")(prompts, completions)]

    selector = make_selector(signal=GoldAgreement(verifier), per_prompt=False)
    seen = []
    original = selector.selector.update
    selector.selector.update = lambda arm, x, r: (seen.append((arm, r)), original(arm, x, r))
    make_trainer("grpo", tmp_path, selector).train()
    assert not selector.pending and len(seen) == selector.updates <= 3
    assert all(0.0 <= r <= 1.0 for _, r in seen)


def test_bad_setups_fail_clearly(tmp_path):
    pool = {"a_rm": FunctionReward(share("a"), "a_rm")}
    with pytest.raises(ValueError, match="arms for 1 RMs"):
        LaserRewardSelector(pool, LinUCB(2, 2), DomainOneHot(["x", "y"]), signal=NegLoss())
    with pytest.raises(TypeError, match="signal"):
        LaserRewardSelector(pool, LinUCB(1, 2), DomainOneHot(["x", "y"]))
    # GRPO's single pass (num_iterations=1): the surrogate loss is 0 whatever the RM
    trainer = make_trainer("grpo", tmp_path, make_selector(signal=NegLoss()))
    with pytest.raises(ValueError, match="carries no signal"):
        trainer.train()


class Spy:
    """An RM that records which prompts it scored (and scores the share of its letter)."""

    def __init__(self, name, letter):
        self.name, self.fn, self.seen, self.forward_samples = name, share(letter), [], 0

    def score(self, prompts, completions, **kw):
        self.seen += list(prompts)
        self.forward_samples += len(prompts)
        return torch.tensor(self.fn(prompts, completions), dtype=torch.float32)


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_per_prompt_routing_inside_trl(tmp_path, kind):
    """Each prompt's completions are scored by its own chosen RM only: with domain one-hot
    contexts and the domains' prompts routed apart, no RM ever sees the other's prompts."""
    pool = {"x_rm": Spy("x_rm", "a"), "y_rm": Spy("y_rm", "b")}
    router = DomainRouterStandIn()
    selector = LaserRewardSelector(pool, router, DomainOneHot(["x", "y"]), signal=Constant())
    trainer = make_trainer(kind, tmp_path, selector)
    trainer.train()
    domain = dict(PROMPTS)
    assert {domain[p] for p in pool["x_rm"].seen} == {"x"}
    assert {domain[p] for p in pool["y_rm"].seen} == {"y"}
    # 3 steps x 8 completions, each scored once, by one RM
    assert pool["x_rm"].forward_samples + pool["y_rm"].forward_samples == 3 * 8
    # credit per prompt: one selector update per routed prompt (per batch it would be 3)
    assert selector.updates == sum(selector.router.arms.picks.values()) >= 3 + 1


def DomainRouterStandIn():
    from laser.bandits import DomainRouter

    return DomainRouter(num_arms=2, dim=2, routes=[0, 1])


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_gold_free_majority_feedback_inside_trl(tmp_path, kind):
    """The default gold-free signal in TRL: per prompt, the chosen RM's agreement with the
    completions' majority answer; values in [0, 1] reach the bandit after each step."""
    from laser.feedback import MajorityAgreement

    selector = make_selector(signal=MajorityAgreement(min_share=0.25))
    seen = []
    original = selector.selector.update
    selector.selector.update = lambda arm, x, r: (seen.append(r), original(arm, x, r))
    make_trainer(kind, tmp_path, selector).train()
    assert not selector.pending and seen and len(seen) == selector.updates
    assert all(0.0 <= r <= 1.0 for r in seen)
