"""Reward-model training losses: pure functions on score tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Pairwise Bradley-Terry loss, mean over pairs.

        L = -mean( log sigmoid(r_c - r_r - m) )

    (Bradley & Terry 1952; Ouyang et al. 2022, eq. 1; the margin m as in Llama 2, Touvron et
    al. 2023, eq. 2). Uses ``logsigmoid`` for stability at large gaps. Shapes: (B,) each; the
    margin broadcasts.
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(
            f"r_chosen {tuple(r_chosen.shape)} and r_rejected {tuple(r_rejected.shape)} differ"
        )
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def segment_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked mean squared error between predicted and target per-segment scores.

        L = sum_i mask_i (pred_i - target_i)^2 / sum_i mask_i

    The segment-level rating loss: each segment (a step of a solution, a sentence) has its own
    target score, padding segments have mask 0. Shapes: (B, S) or any matching shape.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    sq = (pred - target) ** 2
    if mask is None:
        return sq.mean()
    mask = mask.to(sq.dtype)
    if mask.shape != sq.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match pred {tuple(pred.shape)}")
    count = mask.sum()
    if count <= 0:
        raise ValueError("segment_regression_loss: the mask selects no segment")
    return (sq * mask).sum() / count


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of pairs where the chosen response scores strictly higher."""
    return float((r_chosen > r_rejected).float().mean().item())
