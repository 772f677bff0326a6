"""Consensus feedback: the chosen RM graded by the rest of the pool, on an audited share of
the prompts, without gold labels.

An audit (:class:`PeerAudit`) picks a pseudo-random share of the prompts and has every other
RM of the pool score their samples; those passes are real RM cost, counted in
``cost/rm_forward_samples``. The share is fixed, or, with ``audit_decay``, falls on the prompts
whose context is new to the RM chosen for them (:class:`AuditNovelty`), so a run's audit cost
stops growing with its length once its choices are settled. What is made of the peers'
scores is the signal's business: ``ConsensusAgreement`` (here) compares the chosen RM's
ranking with the pool's consensus, ``SpectralAgreement`` (``laser.spectral``) estimates its
reliability from the pool's agreement matrix, ``ConsensusPick`` (``laser.bon``) rates its
best-of-n pick.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from laser.bandits.ridge import RidgeArms
from laser.feedback import ArmBatch, Feedback, _Signal, margin_agreement, pairwise_agreement
from laser.policy.stats import StepStats
from laser.rewards.base import RewardModel, RewardModelError, score_checked


def group_zscores(values: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    """``values`` standardised within each group of sample indices (0 where a group is flat):
    RMs of different scales become comparable per prompt."""
    out = torch.zeros_like(values)
    for idx in groups:
        v = values[idx]
        out[idx] = (v - v.mean()) / v.std(unbiased=False).clamp_min(1e-6)
    return out


def consensus_reference(scores: list[torch.Tensor], groups: dict[Any, list[int]]) -> torch.Tensor:
    """The mean over RMs of their per-prompt z-scored scores (each ``(N,)``; 0 outside
    ``groups``): the pool's consensus ranking, each RM weighted alike whatever its scale."""
    if not scores:
        raise ValueError("consensus_reference needs at least one RM's scores")
    members = list(groups.values())
    return torch.stack([group_zscores(s, members) for s in scores]).mean(0)


