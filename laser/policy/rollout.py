"""Sampling n completions per prompt from a Hugging Face causal LM, with the token log-probs
PPO/A2C/DPO need.

Layout: queries are LEFT-padded (so generation continues from the last real token), responses
RIGHT-padded. Every forward pass passes ``position_ids`` computed from the attention mask, so
padding never shifts GPT-2-style positions. Log-probs are recomputed by a forward pass with
the same temperature used for sampling (the sampling distribution is softmax(logits / T)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class Rollout:
    """One batch of sampled completions. B = num_prompts * n; R = response length."""

    prompts: list[str]  # (B,) the prompt of each sample (repeated n times)
    completions: list[str]  # (B,) decoded response text, up to and excluding EOS
    group: torch.Tensor  # (B,) index of the prompt each sample belongs to
    query_ids: torch.Tensor  # (B, P) left-padded
    query_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R) right-padded; pad after EOS
    response_mask: torch.Tensor  # (B, R) 1 on generated tokens, EOS included
    logprobs: torch.Tensor | None  # (B, R) behaviour log-probs; None: the trainer recomputes
    ref_logprobs: torch.Tensor  # (B, R) frozen reference model's log-probs
    temperature: float = 1.0
    metadata: dict[str, list] = field(default_factory=dict)  # per-sample columns, repeated

    @property
    def batch_size(self) -> int:
        return self.response_ids.shape[0]


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row (pads get 0)."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def response_logits(
    model,
    query_ids,
    query_mask,
    response_ids,
    response_mask,
    temperature: float = 1.0,
    output_hidden_states: bool = False,
):
    """Logits (B, R, V) predicting each response token, and the forward output."""
    input_ids = torch.cat([query_ids, response_ids], dim=1)
    mask = torch.cat([query_mask, response_mask], dim=1)
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids_from_mask(mask),
        output_hidden_states=output_hidden_states,
    )
    P = query_ids.shape[1]
    logits = out.logits[:, P - 1 : -1, :].float() / temperature
    return logits, out


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits) at ``tokens``: (B, R, V), (B, R) -> (B, R)."""
    return torch.gather(F.log_softmax(logits, dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sequence_logprobs(
    model,
    query_ids,
    query_mask,
    response_ids,
    response_mask,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Per-token log-probs (B, R) of the responses under ``model`` (no grad, chunked, in eval
    mode: dropout would make the behaviour log-probs noisy)."""
    was_training = model.training
    model.eval()
    chunks = []
    for s in range(0, response_ids.shape[0], batch_size):
        sl = slice(s, s + batch_size)
        logits, _ = response_logits(
            model, query_ids[sl], query_mask[sl], response_ids[sl], response_mask[sl], temperature
        )
        chunks.append(token_logprobs(logits, response_ids[sl]) * response_mask[sl])
    model.train(was_training)
    return torch.cat(chunks)


def left_pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) LEFT-padded ids and mask: the last real token sits at column -1, so generation
    continues from it. Pair with ``position_ids_from_mask`` in every forward."""
    width = max(len(x) for x in ids)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return out, mask


def _encode_prompts(tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if any(len(x) == 0 for x in ids):
        bad = [i for i, x in enumerate(ids) if len(x) == 0]
        raise ValueError(f"prompt(s) {bad[:5]} tokenise to nothing; every prompt needs a token")
    query, mask = left_pad(ids, tokenizer.pad_token_id)
    return query.to(device), mask.to(device)


def _cut_at_eos(
    responses: torch.Tensor, eos_id: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask everything after the first EOS (the EOS itself is an action and stays)."""
    is_eos = responses == eos_id
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0  # strictly after the first EOS
    mask = (~after).long()
    return responses.masked_fill(after, pad_id), mask


@torch.no_grad()
def generate_rollout(
    policy,
    ref_policy,
    tokenizer,
    prompts: list[str],
    *,
    n: int = 4,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    metadata: dict[str, list] | None = None,
    generator_seed: int | None = None,
    behaviour_logprobs: bool = True,
) -> Rollout:
    """Sample ``n`` completions for every prompt (batched ``generate``, do_sample, stop at EOS)."""
    if not prompts:
        raise ValueError("generate_rollout needs at least one prompt")
    if n < 1 or max_new_tokens < 1 or temperature <= 0:
        raise ValueError(
            f"need n >= 1, max_new_tokens >= 1, temperature > 0; got {n}, "
            f"{max_new_tokens}, {temperature}"
        )
    device = next(policy.parameters()).device
    repeated = [p for p in prompts for _ in range(n)]
    group = torch.arange(len(prompts)).repeat_interleave(n)
    query, qmask = _encode_prompts(tokenizer, repeated, device)
    was_training = policy.training
    policy.eval()
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    out = policy.generate(
        input_ids=query,
        attention_mask=qmask,
        do_sample=True,
        temperature=temperature,
        top_k=0,  # full softmax: the recomputed log-probs must describe what was sampled
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    policy.train(was_training)
    responses, rmask = _cut_at_eos(
        out[:, query.shape[1] :], tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    # PolicyTrainer recomputes these in its first forward when they are absent (one pass fewer)
    logprobs = (
        sequence_logprobs(policy, query, qmask, responses, rmask, temperature)
        if behaviour_logprobs
        else None
    )
    ref_logprobs = sequence_logprobs(ref_policy, query, qmask, responses, rmask, temperature)
    completions = tokenizer.batch_decode(
        [r[m.bool() & (r != tokenizer.eos_token_id)] for r, m in zip(responses, rmask)],
        skip_special_tokens=True,
    )
    meta = {k: [v for v in vals for _ in range(n)] for k, vals in (metadata or {}).items()}
    for key, vals in (metadata or {}).items():
        if len(vals) != len(prompts):
            raise ValueError(f"metadata {key!r} has {len(vals)} values for {len(prompts)} prompts")
    return Rollout(
        repeated,
        completions,
        group,
        query,
        qmask,
        responses,
        rmask,
        logprobs,
        ref_logprobs,
        temperature,
        meta,
    )


def subset(rollout: Rollout, idx: list[int]) -> Rollout:
    """The samples ``idx`` of a rollout (e.g. those whose RM scored them), same layout."""
    index = torch.as_tensor(idx, dtype=torch.long)

    def rows(t):
        return None if t is None else t[index]

    return Rollout(
        [rollout.prompts[i] for i in idx],
        [rollout.completions[i] for i in idx],
        rollout.group[index],
        rows(rollout.query_ids),
        rows(rollout.query_mask),
        rows(rollout.response_ids),
        rows(rollout.response_mask),
        rows(rollout.logprobs),
        rows(rollout.ref_logprobs),
        rollout.temperature,
        {k: [v[i] for i in idx] for k, v in rollout.metadata.items()},
    )
