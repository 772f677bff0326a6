"""Spectral agreement: each RM's reliability from the pool's agreement matrix, without labels.

Parisi, Strino, Nadler & Kluger 2014 ("Ranking and combining multiple predictors without
labeled data", PNAS 111(4), 1253-1258): for predictors whose errors are conditionally
independent, the off-diagonal of the matrix of their +-1 outputs' second moments is rank one,

    M_ij = E[s_i s_j] = c_i c_j   (i != j),   c_i = 2 p_i - 1,

with p_i predictor i's accuracy; Platanios, Blum & Mitchell 2014 ("Estimating accuracy from
unlabeled data") use the same agreement-rate identity. Here a prediction is an RM's order of
a pair of one prompt's samples, s_k(a, b) = sign(r_k(a) - r_k(b)), and p_k is the share of
pairs it orders right.

Why not agreement with a consensus (``consensus_agreement``): grading RM k against the
OTHER RMs' consensus makes the reference worst exactly when a good RM is graded (a good RM is
missing from it), so a noisy generalist can out-agree the best expert; putting k into the
reference lets k agree with its own idiosyncrasies, which favours the RM most unlike the
rest. The rank-one fit estimates c_k from products of the other entries (c_k^2 ~ M_kj M_kl /
M_jl), so no RM grades itself and every RM is graded by one model of the pool.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from laser.consensus import AuditedSignal, PeerAudit, consensus_reference
from laser.feedback import ArmBatch, Counterfactual, Feedback, pairwise_agreement
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel


def pair_signs(scores: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """(K, P) the sign of each RM's order of each unordered pair of the samples ``idx``
    (``scores`` is (K, N)); 0 where the RM scores the pair alike."""
    s = scores[:, idx]
    a, b = torch.triu_indices(len(idx), len(idx), offset=1)
    return torch.sign(s[:, a] - s[:, b])


def agreement_matrix(signs: torch.Tensor) -> torch.Tensor:
    """(K, K) M_ij = mean over pairs of s_i * s_j: 1 for RMs that order every pair alike,
    -1 for opposite orders, 0 for unrelated ones (and for an RM that ties every pair)."""
    return signs.double() @ signs.double().T / max(signs.shape[1], 1)


def rank_one_fit(m: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """c (K,) minimising sum_{i != j} (M_ij - c_i c_j)^2, the off-diagonal rank-one model.

    Started from the leading eigenvector of M with each diagonal entry replaced by its row's
    mean off-diagonal value, then coordinate descent: c_i = sum_j M_ij c_j / sum_j c_j^2 over
    j != i (each step is exact least squares in c_i). The sign of c is not identified by M;
    it is chosen so that sum(c) >= 0: the pool beats chance on average, the assumption every
    label-free estimate needs. K >= 3 is needed (with K = 2 only c_1 c_2 is identified)."""
    k = m.shape[0]
    if k < 3:
        raise ValueError(f"a rank-one fit needs at least 3 RMs, got {k}")
    off = ~torch.eye(k, dtype=torch.bool)
    start = m.clone().double()
    start[~off] = (m.double() * off).sum(1) / (k - 1)
    values, vectors = torch.linalg.eigh(start)
    c = vectors[:, -1] * values[-1].clamp_min(0.0).sqrt()
    for _ in range(iters):
        for i in range(k):
            denom = float((c[off[i]] ** 2).sum())
            if denom > 0:
                c[i] = (m[i, off[i]].double() * c[off[i]]).sum() / denom
    return -c if float(c.sum()) < 0 else c


def rank_one_fit_batch(m: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """:func:`rank_one_fit` of each of ``m``'s (P, K, K) matrices at once -> (P, K): the same
    start, the same coordinate descent, the same sign rule, vectorised over P (the refit
    re-grades every audited context each step). Equal to the one-matrix fit to rounding
    (tests/test_refit.py); kept apart from it so that runs which never refit keep their
    arithmetic to the last bit."""
    p, k = m.shape[0], m.shape[-1]
    if k < 3:
        raise ValueError(f"a rank-one fit needs at least 3 RMs, got {k}")
    m = m.double()
    off = ~torch.eye(k, dtype=torch.bool)
    start = m.clone()
    start[:, ~off] = (m * off).sum(-1) / (k - 1)
    values, vectors = torch.linalg.eigh(start)
    c = vectors[:, :, -1] * values[:, -1:].clamp_min(0.0).sqrt()
    for _ in range(iters):
        for i in range(k):
            others = c * off[i]
            denom = (others**2).sum(-1)
            step = (m[:, i] * others).sum(-1) / denom.clamp_min(1e-300)
            c[:, i] = torch.where(denom > 0, step, c[:, i])
    flip = c.sum(-1, keepdim=True) < 0
    return torch.where(flip, -c, c) if p else c


class SpectralAgreement(AuditedSignal):
    """Per audited prompt: the chosen RM's reliability c_k = 2 p_k - 1 on that prompt's sample
    pairs, estimated from the agreement matrix of the whole pool (:func:`rank_one_fit`), with
    no labels. The audit (which prompts, the peers' passes, their cost) is the one
    ``consensus_agreement`` uses (:class:`laser.consensus.PeerAudit`). Prompts where the
    chosen RM scores every sample alike carry no information and get no update. With only
    one other working RM (a pool of two, or peers that failed) the rank-one model is not
    identified and the value is the pairwise agreement with that RM instead. Its blind spot,
    shared with every label-free estimate: errors the pool makes together (a bias most of it
    shares) look like the truth.

    ``all_arms``: also return the audited prompts' values of the RMs not chosen (a
    :class:`laser.feedback.Counterfactual`): the fit grades every RM of the audit at once, and
    no value depends on which RM trained on the prompt, so every arm learns from every audit
    at no extra RM cost. A working peer that ties every pair of a prompt gets no value there,
    as the chosen RM does not."""

    name = "spectral_agreement"

    def __init__(
        self,
        pool: dict[str, RewardModel],
        audit: float = 0.25,
        seed: int = 0,
        all_arms: bool = False,
        audit_decay: float | None = None,
    ):
        self.peers = PeerAudit(pool, audit, seed, audit_decay)
        self.all_arms = all_arms

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        groups, peers = self.peers.named_peer_scores(rm, batch, self.name)
        return self.per_prompt_fit(batch, groups, peers)

    def per_prompt_fit(
        self, batch: ArmBatch, groups: dict[int, list[int]], peers: dict[str, torch.Tensor]
    ) -> Feedback:
        """Each audited prompt's value from its own agreement matrix (the chosen RM first)."""
        if not peers:
            return {}
        if len(peers) < 2:  # two RMs: only c_1 c_2 is identified; agreement with the other
            reference = consensus_reference(list(peers.values()), groups)
            return pairwise_agreement(batch.rewards, reference, groups)
        scores = torch.stack([batch.rewards.float(), *peers.values()])  # (K, N), chosen first
        fits = {}
        for prompt, idx in groups.items():
            signs = pair_signs(scores, idx)
            if len(idx) < 2 or not bool(signs[0].abs().sum() > 0):
                continue  # one sample, or the chosen RM ties every pair: nothing to grade
            fits[prompt] = (rank_one_fit(agreement_matrix(signs)), signs.abs().sum(1) > 0)
        return self.graded(fits, ["", *peers], 0)  # row 0, the chosen RM, needs no name

    def graded(
        self, fits: dict[int, tuple[torch.Tensor, torch.Tensor]], names: list[str], chosen: int
    ) -> Feedback:
        """Per prompt, a fit's c (K,) and which RMs ordered any pair -> the chosen RM's values
        (``names[chosen]``), with the other RMs' under ``all_arms``."""
        values = {p: float(c[chosen]) for p, (c, _) in fits.items()}
        if not self.all_arms:
            return values
        others: dict[str, dict[int, float]] = {}
        for j, name in enumerate(names):
            if j != chosen:
                others[name] = {p: float(c[j]) for p, (c, seen) in fits.items() if seen[j]}
        return Counterfactual(values, others)


