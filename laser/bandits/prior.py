"""Offline priors for the linear selectors: each RM's reliability, fitted on preference data
the user already has, loaded into LinUCB / LinTS before the first online step.

BayesianRouter (Wu & Lu, "Reward Model Routing in Alignment", ICLR 2026, arXiv 2510.02850)
fixes LASeR's cold start by giving every arm a Gaussian prior whose mean comes from an offline
router trained on preference data. The disjoint ridge estimator already IS a Gaussian model:
with the prior theta_k ~ N(mu_k, (1/lambda) I) the posterior after t observations is

    A_k = lambda * I + sum_s x_s x_s^T,     b_k = lambda * mu_k + sum_s r_s x_s,
    theta_k = A_k^-1 b_k

so a prior mean enters as b_k's starting value and ``l2_lambda`` is the prior's precision (the
paper's lambda_0, its strength: 1 to 50 there). The offline mean is a ridge fit per arm,

    mu_k = (X^T X + l2 I)^-1 X^T y_k,   y_k[i] = 1 if RM k ranks pair i's chosen answer above
                                                  its rejected one, else 0,

with X the featurizer's contexts of the pairs' prompts. The online feedback the selector
then learns from lies in [0, 1] after the PercentileNormalizer, the scale of y (an agreement
rate). A prior belongs to one featurizer: the random projection of ``features=sentence``
depends on the run seed, so the prior records its featurizer and is refused by another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "laser-arm-prior/1"


def fit_prior_means(contexts: np.ndarray, correct: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Per-arm ridge fit mu_k = (X^T X + l2 I)^-1 X^T y_k of the pairwise correctness.

    ``contexts`` (n, d); ``correct`` (n, K) with entries in {0, 1} (or [0, 1]); returns (K, d).
    """
    X = np.asarray(contexts, dtype=np.float64)
    Y = np.asarray(correct, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"contexts (n, d) and correct (n, K) needed, got {X.shape}, {Y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("contexts and correct must be finite (a NaN feature or score?)")
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    gram = X.T @ X + l2 * np.eye(X.shape[1])
    return np.linalg.solve(gram, X.T @ Y).T


def center_prior_means(means: np.ndarray) -> np.ndarray:
    """mu_k - mean_j mu_j: each RM's reliability RELATIVE to the pool's, for every context
    (predictions are linear in x, so centring the weights centres every prediction).

    Why: the offline target is a pair accuracy (about 0.9 for every good RM) while the online
    feedback is percentile-normalised (about 0.5 on average). Uncentred, a played arm sinks
    toward 0.5 while unplayed arms keep their 0.9 and LinUCB keeps switching to them
    (measured: cold-start routing 0.71 with the prior vs 0.89 without). Centred, an unplayed
    arm sits at 0 like a cold one, and the prior only orders the arms.
    """
    means = np.asarray(means, dtype=np.float64)
    return means - means.mean(axis=0, keepdims=True)


def describe_featurizer(featurizer: Any) -> str:
    """A featurizer's identity: its class, size and seed, nested through wrappers."""
    parts = [type(featurizer).__name__, f"dim={getattr(featurizer, 'dim', '?')}"]
    for key in ("seed", "normalize"):
        if hasattr(featurizer, key):
            parts.append(f"{key}={getattr(featurizer, key)}")
    inner = getattr(featurizer, "inner", None)
    if inner is not None:
        parts.append(describe_featurizer(inner))
    return f"{parts[0]}({', '.join(parts[1:])})"


@dataclass
class ArmPrior:
    """Each named RM's prior mean over the featurizer's contexts, and how it was fitted."""

    names: list[str]
    means: list[list[float]]  # (K, d)
    featurizer: str  # describe_featurizer() of the featurizer it was fitted with
    pairs: int  # preference pairs it was fitted on
    domains: list[str]  # the domains those pairs came from
    pair_accuracy: dict[str, float]  # each RM's mean correctness on them (a sanity read-out)
    centered: bool = False  # means relative to the pool's mean (center_prior_means)

    @property
    def dim(self) -> int:
        return len(self.means[0])

    def save(self, path: str | Path) -> Path:
        """JSON, with a sha256 of its content checked on load."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"format": FORMAT, **asdict(self)}
        text = json.dumps(body, sort_keys=True)
        body["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ArmPrior:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no prior at {path}: fit one with laser-fit-prior")
        try:
            body = json.loads(path.read_text())
            digest = body.pop("sha256")
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{path} is not a LASER prior (corrupt or truncated?)") from exc
        if hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != digest:
            raise ValueError(f"{path}: checksum mismatch, the prior file was altered or corrupted")
        if body.pop("format", None) != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        prior = cls(**body)
        means = np.asarray(prior.means, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != len(prior.names) or not np.isfinite(means).all():
            raise ValueError(f"{path}: means must be finite, one row per RM name")
        return prior


def _linear(selector: Any) -> Any:
    """The linear selector inside any wrapper (NormalizedBandit keeps it as ``.bandit``)."""
    inner = selector
    while not hasattr(inner, "estimator") and hasattr(inner, "bandit"):
        inner = inner.bandit
    if not hasattr(inner, "estimator"):
        raise ValueError(
            f"an offline prior needs a linear selector (LinUCB, LinTS), got {type(inner).__name__}"
        )
    return inner


def apply_prior(selector: Any, prior: ArmPrior, arm_names: list[str], featurizer: Any) -> list:
    """Load ``prior`` into ``selector``'s fresh arms (matched by RM name); returns the names
    that got a prior. Arms the prior does not know stay cold (a prior-free mean of 0)."""
    bandit = _linear(selector)
    if getattr(bandit, "prior_reward", 0.0):
        raise ValueError(
            f"an offline prior predicts the reward itself; this selector models the reward "
            f"minus prior_reward={bandit.prior_reward}: set bandit.prior_reward=0 with a prior"
        )
    described = describe_featurizer(featurizer)
    if prior.featurizer != described:
        raise ValueError(
            f"the prior was fitted with featurizer {prior.featurizer}, this run uses "
            f"{described}: refit it (laser-fit-prior with this run's features and seed)"
        )
    if prior.dim != bandit.dim:
        raise ValueError(f"the prior has dim {prior.dim}, the selector {bandit.dim}")
    known = [n for n in arm_names if n in prior.names]
    if not known:
        raise ValueError(f"the prior knows none of the pool's RMs {arm_names}: {prior.names}")
    for name in known:
        bandit.estimator.set_prior_mean(arm_names.index(name), prior.means[prior.names.index(name)])
    return known
