"""The reward-model interface every arm satisfies, and the checks applied to its output.

An RM maps (prompt, completion) pairs to one float each. LASER calls it only when the selector
picks it, so a broken RM must fail loudly with its name, not poison a policy update.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


class RewardModelError(RuntimeError):
    """A reward model failed or returned unusable scores; the message names the RM."""


@runtime_checkable
class RewardModel(Protocol):
    """``name`` and ``score(prompts, completions, **metadata) -> Tensor (B,) float32 on CPU``.

    ``metadata`` carries per-sample columns (e.g. ``answer=[...]`` for a verifier); RMs that do
    not need it ignore it. Segment-level RMs may also offer
    ``score_segments(prompts, completions, segments) -> list[Tensor]`` (see ``HFRewardModel``).
    Our RMs also count ``forward_samples``, the samples they have run forward on.
    """

    name: str

    def score(
        self, prompts: list[str], completions: list[str], **metadata: Any
    ) -> torch.Tensor: ...


def check_batch(name: str, prompts: Sequence[str], completions: Sequence[str]) -> None:
    """Prompts and completions must be equal-length lists of strings."""
    if len(prompts) != len(completions):
        raise RewardModelError(
            f"reward model {name!r}: got {len(prompts)} prompts but {len(completions)} completions"
        )
    for what, items in (("prompt", prompts), ("completion", completions)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise RewardModelError(
                    f"reward model {name!r}: {what} {i} is {type(item).__name__}, expected str"
                )


def _as_float(name: str, position: int, value: Any) -> float:
    """A real number of any numeric type (int, float, numpy scalar, 0-d tensor), else error."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise RewardModelError(
            f"reward model {name!r} returned a non-number at position {position}: {value!r}"
        )
    return float(value)


def check_scores(name: str, scores: Any, expected: int) -> torch.Tensor:
    """Return ``scores`` as a (B,) float32 CPU tensor, or raise RewardModelError naming the RM."""
    if isinstance(scores, torch.Tensor):
        values = scores.detach().to("cpu", torch.float32).reshape(-1)
    else:
        try:
            raw = list(scores)
        except TypeError:
            raise RewardModelError(
                f"reward model {name!r} returned {type(scores).__name__}, expected a list of "
                "floats or a tensor"
            ) from None
        values = torch.tensor(
            [_as_float(name, i, v) for i, v in enumerate(raw)], dtype=torch.float32
        )
    if values.numel() != expected:
        raise RewardModelError(
            f"reward model {name!r} returned {values.numel()} scores for {expected} samples"
        )
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise RewardModelError(
            f"reward model {name!r} returned a non-finite score ({values[first].item()}) for "
            f"sample {first} ({int((~finite).sum())} of {expected} non-finite)"
        )
    return values


def score_checked(
    rm: RewardModel, prompts: list[str], completions: list[str], **metadata: Any
) -> torch.Tensor:
    """Call ``rm.score`` and validate the result; any failure becomes a RewardModelError.

    This is how the LASER loop calls an RM: an exception inside a user's RM, a NaN, or a wrong
    number of scores all surface with the RM's name and the cause.
    """
    name = getattr(rm, "name", type(rm).__name__)
    check_batch(name, prompts, completions)
    try:
        scores = rm.score(prompts, completions, **metadata)
    except RewardModelError:
        raise
    except Exception as exc:  # a user RM may raise anything; name it and keep the cause
        raise RewardModelError(f"reward model {name!r} raised {type(exc).__name__}: {exc}") from exc
    return check_scores(name, scores, len(prompts))