def label_free_check(signs: torch.Tensor, min_pairs: int = 20) -> dict[str, torch.Tensor] | None:
    """What ``spectral_agreement`` would estimate of each RM on labelled pairs, beside what the
    labels say: a check, before a run, of whether the label-free feedback can be trusted on
    this pool.

    ``signs`` (K, n): sign(r_k(chosen_i) - r_k(rejected_i)), i.e. +1 where RM k orders pair i
    as the label does, -1 against it, 0 for a tie. Returns ``labelled`` (K,), the share of
    pairs each RM orders right (a tie counts half, as it does in c = 2p - 1), and
    ``label_free`` (K,), (1 + c_k) / 2 from :func:`rank_one_fit` of the agreement matrix
    (clipped to [0, 1]: with sampling noise a fitted c can pass 1).
    The second never uses the labels: M_ij = mean s_i s_j is unchanged by swapping a pair's
    chosen and rejected answers. Where the two orders of the RMs differ, the pool's errors
    are not independent (a flaw several RMs share looks like the truth to the fit) and the
    online feedback will favour the wrong RMs. None with fewer than 3 RMs (the fit is not
    identified) or fewer than ``min_pairs`` pairs."""
    if signs.shape[0] < 3 or signs.shape[1] < min_pairs:
        return None
    signs = signs.double()
    labelled = ((signs + 1) / 2).mean(1)
    label_free = ((1 + rank_one_fit(agreement_matrix(signs))) / 2).clamp(0.0, 1.0)
    return {"labelled": labelled, "label_free": label_free}


