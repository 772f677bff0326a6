"""Rollouts and PolicyTrainer on a tiny GPT-2 with a rule reward: learning, reference, errors."""

import copy
import io

import pytest
import torch
from _policy_helpers import ALPHABET, PROMPTS, _policy, share_of_a

from laser.models import char_tokenizer
from laser.policy import (
    PolicyConfig,
    PolicyTrainer,
    generate_rollout,
    place_segment_rewards,
    sequence_logprobs,
)


@pytest.fixture
def tok():
    return char_tokenizer(ALPHABET)


def _train(tok, algo, steps=25, **overrides):
    policy = _policy(tok)
    cfg = PolicyConfig(algo=algo, lr=3e-3, kl_coef=0.0, ppo_epochs=2, **overrides)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    means = []
    for step in range(steps):
        ro = generate_rollout(
            trainer.policy,
            trainer.ref_policy,
            tok,
            PROMPTS,
            n=8,
            max_new_tokens=8,
            generator_seed=step,
        )
        rewards = share_of_a(ro.completions)
        trainer.update(ro, rewards)
        means.append(rewards.mean().item())
    return trainer, means


@pytest.mark.parametrize(
    "algo,critic", [("ppo", "shared"), ("ppo", "separate"), ("a2c", "shared"), ("dpo", "shared")]
)
def test_mean_reward_clearly_rises(tok, algo, critic):
    _, means = _train(tok, algo, critic=critic)
    start, end = sum(means[:3]) / 3, sum(means[-3:]) / 3
    assert start < 0.15  # a random char policy emits 'a' about 1 time in 12
    assert end > start + 0.3, means


def test_reference_parameters_never_change(tok):
    for algo, sync in (("ppo", True), ("a2c", True), ("dpo", False)):
        policy = _policy(tok)
        ref = copy.deepcopy(policy)
        frozen = {k: v.clone() for k, v in ref.state_dict().items()}
        trainer = PolicyTrainer(policy, ref, tok, PolicyConfig(algo=algo, lr=1e-2, ref_sync=sync))
        for step in range(3):
            ro = generate_rollout(
                policy, ref, tok, PROMPTS, n=4, max_new_tokens=6, generator_seed=step
            )
            trainer.update(ro, share_of_a(ro.completions) + torch.arange(16) * 0.01)
        assert all(torch.equal(frozen[k], v) for k, v in ref.state_dict().items()), algo
        assert not all(torch.equal(frozen[k], v) for k, v in policy.state_dict().items())


def test_iterative_dpo_syncs_reference_each_update(tok):
    trainer, _ = _train(tok, "dpo", steps=2)
    for (name, p), q in zip(
        trainer.policy.state_dict().items(), trainer.ref_policy.state_dict().values()
    ):
        assert torch.equal(p, q), name


def test_dpo_with_all_equal_scores_takes_no_step(tok):
    policy = _policy(tok)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo="dpo"))
    ro = generate_rollout(policy, trainer.ref_policy, tok, PROMPTS, n=3, max_new_tokens=4)
    stats = trainer.update(ro, torch.ones(12))
    assert stats.skipped and stats.num_pairs == 0 and stats.train_loss is None
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dpo"])
@pytest.mark.parametrize(
    "bad,message",
    [
        (torch.ones(5), "expected"),
        (torch.tensor([float("nan")] * 8), "NaN"),
        (torch.ones(8, 99), "expected"),
    ],
)
def test_bad_rewards_raise_and_take_no_step(tok, algo, bad, message):
    policy = _policy(tok)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo=algo))
    ro = generate_rollout(policy, trainer.ref_policy, tok, PROMPTS[:2], n=4, max_new_tokens=4)
    with pytest.raises(ValueError, match=message):
        trainer.update(ro, bad)
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert not trainer.optimizer.state  # no optimiser step was taken


def test_empty_inputs_are_rejected(tok):
    policy = _policy(tok)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate_rollout(policy, policy, tok, [], n=2)
    with pytest.raises(ValueError, match="policy.algo"):
        PolicyConfig(algo="reinforce")


def test_rollout_layout_eos_and_padding_invariance(tok):
    policy = _policy(tok)
    ro = generate_rollout(
        policy,
        policy,
        tok,
        ["a: ", "longer prompt: "],
        n=3,
        max_new_tokens=10,
        metadata={"answer": ["1", "2"]},
        generator_seed=0,
    )
    assert ro.group.tolist() == [0, 0, 0, 1, 1, 1] and ro.metadata["answer"][3] == "2"
    assert ro.prompts[4] == "longer prompt: "
    eos = tok.eos_token_id
    for ids, mask in zip(ro.response_ids, ro.response_mask):
        real = ids[mask.bool()]
        assert eos not in real[:-1].tolist()  # nothing generated after the first EOS
    # log-probs of a left-padded sample equal those of the same sample alone (no padding)
    i = 0  # the short prompt is left-padded
    alone_q = ro.query_ids[i : i + 1, ro.query_mask[i].bool()]
    alone = sequence_logprobs(
        policy,
        alone_q,
        torch.ones_like(alone_q),
        ro.response_ids[i : i + 1],
        ro.response_mask[i : i + 1],
    )
    torch.testing.assert_close(alone[0], ro.logprobs[i], atol=1e-5, rtol=1e-5)


