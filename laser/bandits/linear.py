"""Contextual linear bandits: LinUCB (optimism), LinElim (uniform over the arms the confidence
bounds keep) and LinTS (posterior sampling).

All share the disjoint ridge estimator :class:`~laser.bandits.ridge.RidgeArms`; they differ
only in the exploration rule applied to its per-arm (mean, width).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import integrate
from scipy.stats import norm

from laser.bandits.base import (
    EstimatorSelector,
    argmax_distribution,
    argmax_ties,
    check_arm,
    check_context,
    check_positive,
    check_reward,
    check_update_magnitude,
    make_rng,
)
from laser.bandits.ridge import RidgeArms


class _LinearBandit(EstimatorSelector):
    """Shared plumbing: a RidgeArms estimator, input checks, arm management and state.

    ``prior_reward`` m: the reward every arm is expected to earn before any data. The ridge
    model is fitted to r - m and predicts m + x . theta_k, so an arm with no data at x
    predicts m there instead of 0. Why: the ridge prior theta ~ N(0, .) puts an untried arm
    at reward 0, the worst value of feedback normalised to [0, 1]; once any arm has earned
    more, a narrow posterior (LinTS with a small v) almost never draws an untried one above
    it, and the first adequate arm keeps the context for good. With m = 0.5, the
    normaliser's midpoint, an untried arm is drawn above any arm whose feedback is below the
    median (tests/test_selectors.py: 13 of 20 seeds lock in at m = 0, none at 0.5). On the
    built-in worlds m = 0.5 did NOT help LASER's default and is not its default: DPO -0.16
    and -0.22 on worlds 0 and 1 (experiments/results/full/README.md)."""

    def __init__(
        self,
        num_arms: int,
        dim: int,
        l2_lambda: float,
        gamma: float,
        seed: int | None,
        device: str | torch.device | None,
        prior_reward: float = 0.0,
    ) -> None:
        self.estimator = RidgeArms(num_arms, dim, l2_lambda, gamma, device=device)
        self.dim = self.estimator.dim
        self.rng = None if seed is None else make_rng(seed)
        try:
            self.prior_reward = check_reward(prior_reward)
        except ValueError as exc:
            raise ValueError(f"prior_reward: {exc}") from None

    def _offset_hparams(self) -> dict[str, Any]:
        """``prior_reward`` in the checkpoint's hyperparameters only when set, so checkpoints
        written before it existed still load."""
        return {"prior_reward": self.prior_reward} if self.prior_reward else {}

    def _predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        mean, width = self.estimator.predict(check_context(x, self.dim))
        return mean + self.prior_reward, width

    def update(self, arm: int, x: Any, reward: float) -> None:
        arm = check_arm(arm, self.num_arms)
        xv = check_context(x, self.dim)
        r = check_reward(reward)
        check_update_magnitude(xv, r)
        self.estimator.update(arm, xv, r - self.prior_reward)

    def check_refit(self) -> None:
        """Raise unless :meth:`refit` can work on this selector (an undiscounted estimator)."""
        self.estimator.check_refit()

    def refit(self, arm: int, X: Any, rewards: Any) -> None:
        """Replace ``arm``'s observations by the rows of ``X`` (n, d) with ``rewards`` (n,):
        the ridge fit as if those had been its only updates (its prior mean kept). For
        feedback whose past values are re-estimated (``spectral_pooled``'s ``refit``)."""
        self.check_refit()  # LinTS v="auto" too; the estimator checks the rows
        arm = check_arm(arm, self.num_arms)
        rs = np.asarray(rewards, dtype=np.float64) - self.prior_reward
        self.estimator.refit(arm, np.asarray(X, dtype=np.float64), rs)

    def theta(self, arm: int) -> np.ndarray:
        """The current weight estimate theta_k = A_k^-1 b_k of ``arm`` (of the reward minus
        ``prior_reward``)."""
        return self.estimator.theta(check_arm(arm, self.num_arms))


class LinUCB(_LinearBandit):
    """Disjoint LinUCB (Li et al. 2010, Alg. 1), optionally discounted (gamma < 1, D-LinUCB).

        score_k(x) = x . theta_k + alpha * sqrt(x^T A_k^-1 x)

    Deterministic: ties go to the lowest index, unless ``seed`` is given, in which case they
    are broken uniformly at random. ``probabilities`` is the matching one-hot (or uniform over
    the tied arms). ``device="cuda"`` keeps the per-arm matrices on the GPU for large d.
    The LASeR authors' code uses alpha = 0.1 with l2_lambda = 1.
    """

    def __init__(
        self,
        num_arms: int,
        dim: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        seed: int | None = None,
        device: str | torch.device | None = None,
        prior_reward: float = 0.0,
    ) -> None:
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        super().__init__(num_arms, dim, l2_lambda, gamma, seed, device, prior_reward)

    def _hparams(self) -> dict[str, Any]:
        e = self.estimator
        out = {"dim": self.dim, "alpha": self.alpha, "l2_lambda": e.l2_lambda, "gamma": e.gamma}
        return out | self._offset_hparams()

    def scores(self, x: Any) -> np.ndarray:
        mean, width = self._predict(x)
        return mean + self.alpha * width

    def select(self, x: Any) -> int:
        return argmax_ties(self.scores(x), self.rng)

    def probabilities(self, x: Any) -> np.ndarray:
        return argmax_distribution(self.scores(x), random_ties=self.rng is not None)


class LinElim(LinUCB):
    """Contextual action elimination: uniformly at random among the arms that LinUCB's
    confidence bounds do not rule out (Even-Dar, Mannor & Mansour 2006, "Action elimination
    and stopping conditions for the multi-armed bandit", in the disjoint linear setting of
    Li et al. 2010):

        U_k(x) = x . theta_k + alpha * sqrt(x^T A_k^-1 x),   L_k(x) = x . theta_k - alpha * ...
        P(x)   = {k : U_k(x) >= max_j L_j(x)}                (the plausibly best arms)
        select(x) ~ Uniform(P(x)),   probabilities(x) = 1[k in P(x)] / |P(x)|

    Why, for reward-model selection: a policy trained on ONE RM learns to exploit that RM's
    particular errors (reward over-optimisation: Gao et al. 2023, arXiv 2210.10760; Coste et
    al. 2024, arXiv 2310.02743, where ensembles resist it). LinUCB commits each context to a
    single RM once the bounds part, even when two RMs are equally good as far as the feedback
    can tell; this rule keeps sharing such a context among all of them (each prompt still
    scored by one RM: 1/K of the ensemble's cost) and stops sending it to the RMs whose
    upper bound falls below another's lower bound. Cold, every arm is plausible: uniform.
    """

    def __init__(
        self,
        num_arms: int,
        dim: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        prior_reward: float = 0.0,
    ) -> None:
        super().__init__(num_arms, dim, alpha, l2_lambda, gamma, seed, device, prior_reward)
        if self.rng is None:  # the draw among plausible arms needs one
            self.rng = make_rng(None)

    def plausible(self, x: Any) -> np.ndarray:
        """(K,) bool: arms whose upper bound reaches the best lower bound."""
        mean, width = self._predict(x)
        return mean + self.alpha * width >= (mean - self.alpha * width).max()

    def scores(self, x: Any) -> np.ndarray:
        """The upper bounds, -inf for eliminated arms (``select`` does not maximise them)."""
        mean, width = self._predict(x)
        return np.where(self.plausible(x), mean + self.alpha * width, -np.inf)

    def select(self, x: Any) -> int:
        return int(self.rng.choice(np.flatnonzero(self.plausible(x))))

    def probabilities(self, x: Any) -> np.ndarray:
        keep = self.plausible(x)
        return keep / keep.sum()


# v="auto": the noise scale starts at the class default v = 1 (one pseudo-observation of
# variance 1) and moves to the feedback's estimated noise.
PRIOR_NOISE_VAR = 1.0
PRIOR_NOISE_COUNT = 1.0


class NoiseScale:
    """The feedback's noise standard deviation, estimated online as Bayesian linear
    regression does: with the prior theta_k ~ N(0, sigma^2 / l2_lambda I), the next reward's
    predictive distribution is N(x . theta_k, sigma^2 (1 + w^2)), w^2 = x^T A_k^-1 x, so each
    one-step prediction error e (before the update that uses it) gives the unbiased
    e^2 / (1 + w^2) of sigma^2. Pooled over arms, discounted like the ridge estimator (S <-
    gamma S + e^2 / (1 + w^2), n <- gamma n + 1):

        sigma_hat^2 = (PRIOR_NOISE_COUNT * PRIOR_NOISE_VAR + S) / (PRIOR_NOISE_COUNT + n)

    With gamma = 1 the sum S is exactly y^T y - b^T A^-1 b per arm (the sequential form of the
    quadratic in the marginal likelihood), and sigma_hat^2 is the posterior b_n / a_n of the
    Normal-inverse-gamma model with a_0 = b_0 = 1/2 (Bishop 2006, Sec. 3.3; the "LinFullPost"
    of Riquelme, Tucker & Snoek 2018, arXiv 1802.09127), used here as a plug-in scale.
    """

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma
        self.sq = 0.0
        self.n = 0.0

    def add(self, error: float, width: float) -> None:
        """One prediction error and the prediction's width w = sqrt(x^T A_k^-1 x)."""
        self.sq = self.gamma * self.sq + error * error / (1.0 + width * width)
        self.n = self.gamma * self.n + 1.0

    @property
    def value(self) -> float:
        return float(
            np.sqrt((PRIOR_NOISE_COUNT * PRIOR_NOISE_VAR + self.sq) / (PRIOR_NOISE_COUNT + self.n))
        )

    def state(self) -> list[float]:
        return [self.sq, self.n]

    def load(self, state: Any) -> None:
        sq, n = (float(v) for v in state)
        if not (np.isfinite(sq) and np.isfinite(n) and sq >= 0 and n >= 0):
            raise ValueError(f"noise state must be two finite numbers >= 0, got {state!r}")
        self.sq, self.n = sq, n


class LinTS(_LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013) on disjoint arms.

    Each arm's weights have the posterior N(theta_k, v^2 A_k^-1). Only x . theta_k is ever
    used, so instead of a d-dimensional draw (an O(d^3) factorisation) we draw its exact
    marginal, the scalar N(x . theta_k, v^2 x^T A_k^-1 x): the same selection distribution at
    O(d^2) per arm.

    ``v`` is the noise scale of the feedback (Agrawal & Goyal's R, the Bayesian posterior's
    sigma). ``v="auto"`` estimates it online (:class:`NoiseScale`): a fixed v far below the
    feedback's noise makes the posterior overconfident, so the first lucky draws decide an
    arm for good; far above it, the draws stay close to uniform.

    ``scores(x)`` is one fresh posterior draw per arm; ``select(x)`` the argmax of a fresh draw.
    ``probabilities(x)`` is P(arm k has the largest draw) for independent Gaussians, computed
    by adaptive 1-D quadrature (scipy ``quad``, absolute error below 1e-8 per arm), not by
    sampling; it consumes no randomness.
    """

    def __init__(
        self,
        num_arms: int,
        dim: int,
        v: float | str = 1.0,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        prior_reward: float = 0.0,
    ) -> None:
        if isinstance(v, str) and v != "auto":
            raise ValueError(f"v must be a finite number > 0 or 'auto', got {v!r}")
        self.v = v if v == "auto" else check_positive("v", v)
        super().__init__(num_arms, dim, l2_lambda, gamma, seed, device, prior_reward)
        self.noise = NoiseScale(self.estimator.gamma) if v == "auto" else None
        if self.rng is None:
            self.rng = make_rng(None)

    def _hparams(self) -> dict[str, Any]:
        e = self.estimator
        out = {"dim": self.dim, "v": self.v, "l2_lambda": e.l2_lambda, "gamma": e.gamma}
        return out | self._offset_hparams()

    @property
    def scale(self) -> float:
        """The posterior's noise scale now: ``v``, or its running estimate with v="auto"."""
        return self.v if self.noise is None else self.noise.value

    def update(self, arm: int, x: Any, reward: float) -> None:
        if self.noise is None:
            super().update(arm, x, reward)
            return
        arm, r = check_arm(arm, self.num_arms), check_reward(reward)
        mean, width = self._predict(x)  # before the update (which reuses this predict)
        super().update(arm, x, reward)
        self.noise.add(r - mean[arm], width[arm])

    def check_refit(self) -> None:
        super().check_refit()
        if self.noise is not None:
            raise ValueError(
                "LinTS v='auto' estimates the feedback's noise from the updates in order; refit "
                "replaces them each step: set v to a number"
            )

    def _state(self) -> dict[str, Any]:
        if self.noise is None:
            return super()._state()
        return {"ridge": super()._state(), "noise": self.noise.state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        if self.noise is None:
            super()._load_state(state)
            return
        noise = NoiseScale(self.noise.gamma)
        noise.load(state["noise"])  # validated before anything is assigned
        super()._load_state(state["ridge"])
        self.noise = noise

    def scores(self, x: Any) -> np.ndarray:
        mean, width = self._predict(x)
        return mean + self.scale * width * self.rng.standard_normal(mean.shape[0])

    def select(self, x: Any) -> int:
        return argmax_ties(self.scores(x), self.rng)

    def probabilities(self, x: Any) -> np.ndarray:
        mean, width = self._predict(x)
        return gaussian_argmax_probabilities(mean, self.scale * width)


# The vectorised rule below resolves a CDF whose width (s_j / s_k in units of u) is at least
# GRID_MIN_RATIO with >= 4 grid steps; narrower ones fall back to adaptive quadrature.
GRID_MIN_RATIO = 0.02
_GRID = np.linspace(-12.0, 12.0, 4801)  # step 0.005


def _argmax_probabilities_on_grid(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """All-Gaussian case, vectorised: P(k) = int phi(u) prod_{j != k} Phi((m_k + s_k u - m_j)
    / s_j) du by Simpson's rule on a fixed grid (about 1 ms for K = 4, against ~100 ms for
    per-arm ``quad``; agreement with it to 1e-7 is tested)."""
    values = means[:, None] + stds[:, None] * _GRID[None, :]  # (K, U): arm k's draw at u
    z = (values[:, None, :] - means[None, :, None]) / stds[None, :, None]  # (K, K, U)
    log_cdf = norm.logcdf(z)
    k = np.arange(means.shape[0])
    log_cdf[k, k, :] = 0.0  # arm k is not compared with itself
    integrand = norm.pdf(_GRID)[None, :] * np.exp(log_cdf.sum(axis=1))  # (K, U)
    probs = integrate.simpson(integrand, x=_GRID, axis=-1)
    total = probs.sum()
    return probs / total if total > 0 else np.full(means.shape[0], 1.0 / means.shape[0])


def gaussian_argmax_probabilities(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """P(argmax_j Z_j = k) for independent Z_j ~ N(means_j, stds_j^2).

    P(k) = E_{u ~ N(0,1)} prod_{j != k} Phi((m_k + s_k u - m_j) / s_j). Arms with s = 0 are
    point masses: one wins only if no point mass lies above it and every Gaussian falls below
    it, and point masses tied at the same value share that chance equally (the uniform
    tie-breaking of ``select``). Gaussians tie with probability 0.
    """
    means = np.asarray(means, dtype=np.float64)
    stds = np.asarray(stds, dtype=np.float64)
    point = stds <= 0
    if not point.any() and stds.min() >= GRID_MIN_RATIO * stds.max():
        return _argmax_probabilities_on_grid(means, stds)

    def gaussians_below(value: float, k: int) -> float:
        prob = 1.0
        for j in np.flatnonzero(~point):
            if j != k:
                prob *= norm.cdf((value - means[j]) / stds[j])
        return prob

    def point_masses_allow(value: float, k: int) -> float:
        """1 / (number of tied point masses incl. k) if none is above ``value``, else 0."""
        others = means[point & (np.arange(means.shape[0]) != k)]
        if np.any(others > value):
            return 0.0
        if not point[k]:
            return 1.0  # a Gaussian draw equals a point mass with probability 0
        return 1.0 / (1 + int(np.sum(others == value)))

    probs = np.empty(means.shape[0])
    for k in range(means.shape[0]):
        if point[k]:
            probs[k] = point_masses_allow(means[k], k) * gaussians_below(means[k], k)
            continue

        def integrand(u: float, k: int = k) -> float:
            value = means[k] + stds[k] * u
            return norm.pdf(u) * point_masses_allow(value, k) * gaussians_below(value, k)

        probs[k] = integrate.quad(integrand, -12.0, 12.0, epsabs=1e-10, limit=200)[0]
    total = probs.sum()
    return probs / total if total > 0 else np.full(means.shape[0], 1.0 / means.shape[0])
