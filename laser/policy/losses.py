"""Policy-optimisation math as pure functions on tensors. Shapes: B = sequences, T = response
tokens; ``mask`` (B, T) is 1 on real response tokens (right-padded).

References: GAE, Schulman et al. 2016 (eq. 16); PPO, Schulman et al. 2017 (eq. 7, 9); A2C,
Mnih et al. 2016; KL estimators k1/k3, Schulman 2020 "Approximating KL divergence"; DPO,
Rafailov et al. 2023 (eq. 7); IPO, Azar et al. 2023 (eq. 17).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from laser.policy.config import PolicyConfig


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (0 if the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values - mean) / std over the masked positions; masked-out positions become 0."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask.to(values.dtype)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    gae_lambda: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, vectorised over the batch.

        delta_t = r_t + gamma * V_{t+1} - V_t        (V after the last real token = 0)
        A_t = delta_t + gamma * lambda * A_{t+1}
        returns_t = A_t + V_t

    All (B, T). Masked positions contribute nothing and get A = 0, returns = 0.
    """
    m = mask.to(values.dtype)
    rewards, values = rewards * m, values * m
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * gae_lambda * next_adv) * m[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * m


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_coef: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate: mean over tokens of max(-A r, -A clip(r, 1-eps, 1+eps)).

    r = exp(logprobs - old_logprobs). Returns (loss, clipfrac, approx_kl) where clipfrac is the
    share of tokens whose clipped term is active and approx_kl = mean((r - 1) - log r) (k3).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, clipfrac, approx_kl


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_coef: float | None = 0.2,
) -> torch.Tensor:
    """0.5 * mean of max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, +-c).

    ``clip_coef=None`` gives the plain 0.5 * MSE.
    """
    err = (values - returns) ** 2
    if clip_coef is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


def a2c_actor_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Advantage actor-critic policy loss: mean over tokens of -log pi(a_t|s_t) * A_t.

    ``advantages`` must be detached (they come from the critic's baseline)."""
    return masked_mean(-logprobs * advantages, mask)


def entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token entropy of the categorical distributions ``logits`` (B, T, V)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return masked_mean(-(logp.exp() * logp).sum(-1), mask)


def kl_penalty(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1"
) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman 2020).

    k1 = log pi - log pi_ref (unbiased, can be negative); k3 = (ratio - 1) - log ratio with
    ratio = pi_ref / pi (unbiased, always >= 0, lower variance).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kl estimator must be 'k1' or 'k3', got {estimator!r}")


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    kind: str = "sigmoid",
    reduce: bool = True,
) -> torch.Tensor:
    """DPO on sequence log-probs (B,): mean of -logsigmoid(beta * h), with
    h = (pi_c - ref_c) - (pi_r - ref_r). ``kind="ipo"``: mean of (h - 1 / (2 beta))^2.
    ``reduce=False``: the (B,) per-pair losses."""
    h = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)
    if kind == "sigmoid":
        per_pair = -F.logsigmoid(beta * h)
    elif kind == "ipo":
        per_pair = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"dpo loss kind must be 'sigmoid' or 'ipo', got {kind!r}")
    return per_pair.mean() if reduce else per_pair


def nll_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per token of the (chosen) responses: -mean(log pi)."""
    return -masked_mean(logprobs, mask)


def sequence_nll(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) negative log-likelihood per token of each response: -sum(log pi) / length."""
    return -(logprobs * mask).sum(-1) / mask.sum(-1).clamp_min(1)


@torch.no_grad()
def dpo_pair_losses(
    seq: torch.Tensor,
    logprobs: torch.Tensor,
    ref_seq: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    mask: torch.Tensor,
    config: PolicyConfig,
) -> torch.Tensor:
    """(k,) DPO + NLL loss of each pair of a minibatch: the per-pair terms of the loss being
    optimised (``seq``, ``logprobs``: the k chosen rows, then the k rejected ones;
    ``ref_seq``, ``mask``: indexed by ``chosen`` / ``rejected``). The per-prompt bandit
    credit of the paper's loss-based feedback."""
    k = len(chosen)
    pref = dpo_loss(
        seq[:k], seq[k:], ref_seq[chosen], ref_seq[rejected], config.beta, config.dpo_loss, False
    )
    return pref + config.nll_coef * sequence_nll(logprobs[:k].detach(), mask[chosen])