class ContextAgreement:
    """The pool's agreement matrix as a function of the prompt's context, pooled over every
    audited prompt so far: a ridge regression of each per-prompt entry M_ij on the context,

        A = l2 I + sum_p x_p x_p^T,   B = sum_p vec(M_p) x_p^T,   M(x) = unvec(B A^-1 x),

    one A for all entries (every audit observes every pair of RMs). Why: the per-prompt fit
    sees 28 pairs (8 samples) and, measured on the built-in worlds' SFT samples
    (experiments/signal_bias.py, ``spectral_pooled``), rates a chance-level RM on a hard
    domain within 0.02 of the experts, where the fit on the domain's pooled pairs separates
    them by 0.5.

    ``gamma`` < 1 forgets old audits (weighted least squares, A <- gamma A + (1 - gamma) l2 I
    + x x^T, B <- gamma B + vec(M) x^T, as in D-LinUCB: Russac, Vernade & Cappe 2019): the
    agreements of the policy's samples change as it trains, and an RM the policy has learnt
    to exploit agrees less with the rest on its later samples than on its first ones."""

    def __init__(self, names: list[str], l2: float = 1.0, gamma: float = 1.0):
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        self.names, self.l2, self.gamma = list(names), l2, gamma
        self.A: torch.Tensor | None = None
        self.B: torch.Tensor | None = None

    def update(self, x: torch.Tensor, m: torch.Tensor) -> None:
        x = x.double().flatten()
        if self.A is None:
            self.A = self.l2 * torch.eye(len(x), dtype=torch.float64)
            self.B = torch.zeros(m.numel(), len(x), dtype=torch.float64)
        if self.gamma < 1.0:  # the prior's share of A decays back in: A stays >= l2 I
            self.A.mul_(self.gamma).diagonal().add_((1.0 - self.gamma) * self.l2)
            self.B.mul_(self.gamma)
        self.A += torch.outer(x, x)
        self.B += torch.outer(m.double().flatten(), x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.names)
        if self.A is None:
            return torch.zeros(k, k, dtype=torch.float64)
        return (self.B @ torch.linalg.solve(self.A, x.double().flatten())).reshape(k, k)

    def predict_many(self, xs: torch.Tensor) -> torch.Tensor:
        """M(x) at each row of ``xs`` (P, d) -> (P, K, K), one solve for all."""
        k = len(self.names)
        if self.A is None:
            return torch.zeros(len(xs), k, k, dtype=torch.float64)
        return (self.B @ torch.linalg.solve(self.A, xs.double().T)).T.reshape(-1, k, k)

    def state_dict(self) -> dict[str, Any]:
        out = {"names": self.names, "l2": self.l2, "A": self.A, "B": self.B}
        return out | ({"gamma": self.gamma} if self.gamma < 1.0 else {})  # older files load

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:  # the pool changed: not this pool's agreements
            tqdm.write(
                f"spectral_pooled: the checkpoint's pool {list(state['names'])} is not this "
                f"run's {self.names}; its agreement model starts afresh"
            )
            return
        if float(state.get("gamma", 1.0)) != self.gamma:
            raise ValueError(
                f"spectral_pooled: the checkpoint's agreement model has gamma="
                f"{state.get('gamma', 1.0)}, this run's gamma={self.gamma}"
            )
        self.l2, self.A, self.B = float(state["l2"]), state["A"], state["B"]


