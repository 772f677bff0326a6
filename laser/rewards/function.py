"""Rule-based reward functions as arms: exact-match verifiers, format checks, length rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from laser.rewards.base import check_scores


class FunctionReward:
    """Wrap ``fn(prompts, completions, **metadata) -> list[float]`` as a RewardModel.

    The signature is the one TRL's GRPO reward functions use, so those work unchanged:
    ``fn`` is called as ``fn(prompts=prompts, completions=completions, **metadata)``.
    A rule's output is checked like any RM's (count, finiteness); ``None`` entries (TRL's
    "not applicable") are rejected rather than guessed.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionReward needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function_reward")
        self.forward_samples = 0

    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        out = self.fn(prompts=list(prompts), completions=list(completions), **metadata)
        self.forward_samples += len(prompts)
        return check_scores(self.name, out, len(prompts))

    def __repr__(self) -> str:
        return f"FunctionReward({self.name!r})"
