"""Selectors that pick one reward model per batch, and normalisers for their feedback.

All selectors satisfy :class:`Bandit`: ``select``, ``scores``, ``probabilities``, ``update``,
``add_arm``, ``remove_arm``, ``state_dict``/``load_state_dict`` and ``num_arms``.
"""

from laser.bandits.base import Bandit
from laser.bandits.baselines import (
    DomainRouter,
    DomainTierRouter,
    FixedArm,
    RandomArm,
    RoundRobin,
)
from laser.bandits.classic import UCB1, EpsilonGreedy, MeanArms
from laser.bandits.exp3 import EXP3
from laser.bandits.linear import LinElim, LinTS, LinUCB, gaussian_argmax_probabilities
from laser.bandits.normalizers import (
    NormalizedBandit,
    Normalizer,
    PercentileNormalizer,
    RunningZScore,
)
from laser.bandits.prior import ArmPrior, apply_prior, fit_prior_means
from laser.bandits.ridge import RidgeArms

__all__ = [
    "EXP3",
    "ArmPrior",
    "UCB1",
    "Bandit",
    "EpsilonGreedy",
    "DomainRouter",
    "DomainTierRouter",
    "FixedArm",
    "LinElim",
    "LinTS",
    "LinUCB",
    "MeanArms",
    "NormalizedBandit",
    "Normalizer",
    "PercentileNormalizer",
    "RandomArm",
    "RidgeArms",
    "RoundRobin",
    "RunningZScore",
    "apply_prior",
    "fit_prior_means",
    "gaussian_argmax_probabilities",
]
