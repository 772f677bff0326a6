"""Routing granularity, a small strategy object of the router core (``laser.routing``):
:class:`PerBatch` (LASeR's rule: one RM for the batch, context = the mean of its prompts'
features) or :class:`PerPrompt` (one RM per prompt, each prompt's own context). Each says how
a decision is made from every rank's contexts, how a signal's value becomes selector updates
(:class:`Credit`), and how every rank's updates are reduced to the ones all ranks apply.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from laser.bandits.base import Bandit
from laser.distributed import Distributed
from laser.features import batch_context
from laser.feedback import Feedback

Groups = dict[int, list[int]]  # arm -> prompt indices


class Credit(NamedTuple):
    """One selector update: ``raw`` None earns the normaliser's floor."""

    arm: int
    context: torch.Tensor
    raw: float | None
    propensity: float


class Granularity(Protocol):
    def choose(
        self, selector: Bandit, xs: list[torch.Tensor]
    ) -> tuple[torch.Tensor | None, list[tuple[Groups, list[float]]]]:
        """(global batch context or None, [(groups, propensities) per rank])."""
        ...

    def credit(
        self, raw: Feedback, prompts: list[int], x: torch.Tensor, context: torch.Tensor | None
    ) -> list[tuple[int, torch.Tensor, float | None]]:
        """(prompt, context, raw value or None) of one arm's selector updates."""
        ...

    def reduce(self, credits: list[Credit], dist: Distributed) -> list[Credit]:
        """Every rank's credits (rank order) -> the updates every rank applies."""
        ...


class PerBatch:
    """One RM for the whole (global) batch; context = mean of the prompts' features."""

    def choose(self, selector, xs):
        context = batch_context(torch.cat(xs))
        arm = selector.select(context)
        prob = float(selector.probabilities(context)[arm])
        return context, [({arm: list(range(len(x)))}, [prob] * len(x)) for x in xs]

    def credit(self, raw, prompts, x, context):
        if isinstance(raw, dict):  # a per-prompt signal: the batch's mean
            if not raw:
                return []
            raw = sum(raw.values()) / len(raw)
        return [(prompts[0], context, raw)]  # the batch's first prompt stands for it

    def reduce(self, credits, dist):
        """Per arm, the mean over ranks at the (global) batch context: one arm for the chosen
        RM's credits, one per RM for a full-information signal's others."""
        if not dist.enabled or not credits:
            return credits
        out = []
        for arm in dict.fromkeys(c.arm for c in credits):
            mine = [c for c in credits if c.arm == arm]
            values = [c.raw for c in mine if c.raw is not None]
            mean = sum(values) / len(values) if values else None
            out.append(Credit(arm, mine[0].context, mean, mine[0].propensity))
        return out


class PerPrompt:
    """One RM per prompt, from the prompt's own context."""

    def choose(self, selector, xs):
        out = []
        for x in xs:
            groups: Groups = {}
            probs = []
            for i in range(x.shape[0]):
                arm = selector.select(x[i])
                probs.append(float(selector.probabilities(x[i])[arm]))
                groups.setdefault(arm, []).append(i)
            out.append((groups, probs))
        return None, out

    def credit(self, raw, prompts, x, context):
        if isinstance(raw, dict):  # prompts the signal left out: nothing learnt about them
            return [(p, x[p], raw[p]) for p in prompts if p in raw]
        return [(p, x[p], raw) for p in prompts]

    def reduce(self, credits, dist):
        return credits