def audited(prompt: str, share: float, seed: int) -> bool:
    """A fixed pseudo-random ``share`` of prompts, by a hash of (seed, prompt): stateless, so
    a resumed run audits the same prompts as an uninterrupted one."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class AuditNovelty:
    """The audit share of a prompt, by how new its context is to the RM chosen for it:

        share(x, k) = min(audit, audit_decay * x^T V_k^-1 x),   V_k = I + sum x' x'^T

    over the contexts x' of the prompts RM k was chosen for before (audited or not). For a
    context where k was played m times, x^T V_k^-1 x = 1 / (1 + m): the share stays at
    ``audit`` until k is familiar there, then falls as audit_decay / (1 + m), so the audits
    of a settled choice grow like audit_decay * log(m) instead of audit * m. A new kind of
    prompt (a new domain mid-run) and an RM newly chosen for a familiar kind (an exploration
    draw, or a drift of the selector's estimate) are audited at the full share: those are
    the decisions the selector has no evidence for. x^T V_k^-1 x is the ridge's predictive
    variance at x: the epsilon_t = c / t exploration schedule of epsilon-greedy (Auer,
    Cesa-Bianchi & Fischer 2002, "Finite-time analysis of the multiarmed bandit problem",
    Thm. 3: logarithmic regret), counted per context and arm instead of per run; querying
    costly feedback where the current choice is uncertain is selective sampling's rule
    (Cesa-Bianchi, Gentile & Zaniboni 2006, "Worst-case analysis of selective sampling for
    linear classification"). Why per RM: counted over all RMs alike, a familiar domain was
    no longer audited when the selector began to send it to another RM (its estimate there
    had drifted with audits of other domains), and DPO trained on a wrong RM unchecked
    (experiments/results/audit_decay/README.md)."""

    def __init__(self, audit_decay: float):
        if not (isinstance(audit_decay, (int, float)) and np.isfinite(audit_decay)):
            raise ValueError(f"audit_decay must be a positive number or null, got {audit_decay!r}")
        if audit_decay <= 0:
            raise ValueError(f"audit_decay must be > 0 (null: a fixed share), got {audit_decay}")
        self.audit_decay = float(audit_decay)
        self.seen: dict[str, RidgeArms] = {}  # RM name -> its played contexts' Gram matrix

    def shares(self, audit: float, contexts: torch.Tensor, rm: str) -> list[float]:
        """Each context's share (``contexts`` (n, d), in order) for prompts routed to ``rm``,
        each counted as played after its own share is taken: the second of two equal contexts
        in a batch gets less."""
        out = []
        for x in contexts.detach().double().cpu().numpy():
            seen = self.seen.setdefault(rm, RidgeArms(1, len(x)))
            if len(x) != seen.dim:
                raise ValueError(
                    f"audit_decay: a {len(x)}-d context, earlier ones were {seen.dim}-d"
                )
            _, width = seen.predict(x)
            out.append(min(audit, self.audit_decay * float(width[0]) ** 2))
            seen.update(0, x, 0.0)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"seen": {name: ridge.state_dict() for name, ridge in self.seen.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = {}
        for name, saved in state.get("seen", {}).items():
            self.seen[name] = RidgeArms(1, int(saved["dim"]))
            self.seen[name].load_state_dict(saved)


class PeerAudit:
    """Which prompts are audited and the pool's other RMs' scores of their samples. A prompt is
    audited when a hash of (seed, prompt) falls below its share (:func:`audited`): ``audit``,
    or with ``audit_decay`` the share :class:`AuditNovelty` gives its context and RM. A peer that
    fails abstains: it is not the chosen RM's fault, and the audit goes on with the rest."""

    def __init__(
        self,
        pool: dict[str, RewardModel],
        audit: float = 0.25,
        seed: int = 0,
        audit_decay: float | None = None,
    ):
        if not 0.0 < audit <= 1.0:
            raise ValueError(f"audit must lie in (0, 1], got {audit}")
        self.pool, self.audit, self.seed = pool, audit, seed
        self.novelty = None if audit_decay is None else AuditNovelty(audit_decay)

    def audited_prompts(
        self, rm: RewardModel, batch: ArmBatch, signal: str = "audit"
    ) -> dict[int, list[int]]:
        """The audited prompts of the batch ``rm`` was chosen for, and their samples."""
        samples = batch.prompt_samples()
        shares = dict.fromkeys(samples, self.audit)
        if self.novelty is not None:
            if batch.contexts is None:
                raise ValueError(
                    f"{signal}: audit_decay needs each prompt's context, and this batch has "
                    "none (route it through laser.routing.Router, or set audit_decay=null)"
                )
            keys = list(samples)
            name = next((n for n, r in self.pool.items() if r is rm), "")  # "": not pooled
            shares = dict(zip(keys, self.novelty.shares(self.audit, batch.contexts[keys], name)))
        return {
            p: idx
            for p, idx in samples.items()
            if audited(batch.texts[idx[0]], shares[p], self.seed)
        }

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to audit the same prompts: the contexts each RM played."""
        return {} if self.novelty is None else {"novelty": self.novelty.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.novelty is not None and "novelty" in state:
            self.novelty.load_state_dict(state["novelty"])

    def peer_scores(
        self, rm: RewardModel, batch: ArmBatch, signal: str = "audit"
    ) -> tuple[dict[int, list[int]], list[torch.Tensor]]:
        """The audited prompts' samples, and each working peer's (N,) scores of them (0
        elsewhere); every peer pass is counted in that peer's RM cost."""
        groups, named = self.named_peer_scores(rm, batch, signal)
        return groups, list(named.values())

    def named_peer_scores(
        self, rm: RewardModel, batch: ArmBatch, signal: str = "audit"
    ) -> tuple[dict[int, list[int]], dict[str, torch.Tensor]]:
        """:meth:`peer_scores` with each working peer's name (pool order)."""
        groups = self.audited_prompts(rm, batch, signal)
        idx = [i for members in groups.values() for i in members]
        if not idx:
            return {}, {}
        columns = {k: [v[i] for i in idx] for k, v in batch.metadata.items()}
        prompts, completions = [batch.texts[i] for i in idx], [batch.completions[i] for i in idx]
        peers: dict[str, torch.Tensor] = {}
        for name, peer in self.pool.items():
            if peer is rm:
                continue
            try:
                scores = torch.zeros(len(batch.completions))
                scores[idx] = score_checked(peer, prompts, completions, **columns)
            except RewardModelError as exc:
                tqdm.write(f"{signal}: peer {name!r} skipped: {exc}")
                continue
            peers[name] = scores
        return groups, peers


class AuditedSignal(_Signal):
    """A signal built on a :class:`PeerAudit` (``self.peers``): its state is the audit's, and
    it is fitted on its own process's prompts only when ``audit_decay`` is set."""

    peers: PeerAudit

    @property
    def stateful(self) -> bool:
        return self.peers.novelty is not None

    def state_dict(self) -> dict[str, Any]:
        return self.peers.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.peers.load_state_dict(state)


class ConsensusAgreement(AuditedSignal):
    """Per audited prompt: how well the chosen RM's ranking of the prompt's samples agrees
    with the pool's consensus (the mean of per-prompt z-scored scores), on a fixed ``audit``
    share of the prompts.

    Unsupervised reliability from agreement (Dawid & Skene 1979; Platanios et al. 2014,
    "Estimating accuracy from unlabeled data"): with conditionally independent errors the
    expected agreement of RM k with the consensus rises with k's accuracy whenever the pool
    beats chance on average. ``reference`` says which consensus:

    - ``pool`` (default): every RM of the pool, the chosen one included: one reference for
      every arm of a prompt, but each RM agrees with its own 1/K share of it, which lifts the
      RM most unlike the rest most (measured: the noisy generalist gains routing share, and
      world seed 2 ends 0.091 lower under DPO than with ``others``; README).
    - ``others``: the leave-one-out consensus of the OTHER RMs. Its reference changes with the
      arm graded, and is worst exactly when a good RM is graded (a good RM is then missing
      from it) and best when a weak one is: on a domain with two good RMs, a noisy generalist
      can out-agree the best expert (``python -m experiments.signal_bias`` measures it).

    ``weight``: ``margin`` (default) weights each sample pair by the consensus's margin on it
    (:func:`margin_agreement`), so the pairs the pool is sure of decide; ``none`` counts every
    pair alike (:func:`pairwise_agreement`).

    The peers' forward passes are real RM cost (:class:`PeerAudit`; about ``audit * (K - 1)``
    extra passes per sample, less with ``audit_decay``: :class:`AuditNovelty`). Its blind
    spot: a bias most of the pool shares (Eisenstein et al. 2023, "Helping or herding?") wins.
    """

    name = "consensus_agreement"
    REFERENCES = ("pool", "others")
    WEIGHTS = ("margin", "none")

    def __init__(
        self,
        pool: dict[str, RewardModel],
        audit: float = 0.25,
        seed: int = 0,
        reference: str = "pool",
        weight: str = "margin",
        audit_decay: float | None = None,
    ):
        if reference not in self.REFERENCES:
            raise ValueError(f"reference must be one of {self.REFERENCES}, got {reference!r}")
        if weight not in self.WEIGHTS:
            raise ValueError(f"weight must be one of {self.WEIGHTS}, got {weight!r}")
        self.peers = PeerAudit(pool, audit, seed, audit_decay)
        self.reference, self.weight = reference, weight

    def after(
        self, rm: RewardModel, stats: StepStats | None, before: Any, batch: ArmBatch
    ) -> Feedback:
        consensus, groups = self.consensus(rm, batch)
        if not groups:
            return {}
        agreement = margin_agreement if self.weight == "margin" else pairwise_agreement
        return agreement(batch.rewards, consensus, groups)

    def consensus(
        self, rm: RewardModel, batch: ArmBatch
    ) -> tuple[torch.Tensor, dict[int, list[int]]]:
        """(N,) the reference's mean per-prompt z-score of each audited sample, and the
        audited prompts' samples (empty when nothing was audited or no peer could score)."""
        groups, peers = self.peers.peer_scores(rm, batch, self.name)
        if not peers:  # nobody to agree with: the RM's own scores are no evidence
            return torch.zeros(len(batch.completions)), {}
        own = [batch.rewards.float()] if self.reference == "pool" else []
        return consensus_reference(own + peers, groups), groups
