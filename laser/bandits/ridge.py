"""Per-arm (disjoint) ridge regression: the estimator behind LinUCB, LinTS and contextual
epsilon-greedy.

For arm k after t updates (Li et al. 2010, "A contextual-bandit approach to personalized news
article recommendation", Alg. 1; discounted form from Russac, Vernade & Cappe 2019, "Weighted
linear bandits for non-stationary environments", D-LinUCB):

    A_k = l2_lambda * I + sum_s gamma^(t-s) x_s x_s^T        (d, d)
    b_k =                 sum_s gamma^(t-s) r_s x_s           (d,)
    theta_k = A_k^-1 b_k

With gamma = 1 this is plain ridge regression. With gamma < 1 old evidence decays toward the
prior l2_lambda * I, i.e. one update is A <- gamma*A + (1-gamma)*l2_lambda*I + x x^T. The clock
ticks once per ``update`` call, for every arm: an arm that is not played slowly forgets, its
confidence width grows back toward the prior, and it gets re-explored when rewards drift.

Speed. The LASeR code re-inverts every A_k on every decision, O(K d^3). Here each arm keeps
B_k = (A_k - delta_k I)^-1 by Sherman-Morrison rank-one updates, O(d^2):

    (P + x x^T)^-1 = P^-1 - (P^-1 x)(P^-1 x)^T / (1 + x^T P^-1 x)

For gamma = 1, delta = 0 and B = A^-1 exactly. Decay adds (1-gamma)*l2_lambda*I, which is not
rank one; we fold it into the scalar delta instead (B stays exact for P = A - delta I, since
P <- gamma*P + x x^T is rank one after a scalar rescale) and answer A^-1 v exactly by conjugate
gradients preconditioned with B. While delta <= 0.5 * l2_lambda the preconditioned system has
condition number <= 2 (eigenvalues of B A = I + delta P^-1 lie in [1, 2]), so CG needs a
handful of O(d^2) iterations; past that, B is refreshed from A by one Cholesky inverse, i.e.
about every log(0.5)/log(gamma) ticks per arm (34 for gamma = 0.98). For gamma < 0.5 that is
every tick, O(d^3) like the naive method: such short memories suit small d only.

Numerical drift of the rank-one updates is guarded by checking the residual |P (B x) - x| / |x|
every ``check_every`` updates and refreshing B from the exactly maintained A when it exceeds
``drift_tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from laser.bandits.base import check_positive, check_positive_int, check_unit_interval

# B is refreshed once the prior mass missing from it exceeds this share of l2_lambda; 0.5
# bounds the preconditioned CG condition number by 2 (see module docstring).
_REFRESH_RATIO = 0.5
# Below this total decay factor, rebuild B from A rather than divide it by a number near zero.
_TINY_DECAY = 1e-12
_CG_RTOL = 1e-12
_CG_MAX_ITER = 64
# With gamma == 1, contexts are added to A in blocks of this many (one rank-m GEMM instead of
# m rank-one passes over a d x d matrix: at d = 4096 a pass costs ~6 ms on 2 cores).
_A_BLOCK = 32


@dataclass
class _ArmState:
    A: torch.Tensor  # (d, d) design matrix incl. the prior; exact once `pending` is flushed
    b: torch.Tensor  # (d,)
    B: torch.Tensor  # (d, d) inverse of A - delta * I
    delta: float  # prior mass in A but not yet in B
    last_t: int  # clock value the decay was last applied at
    updates: int  # raw number of observations (not discounted)
    pending: list[torch.Tensor] = field(default_factory=list)  # contexts not yet in A
    prior: torch.Tensor | None = None  # the prior mean set by set_prior_mean (kept by refit)


class RidgeArms:
    """Disjoint ridge-regression estimates for ``num_arms`` arms on ``dim``-d contexts.

    ``predict(x)`` returns per-arm ``(mean, width)`` with mean = x . theta_k and
    width = sqrt(x^T A_k^-1 x), both exact to floating point. Runs on ``device`` (a torch
    device; use "cuda" for very large d) in ``dtype`` (float64 by default: the rank-one
    updates need the precision).
    """

    def __init__(
        self,
        num_arms: int,
        dim: int,
        l2_lambda: float = 1.0,
        gamma: float = 1.0,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        drift_tol: float = 1e-8,
        check_every: int = 16,
    ) -> None:
        self.dim = check_positive_int("dim", dim)
        self.l2_lambda = check_positive("l2_lambda", l2_lambda)
        self.gamma = check_unit_interval("gamma", gamma, low_open=True)
        self.device = torch.device(device or "cpu")
        self.dtype = dtype
        self.drift_tol = check_positive("drift_tol", drift_tol)
        self.check_every = check_positive_int("check_every", check_every)
        self.t = 0
        self.refreshes = 0  # how often B was rebuilt from A (for diagnostics and tests)
        self.arms = [self._prior_arm() for _ in range(check_positive_int("num_arms", num_arms))]
        self._cache: tuple[np.ndarray, list[torch.Tensor]] | None = None

    # ----------------------------------------------------------------------------- arms
    @property
    def num_arms(self) -> int:
        return len(self.arms)

    def _prior_arm(self) -> _ArmState:
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        return _ArmState(
            A=self.l2_lambda * eye,
            b=torch.zeros(self.dim, device=self.device, dtype=self.dtype),
            B=eye / self.l2_lambda,
            delta=0.0,
            last_t=self.t,
            updates=0,
        )

    def add_arm(self) -> int:
        self.arms.append(self._prior_arm())
        self._cache = None
        return self.num_arms - 1

    def set_prior_mean(self, k: int, mean: Any) -> None:
        """Give fresh arm ``k`` the prior theta_k ~ N(mean, I / l2_lambda): b_k = l2_lambda *
        mean, so theta_k = mean until data arrive (laser/bandits/prior.py). Only before the
        arm's first update, and only without discounting (the decay would pull b to 0, not
        to the prior)."""
        arm = self.arms[k]
        if arm.updates or self.gamma != 1.0:
            raise ValueError(
                "a prior mean is set on a fresh, undiscounted arm (gamma 1, no updates yet); "
                f"arm {k} has {arm.updates} updates, gamma {self.gamma}"
            )
        mu = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=self.dtype)
        if mu.shape != (self.dim,) or not torch.isfinite(mu).all():
            raise ValueError(f"a prior mean must be {self.dim} finite numbers, got {mu.shape}")
        arm.prior = mu.to(self.device)
        arm.b = self.l2_lambda * arm.prior
        self._cache = None

    def check_refit(self) -> None:
        """Raise unless :meth:`refit` can work here: an undiscounted estimator."""
        if self.gamma != 1.0:
            raise ValueError(
                f"refit replaces each arm's observations, which with bandit.gamma={self.gamma} "
                "are weighted by their age: use gamma 1"
            )

    def refit(self, k: int, X: np.ndarray, r: np.ndarray) -> None:
        """Arm ``k`` as if the rows of ``X`` (n, d) with rewards ``r`` (n,) had been its only
        observations: A = l2_lambda I + X^T X, b = l2_lambda mu + X^T r (mu: its prior mean,
        if one was set), B = A^-1 exactly (Cholesky). For feedback whose past values are
        re-estimated as evidence accrues (``spectral_pooled``'s ``refit``). Undiscounted
        estimators only: with gamma < 1 an observation's weight depends on its age, which a
        set of rows does not carry."""
        self.check_refit()
        Xt, rt = self._tensor(X), self._tensor(r)
        if Xt.ndim != 2 or Xt.shape[1] != self.dim or rt.shape != (Xt.shape[0],):
            raise ValueError(
                f"refit needs X (n, {self.dim}) and rewards (n,), got {tuple(Xt.shape)} and "
                f"{tuple(rt.shape)}"
            )
        if not (torch.isfinite(Xt).all() and torch.isfinite(rt).all()):
            raise ValueError("refit: contexts and rewards must be finite (a NaN feedback value?)")
        old = self.arms[k]
        A = self.l2_lambda * torch.eye(self.dim, device=self.device, dtype=self.dtype)
        A.addmm_(Xt.T, Xt)
        b = Xt.T @ rt
        if old.prior is not None:
            b += self.l2_lambda * old.prior
        B = torch.cholesky_inverse(torch.linalg.cholesky(A))
        self.arms[k] = _ArmState(A, b, B, 0.0, self.t, int(Xt.shape[0]), prior=old.prior)
        self._cache = None

    def remove_arm(self, arm: int) -> None:
        del self.arms[arm]
        self._cache = None

    # ---------------------------------------------------------------------- internals
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=self.dtype).to(self.device)

    def _sync(self, arm: _ArmState) -> None:
        """Apply the decay of every tick since ``arm`` was last touched (closed form)."""
        steps = self.t - arm.last_t
        arm.last_t = self.t
        if steps == 0 or self.gamma == 1.0:
            return
        g = self.gamma**steps
        eye_scale = (1.0 - g) * self.l2_lambda
        self._flush(arm)
        arm.A.mul_(g).diagonal().add_(eye_scale)
        arm.b.mul_(g)
        if g < _TINY_DECAY:
            self._refresh(arm)  # B / g could overflow: rebuild from the (exact) A instead
            return
        arm.B.div_(g)  # (g P)^-1
        arm.delta = g * arm.delta + eye_scale
        if arm.delta > _REFRESH_RATIO * self.l2_lambda:
            self._refresh(arm)

    def _flush(self, arm: _ArmState) -> None:
        """Add the buffered contexts to A: A += X^T X for X = pending, shape (m, d)."""
        if arm.pending:
            X = torch.stack(arm.pending)
            arm.A.addmm_(X.T, X)
            arm.pending.clear()

    def _refresh(self, arm: _ArmState) -> None:
        """Rebuild B = A^-1 exactly (Cholesky: A is symmetric positive definite)."""
        self._flush(arm)
        arm.B = torch.cholesky_inverse(torch.linalg.cholesky(arm.A))
        arm.delta = 0.0
        self.refreshes += 1

    def _solve(self, arm: _ArmState, v: torch.Tensor, Bv: torch.Tensor) -> torch.Tensor:
        """A^-1 v, given Bv = B v. Exact when delta == 0, else preconditioned CG."""
        if arm.delta == 0.0:
            return Bv
        z = Bv.clone()
        r = v - arm.A @ z
        v_norm = torch.linalg.vector_norm(v)
        s = arm.B @ r
        p = s.clone()
        rs = torch.dot(r, s)
        for _ in range(_CG_MAX_ITER):
            if torch.linalg.vector_norm(r) <= _CG_RTOL * v_norm:
                break
            Ap = arm.A @ p
            step = rs / torch.dot(p, Ap)
            z.add_(p, alpha=step.item())
            r.sub_(Ap, alpha=step.item())
            s = arm.B @ r
            rs_new = torch.dot(r, s)
            p = s + (rs_new / rs) * p
            rs = rs_new
        return z

    # -------------------------------------------------------------------------- public
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm ``(mean, width)`` for a checked context ``x`` of shape (d,)."""
        xt = self._tensor(x)
        means, widths, Bxs = [], [], []
        for arm in self.arms:
            self._sync(arm)
            Bx = arm.B @ xt
            z = self._solve(arm, xt, Bx)  # A^-1 x
            means.append(torch.dot(z, arm.b))  # x . theta = x^T A^-1 b = z . b
            widths.append(torch.dot(xt, z).clamp_min(0.0).sqrt())
            Bxs.append(Bx)
        self._cache = (x.copy(), Bxs)  # update() on the same x reuses B x
        return (
            torch.stack(means).cpu().numpy().astype(np.float64),
            torch.stack(widths).cpu().numpy().astype(np.float64),
        )

    def update(self, k: int, x: np.ndarray, reward: float) -> None:
        """Tick the clock, decay arm ``k`` to now, and add the observation (x, reward)."""
        xt = self._tensor(x)  # may raise: do it before any state changes
        cached = self._cache
        self._cache = None
        self.t += 1
        arm = self.arms[k]
        self._sync(arm)
        # With gamma == 1 nothing touched B since predict(x): reuse its B x (saves a matvec).
        if cached is not None and self.gamma == 1.0 and np.array_equal(cached[0], x):
            Bx = cached[1][k]
        else:
            Bx = arm.B @ xt
        denom = 1.0 + torch.dot(xt, Bx).item()
        arm.B.addr_(Bx, Bx, alpha=-1.0 / denom)
        if self.gamma == 1.0:
            arm.pending.append(xt)  # nothing reads A before the next flush
            if len(arm.pending) >= _A_BLOCK:
                self._flush(arm)
        else:
            arm.A.addr_(xt, xt)  # gamma < 1: A is read by every solve, keep it current
        arm.b.add_(xt, alpha=reward)
        arm.updates += 1
        if arm.updates % self.check_every == 0:
            self._check_drift(arm, xt)

    def _check_drift(self, arm: _ArmState, xt: torch.Tensor) -> None:
        self._flush(arm)
        Bx = arm.B @ xt
        residual = arm.A @ Bx - arm.delta * Bx - xt  # P (B x) - x, with P = A - delta I
        x_norm = torch.linalg.vector_norm(xt).item()
        error = torch.linalg.vector_norm(residual).item()
        if x_norm > 0 and not error <= self.drift_tol * x_norm:  # `not <=` also catches NaN
            self._refresh(arm)

    def theta(self, k: int) -> np.ndarray:
        """theta_k = A_k^-1 b_k, the current weight estimate of arm ``k``."""
        arm = self.arms[k]
        self._sync(arm)
        return self._solve(arm, arm.b, arm.B @ arm.b).cpu().numpy()

    def inverse(self, k: int) -> np.ndarray:
        """A_k^-1 as a dense (d, d) array (O(d^3) when gamma < 1: for tests and inspection)."""
        arm = self.arms[k]
        self._sync(arm)
        if arm.delta == 0.0:
            return arm.B.cpu().numpy().copy()
        return torch.cholesky_inverse(torch.linalg.cholesky(arm.A)).cpu().numpy()

    def design(self, k: int) -> np.ndarray:
        """A_k as a dense (d, d) array."""
        arm = self.arms[k]
        self._sync(arm)
        self._flush(arm)
        return arm.A.cpu().numpy().copy()

    # --------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        for arm in self.arms:
            self._flush(arm)  # same matrix, summed now rather than later
        return {
            "dim": self.dim,
            "l2_lambda": self.l2_lambda,
            "gamma": self.gamma,
            "t": self.t,
            "refreshes": self.refreshes,
            "arms": [
                {
                    "A": a.A.cpu().clone(),
                    "b": a.b.cpu().clone(),
                    "B": a.B.cpu().clone(),
                    "delta": a.delta,
                    "last_t": a.last_t,
                    "updates": a.updates,
                    **({} if a.prior is None else {"prior": a.prior.cpu().clone()}),
                }
                for a in self.arms
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("dim", "l2_lambda", "gamma"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"state_dict has {key}={state[key]!r}, this estimator has "
                    f"{key}={getattr(self, key)!r}"
                )
        arms = []
        for a in state["arms"]:
            tensors = {n: a[n].to(self.device, self.dtype).clone() for n in ("A", "b", "B")}
            if tensors["A"].shape != (self.dim, self.dim) or tensors["b"].shape != (self.dim,):
                raise ValueError(f"state_dict arm tensors do not match dim={self.dim}")
            arms.append(
                _ArmState(
                    **tensors,
                    delta=float(a["delta"]),
                    last_t=int(a["last_t"]),
                    updates=int(a["updates"]),
                    prior=None if "prior" not in a else a["prior"].to(self.device, self.dtype),
                )
            )
        self.arms = arms
        self.t = int(state["t"])
        self.refreshes = int(state["refreshes"])
        self._cache = None
