"""HFRewardModel and FunctionReward: correct scores, padding, own tokenizers, loading, errors."""

import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedTokenizerFast,
)

from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards import (
    FunctionReward,
    HFRewardModel,
    RewardModel,
    RewardModelError,
    reward_model_from_causal_lm,
    score_checked,
)
from laser.rewards.toy import toy_preference_rows

PROMPTS = ["word 1: ", "word 22: ", "w: ", "word 3: "]
COMPLETIONS = ["abc", "hello there, a longer answer", "x", "aeiou aeiou"]


def _manual_scores(model, tok, prompts, completions):
    """One sequence at a time, no padding at all: the unambiguous reference."""
    out = []
    with torch.no_grad():
        for p, c in zip(prompts, completions):
            ids = tok(p + c + tok.eos_token, return_tensors="pt").input_ids
            out.append(model(input_ids=ids).logits.item())
    return torch.tensor(out)


def test_scores_match_unpadded_reference_and_protocol(tiny_rm, char_tok):
    rm = HFRewardModel(tiny_rm, char_tok, name="tiny", batch_size=3)
    assert isinstance(rm, RewardModel)
    scores = rm.score(PROMPTS, COMPLETIONS)
    assert scores.shape == (4,) and scores.dtype == torch.float32 and scores.device.type == "cpu"
    torch.testing.assert_close(
        scores, _manual_scores(tiny_rm, char_tok, PROMPTS, COMPLETIONS), atol=1e-5, rtol=1e-5
    )
    assert rm.forward_samples == 4


def test_left_and_right_padding_tokenizers_score_identically(tiny_rm):
    left, right = char_tokenizer(), char_tokenizer()
    left.padding_side, right.padding_side = "left", "right"
    a = HFRewardModel(tiny_rm, left, batch_size=4).score(PROMPTS, COMPLETIONS)
    b = HFRewardModel(tiny_rm, right, batch_size=4).score(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batch_size_does_not_change_scores(tiny_rm, char_tok):
    one = HFRewardModel(tiny_rm, char_tok, batch_size=1).score(PROMPTS, COMPLETIONS)
    many = HFRewardModel(tiny_rm, char_tok, batch_size=16).score(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)


def _bpe_tokenizer():
    """A word-piece-ish BPE tokenizer trained locally: a tokenizer unlike the policy's."""
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[PAD]", "[EOS]", "[UNK]"])
    corpus = [r["prompt"] + r["chosen"] + " " + r["rejected"] for r in toy_preference_rows(300)]
    backend.train_from_iterator(corpus + COMPLETIONS, trainer)
    from tokenizers import decoders

    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]"
    )


def test_rm_with_its_own_tokenizer_differs_from_policy_and_scores_correctly(char_tok):
    bpe = _bpe_tokenizer()
    assert bpe("hello there").input_ids != char_tok("hello there").input_ids
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_config(
        tiny_gpt2_config(bpe, n_layer=1, n_embd=32, n_positions=128)
    ).eval()
    rm = HFRewardModel(model, bpe, name="bpe-rm", batch_size=2)
    torch.testing.assert_close(
        rm.score(PROMPTS, COMPLETIONS),
        _manual_scores(model, bpe, PROMPTS, COMPLETIONS),
        atol=1e-5,
        rtol=1e-5,
    )


def test_save_and_lazy_reload_round_trip(tiny_rm, char_tok, tmp_path):
    tiny_rm.save_pretrained(tmp_path / "rm")
    char_tok.save_pretrained(tmp_path / "rm")
    assert (tmp_path / "rm" / "model.safetensors").exists()
    lazy = HFRewardModel(tmp_path / "rm")
    assert not lazy.loaded and lazy.name == "rm"
    scores = lazy.score(PROMPTS, COMPLETIONS)
    assert lazy.loaded
    torch.testing.assert_close(scores, HFRewardModel(tiny_rm, char_tok).score(PROMPTS, COMPLETIONS))


def test_offload_moves_weights_to_the_device_then_back(tiny_rm, char_tok, monkeypatch):
    moves = []
    original = type(tiny_rm).to

    def spy(self, *args, **kwargs):
        moves.append(str(args[0]) if args else str(kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_rm), "to", spy)
    rm = HFRewardModel(tiny_rm, char_tok, device="cpu", offload=True)
    rm.score(PROMPTS[:1], COMPLETIONS[:1])
    assert moves == ["cpu", "cpu"]  # to the scoring device, then parked
    moves.clear()
    HFRewardModel(tiny_rm, char_tok, device="cpu").score(PROMPTS[:1], COMPLETIONS[:1])
    assert moves == ["cpu"]  # without offload it stays where it scored


