"""LoRA in PolicyTrainer: which weights adapt, what is refused, and the adapter-only
checkpoint (laser/policy/adapters.py): bit-exact resume, refusals on another setup."""

import copy

import pytest
import torch
from _policy_helpers import ALPHABET, PROMPTS, _policy, share_of_a

from laser.models import char_tokenizer
from laser.policy import PolicyConfig, PolicyTrainer, generate_rollout


@pytest.fixture
def tok():
    return char_tokenizer(ALPHABET)


def test_lora_through_peft(tok):
    pytest.importorskip("peft")
    policy = _policy(tok)
    cfg = PolicyConfig(algo="dpo", lr=1e-2, lora_r=4, lora_target_modules=("c_attn",))
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    trainable = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    ro = generate_rollout(trainer.policy, trainer.ref_policy, tok, PROMPTS, n=4, max_new_tokens=6)
    stats = trainer.update(ro, share_of_a(ro.completions) + torch.arange(16) * 0.01)
    assert stats.num_pairs > 0 and stats.train_loss is not None


def test_lora_on_the_top_layers_only_adapts_and_trains_those(tok):
    pytest.importorskip("peft")
    policy = _policy(tok)
    depth = policy.config.num_hidden_layers
    cfg = PolicyConfig(
        algo="dpo", lr=1e-2, lora_r=4, lora_target_modules=("c_attn",), lora_layers=1
    )
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    adapted = {n for n, p in trainer.policy.named_parameters() if p.requires_grad}
    assert adapted and all(f".h.{depth - 1}." in n for n in adapted), adapted
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    ro = generate_rollout(trainer.policy, trainer.ref_policy, tok, PROMPTS, n=4, max_new_tokens=6)
    stats = trainer.update(ro, share_of_a(ro.completions) + torch.arange(16) * 0.01)
    assert stats.num_pairs > 0
    changed = {n for n, p in trainer.policy.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= adapted


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lora_layers": 1}, "lora_r > 0"),
        ({"lora_layers": 1, "lora_r": 4}, "lora_target_modules"),
        ({"lora_layers": -1, "lora_r": 4, "lora_target_modules": ("c_attn",)}, ">= 0"),
    ],
)
def test_lora_layers_refuses_what_peft_cannot_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(algo="dpo", **kwargs)


def test_lora_layers_beyond_the_depth_is_refused(tok):
    pytest.importorskip("peft")
    policy = _policy(tok)
    depth = policy.config.num_hidden_layers
    cfg = PolicyConfig(algo="dpo", lora_r=4, lora_target_modules=("c_attn",), lora_layers=depth + 1)
    with pytest.raises(ValueError, match=f"only {depth} layers"):
        PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)


def _lora_trainer(tok, seed=0, algo="dpo", **overrides):
    policy = _policy(tok, seed)
    kwargs = dict(algo=algo, lr=1e-2, lora_r=4, lora_target_modules=("c_attn",)) | overrides
    return PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(**kwargs))


def _lora_step(trainer, tok, seed):
    ro = generate_rollout(
        trainer.policy, trainer.ref_policy, tok, PROMPTS, n=4, max_new_tokens=6, generator_seed=seed
    )
    trainer.update(ro, share_of_a(ro.completions) + torch.arange(16) * 0.01)


def _saved_and_loaded(state, tmp_path):
    from laser.checkpoint import load_checkpoint, save_checkpoint

    return load_checkpoint(save_checkpoint(tmp_path, 1, {"trainer": state}))["trainer"]


def _weights(trainer):
    return [p.detach().clone() for p in trainer.policy.parameters()] + [
        p.detach().clone() for p in trainer.ref_policy.parameters()
    ]


@pytest.mark.parametrize("algo", ["dpo", "ppo"])
def test_lora_checkpoint_holds_the_adapters_only_and_resumes_exactly(tok, tmp_path, algo):
    """A LoRA run saves its adapters (not the base, not the merged reference); a trainer
    rebuilt on the same base and loaded from it continues bit-for-bit."""
    pytest.importorskip("peft")
    trainer = _lora_trainer(tok, algo=algo)
    for seed in range(2):
        _lora_step(trainer, tok, seed)
    state = trainer.state_dict()
    adapters = sum(p.numel() for p in trainer.policy.parameters() if p.requires_grad)
    saved_policy = [t for t in state["policy"]["lora_adapters"].values()]
    assert sum(t.numel() for t in saved_policy) == adapters
    assert adapters < 0.1 * sum(p.numel() for p in trainer.policy.parameters())
    synced = state["ref_policy"]["synced_adapters"]
    assert (synced is not None) == (algo == "dpo")  # iterative DPO re-merged its reference

    resumed = _lora_trainer(tok, algo=algo)
    resumed.load_state_dict(_saved_and_loaded(state, tmp_path))
    for a, b in zip(_weights(trainer), _weights(resumed)):
        assert torch.equal(a, b)
    torch.manual_seed(7)
    _lora_step(trainer, tok, 5)
    torch.manual_seed(7)
    _lora_step(resumed, tok, 5)
    for a, b in zip(_weights(trainer), _weights(resumed)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "other, match",
    [
        (dict(seed=1), "another base model"),
        (dict(lora_r=2), "do not match this policy's LoRA setup"),
        (dict(lora_r=0, lora_target_modules=()), "no LoRA"),
    ],
)
def test_lora_checkpoint_onto_another_setup_is_refused(tok, tmp_path, other, match):
    pytest.importorskip("peft")
    trainer = _lora_trainer(tok)
    _lora_step(trainer, tok, 0)
    state = _saved_and_loaded(trainer.state_dict(), tmp_path)
    with pytest.raises(ValueError, match=match):
        _lora_trainer(tok, **other).load_state_dict(state)


def test_lora_checkpoint_whose_reference_does_not_rebuild_is_refused(tok):
    """The reference is re-merged from the saved adapters and checked against the saved
    fingerprint: adapters that do not give the saved reference are an error, not a run."""
    pytest.importorskip("peft")
    trainer = _lora_trainer(tok)
    _lora_step(trainer, tok, 0)
    state = trainer.state_dict()
    synced = state["ref_policy"]["synced_adapters"]
    name = next(iter(synced))
    synced[name] = synced[name] + 1e-3
    with pytest.raises(ValueError, match="reference rebuilt"):
        _lora_trainer(tok).load_state_dict(state)