class PooledSpectralAgreement(SpectralAgreement):
    """:class:`SpectralAgreement` on the pooled agreement matrix: every audited prompt's
    agreement matrix (all K RMs, pool order) updates :class:`ContextAgreement`, and the chosen
    RM's value is its c from :func:`rank_one_fit` of the model's M(x) at that prompt's context
    x. The fit then sees all the audits of similar prompts instead of one prompt's 28 pairs.
    Same audit and RM cost as ``spectral_agreement``. Its state is checkpointed with the
    router; one process only (each process would pool its own prompts). A step whose audit
    lacks a peer (it failed), a batch without contexts, or a pool of two falls back to the
    per-prompt fit.

    ``refit`` (needs ``all_arms``): the audited contexts are kept, and after every step
    :meth:`current_values` gives every RM's value at all of them from the CURRENT model; the
    router replaces the linear selector's data with those (:meth:`laser.routing.Router.
    refit_selector`). Why: the selector's estimate is otherwise the average of the values the
    model gave at each audit, most of them from a model that had seen a handful of audits of
    that kind; on world 9 it ranked the RMs the other way round from the model at the end of
    the run (README, "Why world 9 fails")."""

    name = "spectral_pooled"

    def __init__(
        self,
        pool: dict[str, RewardModel],
        audit: float = 0.25,
        seed: int = 0,
        l2: float = 1.0,
        all_arms: bool = False,
        audit_decay: float | None = None,
        gamma: float = 1.0,
        refit: bool = False,
    ):
        if refit and not all_arms:
            raise ValueError(
                "spectral_pooled: refit=true grades every RM at every audited context (full "
                "information); it needs all_arms=true"
            )
        super().__init__(pool, audit, seed, all_arms, audit_decay)
        self.model = ContextAgreement(list(pool), l2, gamma)
        self.refit = refit
        self.contexts: list[torch.Tensor] = []  # refit: every graded audit's context (d,)
        self.seen: list[torch.Tensor] = []  # refit: which RMs ordered a pair there (K,)

    @property
    def names(self) -> list[str]:
        """The pool's RM names: the columns of :meth:`current_values`."""
        return self.model.names

    def current_values(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``refit``'s data: every graded audit's context X (P, d), each RM's value there
        from the current model, c = :func:`rank_one_fit_batch` of M(X) (P, K, pool order),
        and which RMs ordered any pair of that prompt (P, K; no value elsewhere). None before
        the first audit."""
        if not self.contexts:
            return None
        xs = torch.stack(self.contexts)
        return xs, rank_one_fit_batch(self.model.predict_many(xs)), torch.stack(self.seen)

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        pool = self.peers.pool
        names = list(pool)
        groups, peers = self.peers.named_peer_scores(rm, batch, self.name)
        if len(names) < 3 or len(peers) != len(names) - 1 or batch.contexts is None:
            return self.per_prompt_fit(batch, groups, peers)  # same audit
        chosen = next(n for n, r in pool.items() if r is rm)
        scores = torch.stack(
            [batch.rewards.float() if n == chosen else peers[n] for n in names]
        )  # (K, N) in pool order
        k = names.index(chosen)
        informative = {}
        for prompt, idx in groups.items():
            signs = pair_signs(scores, idx)
            if len(idx) < 2 or not bool(signs[k].abs().sum() > 0):
                continue  # one sample, or the chosen RM ties every pair: nothing to grade
            self.model.update(batch.contexts[prompt], agreement_matrix(signs))
            informative[prompt] = (batch.contexts[prompt], signs.abs().sum(1) > 0)
            if self.refit:
                self.contexts.append(batch.contexts[prompt].double().flatten().clone())
                self.seen.append(informative[prompt][1].clone())
        fits = {
            p: (rank_one_fit(self.model.predict(x)), seen) for p, (x, seen) in informative.items()
        }
        return self.graded(fits, names, k)

    stateful = True  # its agreement model, whatever the audit

    def state_dict(self) -> dict[str, Any]:
        out = {**self.model.state_dict(), "audit": self.peers.state_dict()}
        if self.refit:  # the audited contexts the selector is refitted on
            k = len(self.names)
            out["refit_contexts"] = (
                torch.stack(self.contexts) if self.contexts else torch.zeros(0, 0)
            )
            out["refit_seen"] = (
                torch.stack(self.seen) if self.seen else torch.zeros(0, k, dtype=bool)
            )
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        kept = "refit_contexts" in state
        if kept != self.refit:
            raise ValueError(
                f"spectral_pooled: the checkpoint was written with refit={kept}, this run has "
                f"refit={self.refit}: the selector's data would not be what it was fitted on"
            )
        same_pool = list(state["names"]) == self.names
        self.model.load_state_dict(state)  # a new pool: the model starts afresh (it says so)
        self.peers.load_state_dict(state.get("audit", {}))  # absent in checkpoints before it
        if self.refit and same_pool:
            self.contexts = [x.double() for x in state["refit_contexts"]]
            self.seen = [s.bool() for s in state["refit_seen"]]