def test_reward_model_from_causal_lm_reuses_the_transformer(char_tok, tmp_path):
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(tiny_gpt2_config(char_tok, n_layer=1, n_embd=32))
    rm = reward_model_from_causal_lm(lm)
    assert rm.config.num_labels == 1
    for name, tensor in lm.transformer.state_dict().items():
        torch.testing.assert_close(rm.transformer.state_dict()[name], tensor)
    lm.save_pretrained(tmp_path / "sft")
    from_path = reward_model_from_causal_lm(tmp_path / "sft")
    torch.testing.assert_close(from_path.transformer.wte.weight, lm.transformer.wte.weight)
    scores = HFRewardModel(rm, char_tok).score(PROMPTS, COMPLETIONS)
    assert torch.isfinite(scores).all()


def test_score_segments_are_prefix_scores(tiny_rm, char_tok):
    rm = HFRewardModel(tiny_rm, char_tok)
    segs = [["ab", "c"], ["hello ", "there, a longer", " answer"]]
    comps = ["".join(s) for s in segs]
    out = rm.score_segments(PROMPTS[:2], comps, segs)
    assert [t.shape[0] for t in out] == [2, 3]
    torch.testing.assert_close(out[1][1], rm.score([PROMPTS[1]], ["hello there, a longer"])[0])
    torch.testing.assert_close(out[0][-1], rm.score([PROMPTS[0]], [comps[0]])[0])
    with pytest.raises(RewardModelError, match="concatenate"):
        rm.score_segments(["p"], ["abc"], [["ab", "x"]])


def test_overlong_inputs_are_truncated_from_the_left_and_counted(tiny_rm, char_tok, caplog):
    rm = HFRewardModel(tiny_rm, char_tok, max_length=16)
    long_completion = "z" * 40 + "tail"
    score = rm.score(["p: "], [long_completion])
    ids = char_tok("p: " + long_completion + "<eos>").input_ids[-16:]
    with torch.no_grad():
        expected = tiny_rm(input_ids=torch.tensor([ids])).logits.item()
    assert score.item() == pytest.approx(expected, abs=1e-5)
    assert rm.truncated == 1 and "truncated 1 of 1" in caplog.text


def test_num_labels_other_than_one_is_a_clear_error(char_tok):
    model = AutoModelForSequenceClassification.from_config(
        tiny_gpt2_config(char_tok, n_layer=1, n_embd=32, num_labels=2)
    )
    with pytest.raises(ValueError, match="num_labels=2"):
        HFRewardModel(model, char_tok)


def test_missing_path_and_corrupt_checkpoint(tmp_path, tiny_rm, char_tok):
    with pytest.raises(FileNotFoundError, match="not found"):
        HFRewardModel(tmp_path / "nope")
    tiny_rm.save_pretrained(tmp_path / "bad")
    char_tok.save_pretrained(tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RewardModelError, match="could not load"):
        HFRewardModel(tmp_path / "bad", name="bad").score(["a"], ["b"])


def test_function_reward_uses_trl_signature_and_metadata():
    def exact_match(prompts, completions, answer, **kwargs):
        return [float(c.strip() == a) for c, a in zip(completions, answer)]

    rm = FunctionReward(exact_match)
    assert rm.name == "exact_match" and isinstance(rm, RewardModel)
    scores = rm.score(["1+1=", "2+2="], ["2", "5"], answer=["2", "4"])
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0]))
    assert rm.forward_samples == 2


@pytest.mark.parametrize(
    "fn,message",
    [
        (lambda prompts, completions, **kw: [math.nan] * len(prompts), "non-finite"),
        (lambda prompts, completions, **kw: [1.0], "returned 1 scores for 2"),
        (lambda prompts, completions, **kw: [None, 1.0], "non-number at position 0"),
        (lambda prompts, completions, **kw: 3.0, "expected a list"),
    ],
)
def test_bad_rm_output_names_the_rm(fn, message):
    with pytest.raises(RewardModelError, match=rf"reward model 'judge'.*{message}"):
        score_checked(FunctionReward(fn, name="judge"), ["a", "b"], ["c", "d"])


