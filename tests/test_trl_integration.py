"""LASER inside TRL's GRPOTrainer / RLOOTrainer on CPU with a tiny policy: the callback updates
the bandit after each step, only the chosen RM runs, metrics reach TRL's logs, training runs."""

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM

from laser.bandits import LinUCB
from laser.features import DomainOneHot
from laser.integrations import LaserRewardSelector
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards import FunctionReward

PROMPTS = [("go: ", "x"), ("run: ", "y"), ("do: ", "x"), ("be: ", "y")]


def share(ch):
    def fn(prompts, completions, **kw):
        return [sum(c == ch for c in s) / max(len(s), 1) for s in completions]

    return fn


def make_trainer(kind, tmp_path, selector, steps=3):
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
    selector = make_selector(feedback="neg_loss")
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

    selector = make_selector(verifier=verifier)
    seen = []
    original = selector.selector.update
    selector.selector.update = lambda arm, x, r: (seen.append((arm, r)), original(arm, x, r))
    make_trainer("grpo", tmp_path, selector).train()
    assert not selector.pending and len(seen) == selector.updates <= 3
    assert all(0.0 <= r <= 1.0 for _, r in seen)


def test_bad_setups_fail_clearly():
    pool = {"a_rm": FunctionReward(share("a"), "a_rm")}
    with pytest.raises(ValueError, match="arms for 1 RMs"):
        LaserRewardSelector(pool, LinUCB(2, 2), DomainOneHot(["x", "y"]), feedback="neg_loss")
    with pytest.raises(ValueError, match="needs a verifier"):
        LaserRewardSelector(pool, LinUCB(1, 2), DomainOneHot(["x", "y"]))
    with pytest.raises(ValueError, match="'verifier' or 'neg_loss'"):
        LaserRewardSelector(pool, LinUCB(1, 2), DomainOneHot(["x", "y"]), feedback="loss")
