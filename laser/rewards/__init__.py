"""Reward models: one interface for every RM, training losses and loops, ensembles."""

from laser.rewards.base import RewardModel, RewardModelError, score_checked
from laser.rewards.ensembles import (
    AgreementEnsemble,
    MeanEnsemble,
    MinEnsemble,
    UncertaintyEnsemble,
)
from laser.rewards.function import FunctionReward
from laser.rewards.hf import HFRewardModel, reward_model_from_causal_lm
from laser.rewards.likelihood import LikelihoodRewardModel
from laser.rewards.losses import bradley_terry_loss, pairwise_accuracy, segment_regression_loss

__all__ = [
    "AgreementEnsemble",
    "FunctionReward",
    "HFRewardModel",
    "LikelihoodRewardModel",
    "MeanEnsemble",
    "MinEnsemble",
    "RewardModel",
    "RewardModelError",
    "UncertaintyEnsemble",
    "bradley_terry_loss",
    "pairwise_accuracy",
    "reward_model_from_causal_lm",
    "score_checked",
    "segment_regression_loss",
]