@pytest.mark.parametrize(
    "out",
    [
        np.array([1.0, 2.0], dtype=np.float32),
        np.array([1, 2]),
        [torch.tensor(1.0), np.float64(2.0)],
        torch.tensor([[1.0], [2.0]]),
    ],
)
def test_any_numeric_scores_are_accepted(out):
    rm = FunctionReward(lambda prompts, completions, **kw: out, "numeric")
    torch.testing.assert_close(score_checked(rm, ["a", "b"], ["c", "d"]), torch.tensor([1.0, 2.0]))


def test_scores_work_in_autograd_and_in_place(tiny_rm, char_tok):
    rewards = HFRewardModel(tiny_rm, char_tok).score(PROMPTS, COMPLETIONS)
    original = rewards.clone()
    logp = torch.zeros(4, requires_grad=True)
    (logp * rewards).sum().backward()  # the scores are saved for backward
    torch.testing.assert_close(logp.grad, original)
    rewards -= rewards.mean()  # whitening in place must work too
    assert abs(rewards.mean().item()) < 1e-6


def test_checkpoint_without_a_score_head_is_refused(char_tok, tmp_path):
    lm = AutoModelForCausalLM.from_config(tiny_gpt2_config(char_tok, n_layer=1, n_embd=32))
    lm.save_pretrained(tmp_path / "lm")
    char_tok.save_pretrained(tmp_path / "lm")
    with pytest.raises(RewardModelError, match="lacks weights.*score"):
        HFRewardModel(tmp_path / "lm", name="lm").score(["a"], ["b"])


def test_tokenizer_and_trained_pad_id_are_left_alone(tiny_rm, char_tok):
    tok = char_tokenizer()
    tok.pad_token = None  # a tokenizer without pad token, like GPT-2's
    rm = HFRewardModel(tiny_rm, tok)
    scores = rm.score(PROMPTS, COMPLETIONS)
    assert tok.pad_token is None and tiny_rm.config.pad_token_id == char_tok.pad_token_id
    torch.testing.assert_close(scores, HFRewardModel(tiny_rm, char_tok).score(PROMPTS, COMPLETIONS))


def test_chat_template_tokens_match_apply_chat_template(tiny_rm):
    tok = char_tokenizer()
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    rm = HFRewardModel(tiny_rm, tok, chat_template=True)
    got = rm.score(["hi"], ["yo"])
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    ids = tok.apply_chat_template(messages, tokenize=True)
    ids = ids["input_ids"] if not isinstance(ids, list) else ids
    assert ids.count(tok.bos_token_id) == 1
    with torch.no_grad():
        expected = tiny_rm(input_ids=torch.tensor([ids])).logits.item()
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_rm_that_throws_is_wrapped_with_its_name():
    def broken(prompts, completions, **kw):
        raise KeyError("answer")

    with pytest.raises(RewardModelError, match="'broken' raised KeyError") as info:
        score_checked(FunctionReward(broken), ["a"], ["b"])
    assert isinstance(info.value.__cause__, KeyError)


def test_mismatched_batch_is_rejected(tiny_rm, char_tok):
    with pytest.raises(RewardModelError, match="2 prompts but 1 completions"):
        HFRewardModel(tiny_rm, char_tok, name="x").score(["a", "b"], ["c"])


def test_likelihood_rm_is_the_mean_completion_log_likelihood(tmp_path):
    """Against a per-sample hand computation; batching (right padding) changes nothing."""
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from laser.models import char_tokenizer, tiny_gpt2_config
    from laser.rewards import LikelihoodRewardModel

    tok = char_tokenizer()
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(
        tiny_gpt2_config(tok, n_layer=1, n_head=2, n_embd=32, n_positions=64)
    ).eval()
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    prompts, completions = ["ab", "hello ", "x"], ["cd", "w", "a longer one"]
    rm = LikelihoodRewardModel(tmp_path / "lm", name="lik", batch_size=2)
    assert not rm.loaded  # lazy until the first score
    scores = rm.score(prompts, completions)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        p_ids = tok(p).input_ids
        c_ids = tok(c, add_special_tokens=False).input_ids + [tok.eos_token_id]
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logp = F.log_softmax(lm(ids).logits[0, :-1], -1)
        targets = ids[0, 1:]
        per_token = logp[torch.arange(len(targets)), targets][len(p_ids) - 1 :]
        assert scores[i].item() == pytest.approx(per_token.mean().item(), abs=1e-5)
    one_by_one = torch.cat([rm.score([p], [c]) for p, c in zip(prompts, completions)])
    assert torch.allclose(scores, one_by_one, atol=1e-5)
    assert rm.forward_samples == 6