def test_dense_segment_rewards_reach_ppo(tok):
    policy = _policy(tok)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo="ppo"))
    ro = generate_rollout(
        policy, trainer.ref_policy, tok, PROMPTS[:1], n=2, max_new_tokens=8, generator_seed=1
    )
    ends = [[2, len(c)] if len(c) > 2 else [len(c)] for c in ro.completions]
    scores = [torch.tensor([0.5, 1.0])[: len(e)] for e in ends]
    dense = place_segment_rewards(ro, tok, ends, scores)
    special = set(tok.all_special_ids)
    for i, e in enumerate(ends):  # char tokenizer: count printed characters token by token
        ids = ro.response_ids[i][ro.response_mask[i].bool()].tolist()
        printed = [sum(t not in special for t in ids[: k + 1]) for k in range(len(ids))]
        for end, score in zip(e, scores[i]):
            token = next((k for k, n in enumerate(printed) if n >= end), len(ids) - 1)
            assert dense[i, token] == pytest.approx(float(score))
    stats = trainer.update(ro, dense)
    assert stats.reward_mean == pytest.approx(dense.sum(-1).mean().item())


def _checkpoint(trainer):
    """What a checkpoint does: serialise (state_dict holds live references, like torch's)."""
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_trainer_state_round_trip(tok):
    trainer, _ = _train(tok, "ppo", steps=2)
    state = _checkpoint(trainer)
    twin, _ = _train(tok, "ppo", steps=1)
    outs = []
    for i, t in enumerate((trainer, twin)):
        torch.manual_seed(1000 + i)  # disturb the global RNG differently for each ...
        t.load_state_dict(copy.deepcopy(state))  # ... and let the checkpoint restore it
        ro = generate_rollout(t.policy, t.ref_policy, tok, PROMPTS, n=2, max_new_tokens=5)
        outs.append((ro.completions, t.update(ro, share_of_a(ro.completions)).train_loss))
    assert outs[0][0] == outs[1][0]
    assert outs[0][1] == pytest.approx(outs[1][1], abs=1e-6)


def test_reference_must_be_a_separate_copy(tok):
    policy = _policy(tok)
    with pytest.raises(ValueError, match="shares parameters"):
        PolicyTrainer(policy, policy, tok, PolicyConfig(algo="ppo"))


def test_rows_without_response_tokens_and_dense_rewards_on_padding_are_rejected(tok):
    policy = _policy(tok)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo="ppo"))
    ro = generate_rollout(
        policy, trainer.ref_policy, tok, PROMPTS[:1], n=2, max_new_tokens=4, generator_seed=0
    )
    dense = torch.zeros_like(ro.response_ids, dtype=torch.float32)
    ro.response_mask[0, 2:] = 0
    dense[0, 3] = 1.0
    with pytest.raises(ValueError, match="padding"):
        trainer.update(ro, dense)
    ro.response_mask[1] = 0
    with pytest.raises(ValueError, match="no response tokens"):
        trainer.update(ro, torch.ones(2))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_feedback_loss_does_not_grow_with_the_reward_scale(tok, algo):
    """train_loss excludes the value loss, which would scale with the RM's reward range."""
    losses = []
    for scale in (1.0, 10.0):
        policy = _policy(tok)
        cfg = PolicyConfig(algo=algo, kl_coef=0.0, ppo_epochs=1)
        trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
        ro = generate_rollout(
            policy, trainer.ref_policy, tok, PROMPTS, n=4, max_new_tokens=6, generator_seed=0
        )
        stats = trainer.update(ro, scale * torch.arange(16.0))
        losses.append(stats.train_loss)
        assert stats.value_loss > 0
    assert losses[1] == pytest.approx(losses[0], abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_update(tok):
    policy = _policy(tok).cuda()
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo="ppo"))
    ro = generate_rollout(policy, trainer.ref_policy, tok, PROMPTS, n=2, max_new_tokens=5)
    assert trainer.update(ro, share_of_a(ro.completions)).train_loss is not None


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_single_pass_update_equals_update_with_recorded_logprobs(tok, algo):
    """Without behaviour log-probs the training forward supplies them: same update."""
    results = []
    for record in (True, False):
        policy = _policy(tok)
        cfg = PolicyConfig(algo=algo, ppo_epochs=1, kl_coef=0.1)
        trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
        ro = generate_rollout(
            policy,
            trainer.ref_policy,
            tok,
            PROMPTS,
            n=4,
            max_new_tokens=6,
            generator_seed=0,
            behaviour_logprobs=record,
        )
        stats = trainer.update(ro, share_of_a(ro.completions))
        results.append((stats, [p.detach().clone() for p in policy.parameters()]))
    (a, pa), (b, pb) = results
    assert a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
    assert a.kl_ref == pytest.approx(b.kl_ref, abs=1e-5)
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)


def test_dpo_group_loss_is_the_per_prompt_loss_before_the_update(tok):
    """With the policy equal to its reference, every pair's DPO term is log 2 (hand value);
    with nll_coef the per-prompt value adds the chosen sample's per-token NLL."""
    policy = _policy(tok)
    cfg = PolicyConfig(algo="dpo", nll_coef=0.0, max_pairs=2)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    ro = generate_rollout(policy, trainer.ref_policy, tok, PROMPTS, n=4, max_new_tokens=5)
    scores = torch.arange(16, dtype=torch.float32) % 5  # distinct within each prompt
    stats = trainer.update(ro, scores)
    assert set(stats.group_loss) == {0, 1, 2, 3}
    for value in stats.group_loss.values():
        assert value == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-5)

    policy = _policy(tok)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, PolicyConfig(algo="dpo"))
    nll = -sequence_logprobs(
        policy, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask, 1.0
    )
    per_seq = (nll * ro.response_mask).sum(-1) / ro.response_mask.sum(-1)
    stats = trainer.update(ro, scores)
    for g in range(4):  # laser pairs: the top-scored sample is every pair's chosen one
        top = 4 * g + int(torch.argmax(scores[4 * g : 4 * g + 4]))
        expected = torch.log(torch.tensor(2.0)).item() + per_seq[top].item()
        assert stats.group_loss[g] == pytest.approx(expected, abs=1e-4)
