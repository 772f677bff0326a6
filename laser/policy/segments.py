"""Dense rewards for PPO/A2C from a segment-level RM: each segment's score at the token where
the segment ends (the rest of the response gets 0)."""

from __future__ import annotations

import torch

from laser.policy.rollout import Rollout


def place_segment_rewards(
    rollout: Rollout, tokenizer, segment_ends: list[list[int]], segment_scores: list[torch.Tensor]
) -> torch.Tensor:
    """Dense (B, R) rewards: each segment's score at the token where the segment ends.

    ``segment_ends[i]`` are character offsets (exclusive) into ``rollout.completions[i]``;
    the score goes to the first response token whose decoded prefix reaches that offset.
    """
    B, R = rollout.response_ids.shape
    dense = torch.zeros(B, R)
    for i in range(B):
        if len(segment_ends[i]) != len(segment_scores[i]):
            raise ValueError(
                f"sample {i}: {len(segment_ends[i])} segment ends but "
                f"{len(segment_scores[i])} scores"
            )
        length = int(rollout.response_mask[i].sum())
        ids = rollout.response_ids[i, :length].tolist()
        prefix_lengths = [
            len(tokenizer.decode(ids[: t + 1], skip_special_tokens=True)) for t in range(length)
        ]
        for end, score in zip(segment_ends[i], segment_scores[i]):
            t = next((t for t, n in enumerate(prefix_lengths) if n >= end), length - 1)
            dense[i, max(t, 0)] += float(score)
    return dense
