"""What one policy update reports, under the fixed metric names."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class StepStats:
    """Averages over the update's minibatches and epochs.

    ``train_loss`` is the policy part of the training loss averaged over the update: DPO + NLL
    for DPO (the LASeR paper's bandit feedback is minus this), the clipped surrogate / actor
    loss for PPO / A2C. The value loss is left out on purpose: it measures the critic's fit to
    the reward scale, and feedback built on it would favour RMs with small, flat rewards.

    ``skipped`` is True when there was nothing to learn from (DPO with no valid pair); then no
    optimiser step was taken and the loss fields are None.
    """

    loss: float | None
    pg_loss: float | None
    value_loss: float | None
    entropy: float | None
    approx_kl: float | None
    clipfrac: float | None
    kl_ref: float | None  # mean per-sequence KL(pi || ref) of the rollout (k1, summed over
    # tokens); None for DPO on a rollout generated without behaviour log-probs
    reward_mean: float
    reward_std: float
    train_loss: float | None
    num_pairs: int = 0
    skipped: bool = False
    # DPO: {prompt group id: mean loss of its pairs} before the update, for per-prompt
    # bandit credit; None for PPO/A2C (their surrogate loss has no per-prompt meaning)
    group_loss: dict[int, float] | None = None

    @classmethod
    def no_update(cls, common: dict, skipped: bool) -> StepStats:
        """The stats of a DPO step without a pair on this rank (no loss to report);
        ``common``: the reward and KL fields every update reports."""
        none = dict.fromkeys(("loss", "pg_loss", "value_loss", "entropy", "approx_kl", "clipfrac"))
        return cls(**none, **common, train_loss=None, num_pairs=0, skipped=skipped)

    def metrics(self) -> dict[str, float]:
        """``policy/*`` metrics (None fields are left out)."""
        names = {
            "loss": "policy/loss",
            "pg_loss": "policy/pg_loss",
            "value_loss": "policy/value_loss",
            "entropy": "policy/entropy",
            "approx_kl": "policy/approx_kl",
            "clipfrac": "policy/clipfrac",
            "kl_ref": "policy/kl_ref",
        }
        values = asdict(self)
        return {
            metric: float(values[key]) for key, metric in names.items() if values[key] is not None
        }
