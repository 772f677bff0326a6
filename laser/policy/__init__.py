"""Policy optimisation: rollouts, PPO / A2C / iterative-DPO losses and the PolicyTrainer."""

from laser.policy.config import PolicyConfig
from laser.policy.pairs import make_pairs
from laser.policy.rollout import Rollout, generate_rollout, sequence_logprobs
from laser.policy.segments import place_segment_rewards
from laser.policy.stats import StepStats
from laser.policy.trainer import PolicyTrainer

__all__ = [
    "PolicyConfig",
    "PolicyTrainer",
    "Rollout",
    "StepStats",
    "generate_rollout",
    "make_pairs",
    "place_segment_rewards",
    "sequence_logprobs",
]
