"""Preference pairs formed WITHIN one prompt's samples from reward-model scores (iterative DPO).

Schemes:
- ``best_vs_worst``: per prompt, the top-scored sample vs the lowest-scored one.
- ``laser`` (the LASeR paper): the top-scored sample vs the next-ranked ones, up to
  ``max_pairs`` pairs per prompt.

Ties are explicit: a pair is only formed when chosen scores strictly higher than rejected; a
group whose scores are all equal (or a prompt with one sample) yields no pair. Among equal
scores the earlier sample wins, so results are deterministic.
"""

from __future__ import annotations

import torch


def _groups(group: torch.Tensor) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group.tolist()):
        members.setdefault(int(g), []).append(i)
    return members


def make_pairs(
    group: torch.Tensor, scores: torch.Tensor, scheme: str = "laser", max_pairs: int = 4
) -> list[tuple[int, int]]:
    """(chosen_index, rejected_index) pairs; both indices always share a group id."""
    if group.shape != scores.shape or group.ndim != 1:
        raise ValueError(
            f"group {tuple(group.shape)} and scores {tuple(scores.shape)} must be "
            "matching 1-D tensors"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN/inf; cannot rank samples")
    if scheme not in ("laser", "best_vs_worst"):
        raise ValueError(f"pair scheme must be 'laser' or 'best_vs_worst', got {scheme!r}")
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    pairs = []
    values = scores.tolist()
    for members in _groups(group).values():
        ranked = sorted(members, key=lambda i: (-values[i], i))  # stable: earlier wins ties
        best = ranked[0]
        below = [i for i in ranked[1:] if values[i] < values[best]]
        if not below:
            continue  # degenerate group: nothing is preferred
        if scheme == "best_vs_worst":
            pairs.append((best, below[-1]))
        else:
            pairs.extend((best, i) for i in below[:max_pairs])
    return pairs
