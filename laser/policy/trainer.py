"""PolicyTrainer: one update of a Hugging Face causal LM from a rollout and the chosen RM's
rewards, by PPO, the A2C actor loss, or iterative DPO (+ NLL on chosen).

The reward model never appears here: ``update(rollout, rewards)`` takes its scores, so any
RewardModel (one RM, a verifier, an ensemble) trains the policy the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from laser.distributed import Distributed
from laser.policy.adapters import (
    frozen_digest,
    is_lora,
    load_lora_weights,
    lora_weights_state,
    merged,
    trainable_state,
)
from laser.policy.config import PolicyConfig
from laser.policy.losses import (
    a2c_actor_loss,
    dpo_loss,
    dpo_pair_losses,
    entropy,
    gae,
    kl_penalty,
    masked_mean,
    masked_whiten,
    nll_loss,
    ppo_clip_loss,
    value_loss,
)
from laser.policy.pairs import make_pairs
from laser.policy.parts import (
    ValueCritic,
    apply_lora,
    check_distinct,
    disable_dropout,
    make_optimizer,
)
from laser.policy.rollout import Rollout, response_logits, sequence_logprobs, token_logprobs
from laser.policy.stats import StepStats


class PolicyTrainer:
    """``update(rollout, rewards) -> StepStats`` for ``algo`` in ppo | a2c | dpo.

    ``rewards``: (B,) sequence scores (placed at each response's last token) or, for PPO/A2C,
    (B, R) dense per-token rewards such as segment scores at segment-end tokens (see
    ``place_segment_rewards``). The reference model is frozen; with DPO and ``ref_sync`` it is
    refreshed to the policy after every update (iterative DPO).
    """

    def __init__(
        self,
        policy: nn.Module,
        ref_policy: nn.Module,
        tokenizer,
        config: PolicyConfig | None = None,
        dist: Distributed | None = None,
    ) -> None:
        self.config = cfg = config or PolicyConfig()
        # several processes: gradients are averaged and every rank takes the same number of
        # optimiser steps (empty minibatches step with zero local gradient)
        self.dist = dist or Distributed()
        check_distinct(policy, ref_policy)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # minibatch order
        disable_dropout(policy)
        self.policy = apply_lora(policy, cfg) if cfg.lora_r > 0 else policy
        self.ref_policy = ref_policy.eval()
        self.ref_policy.requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = next(self.policy.parameters()).device
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.critic = None
        if cfg.algo in ("ppo", "a2c"):
            self.critic = ValueCritic(self.policy, separate=cfg.critic == "separate")
            self.critic.to(self.device)
            params += list(self.critic.parameters())
        self.optimizer = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay)
        self.updates = 0
        self._ref_adapters: dict | None = None  # LoRA adapters the reference was merged from
        self._base_sha256: str | None = None

    # ------------------------------------------------------------------------ checks
    def _check(self, rollout: Rollout, rewards: torch.Tensor) -> torch.Tensor:
        B = rollout.batch_size
        if B == 0:
            raise ValueError("empty rollout: nothing to update on")
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
        dense_ok = self.config.algo != "dpo" and rewards.shape == rollout.response_ids.shape
        if rewards.shape != (B,) and not dense_ok:
            raise ValueError(
                f"rewards have shape {tuple(rewards.shape)}; expected ({B},) or, for "
                f"PPO/A2C, dense {tuple(rollout.response_ids.shape)}"
            )
        if not torch.isfinite(rewards).all():
            bad = (~torch.isfinite(rewards)).nonzero()[0].tolist()
            raise ValueError(f"rewards contain NaN/inf (first at {bad}); no update was made")
        empty = (rollout.response_mask.sum(-1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"sample(s) {empty[:5]} have no response tokens: their rewards would be lost"
            )
        padding = rollout.response_mask.cpu() == 0
        if rewards.ndim == 2 and bool(rewards[padding].any()):
            raise ValueError("dense rewards fall on padding positions (response_mask == 0)")
        return rewards.to(self.device)

    def _step(self, loss: torch.Tensor | None) -> None:
        """One optimiser step; ``loss=None``: this rank has no data for it (zero gradient)
        but still takes part in the gradient average and the step."""
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.dist.mean_grads(params)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()

    def _minibatches(self, n: int, num: int) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=self.generator)
        chunks = [chunk for chunk in torch.chunk(order, min(num, n)) if len(chunk)] if n else []
        if self.dist.enabled:  # the same number of steps on every rank
            chunks += [order[:0]] * (num - len(chunks))
        return chunks

    # ------------------------------------------------------------------------ update
    def update(self, rollout: Rollout, rewards: torch.Tensor) -> StepStats:
        rewards = self._check(rollout, rewards)
        seq_rewards = rewards if rewards.ndim == 1 else rewards.sum(-1)
        common = dict(
            reward_mean=seq_rewards.mean().item(),
            reward_std=seq_rewards.std(unbiased=False).item(),
        )
        self.policy.train()
        if self.config.algo == "dpo":
            stats = self._update_dpo(rollout, rewards, common)
        else:
            stats = self._update_actor_critic(rollout, rewards, common)
        self.updates += 0 if stats.skipped else 1
        return stats

    @staticmethod
    def _kl_ref(logprobs: torch.Tensor, rollout: Rollout) -> float:
        """Mean per-sequence KL(pi || ref) of the rollout (k1 estimator summed over tokens)."""
        return ((logprobs - rollout.ref_logprobs) * rollout.response_mask).sum(-1).mean().item()

    def _token_rewards(
        self, rollout: Rollout, rewards: torch.Tensor, logprobs: torch.Tensor
    ) -> torch.Tensor:
        """Per-token reward: -kl_coef * KL(pi||ref) everywhere, plus the RM's score at the last
        response token (or the dense rewards where given)."""
        mask = rollout.response_mask.float()
        kl = kl_penalty(logprobs, rollout.ref_logprobs, self.config.kl_estimator)
        token_rewards = -self.config.kl_coef * kl * mask
        if rewards.ndim == 2:
            return token_rewards + rewards * mask
        last = (mask.sum(-1).long() - 1).clamp_min(0)
        token_rewards[torch.arange(len(last)), last] += rewards
        return token_rewards

    def _forward(self, rollout: Rollout, idx: torch.Tensor):
        """Policy logits (b, R, V), token log-probs (b, R) and values (b, R) of samples idx."""
        sl = tuple(
            t[idx]
            for t in (
                rollout.query_ids,
                rollout.query_mask,
                rollout.response_ids,
                rollout.response_mask,
            )
        )
        shared = self.critic.trunk is None
        logits, out = response_logits(
            self.policy, *sl, rollout.temperature, output_hidden_states=shared
        )
        values = self.critic.values(out, sl, sl[0].shape[1])
        return logits, token_logprobs(logits, sl[2]), values

    def _update_actor_critic(
        self, rollout: Rollout, rewards: torch.Tensor, common: dict
    ) -> StepStats:
        cfg, ppo = self.config, self.config.algo == "ppo"
        mask = rollout.response_mask.float()
        everything = torch.arange(rollout.batch_size)
        epochs = cfg.ppo_epochs if ppo else 1
        # One epoch over one minibatch is on-policy: the forward with gradients also gives the
        # "old" log-probs and values (TRL does the same at num_iterations=1), saving a pass.
        single_pass = epochs == 1 and cfg.num_minibatches == 1
        if single_pass:
            first = self._forward(rollout, everything)
            old_logprobs, old_values = first[1].detach(), first[2].detach()
        else:
            first = None
            with torch.no_grad():
                _, old_logprobs, old_values = self._forward(rollout, everything)
        if rollout.logprobs is not None:  # the behaviour policy's own numbers, when recorded
            old_logprobs = rollout.logprobs
        old_values = old_values * mask
        with torch.no_grad():
            token_rewards = self._token_rewards(rollout, rewards, old_logprobs)
            advantages, returns = gae(token_rewards, old_values, mask, cfg.gamma, cfg.gae_lambda)
            if cfg.whiten_advantages:
                advantages = masked_whiten(advantages, mask)
        totals: dict[str, float] = {}
        count = 0
        for _epoch in range(epochs):
            batches = (
                [everything]
                if single_pass
                else self._minibatches(rollout.batch_size, cfg.num_minibatches)
            )
            for idx in batches:
                if len(idx) == 0:  # another rank has data for this step
                    self._step(None)
                    continue
                logits, logprobs, values = (
                    first if first is not None else self._forward(rollout, idx)
                )
                first = None
                m = mask[idx]
                if ppo:
                    pg, clipfrac, approx_kl = ppo_clip_loss(
                        logprobs, old_logprobs[idx], advantages[idx], m, cfg.clip_coef
                    )
                    v_loss = value_loss(values, old_values[idx], returns[idx], m, cfg.vf_clip)
                else:
                    pg = a2c_actor_loss(logprobs, advantages[idx], m)
                    v_loss = value_loss(values, old_values[idx], returns[idx], m, None)
                    with torch.no_grad():
                        log_ratio = logprobs - old_logprobs[idx]
                        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, m)
                        clipfrac = torch.zeros(())
                ent = entropy(logits, m)
                loss = pg + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                self._step(loss)
                for key, value in (
                    ("loss", loss),
                    ("pg_loss", pg),
                    ("value_loss", v_loss),
                    ("entropy", ent),
                    ("approx_kl", approx_kl),
                    ("clipfrac", clipfrac),
                ):
                    totals[key] = totals.get(key, 0.0) + float(value.item())
                count += 1
        means = {k: v / count for k, v in totals.items()}
        return StepStats(
            **means,
            **common,
            kl_ref=self._kl_ref(old_logprobs, rollout),
            train_loss=means["pg_loss"],
        )

    def _update_dpo(self, rollout: Rollout, rewards: torch.Tensor, common: dict) -> StepStats:
        cfg = self.config
        common = dict(
            common,
            kl_ref=None if rollout.logprobs is None else self._kl_ref(rollout.logprobs, rollout),
        )
        pairs = make_pairs(rollout.group, rewards.cpu(), cfg.pair_scheme, cfg.max_pairs)
        if self.dist.sum(len(pairs)) == 0:  # no rank has a pair: nobody steps
            return StepStats.no_update(common, skipped=True)
        q, qm, r, rm = (
            rollout.query_ids,
            rollout.query_mask,
            rollout.response_ids,
            rollout.response_mask,
        )
        # DPO compares model likelihoods: temperature 1, whatever the sampling temperature
        ref = (
            rollout.ref_logprobs
            if rollout.temperature == 1.0
            else sequence_logprobs(self.ref_policy, q, qm, r, rm, 1.0)
        )
        ref_seq = (ref * rm).sum(-1)
        chosen = torch.tensor([c for c, _ in pairs], dtype=torch.long)
        rejected = torch.tensor([j for _, j in pairs], dtype=torch.long)
        totals = {"loss": 0.0, "pg_loss": 0.0, "nll": 0.0, "entropy": 0.0}
        count = 0
        prompt_losses: dict[int, list[float]] = {}
        for _epoch in range(cfg.dpo_epochs):
            for idx in self._minibatches(len(pairs), cfg.num_minibatches):
                if len(idx) == 0:  # this rank has no pair for this step, another has
                    self._step(None)
                    continue
                both = torch.cat([chosen[idx], rejected[idx]])
                logits, _ = response_logits(self.policy, q[both], qm[both], r[both], rm[both])
                logprobs = token_logprobs(logits, r[both]) * rm[both]
                seq = logprobs.sum(-1)
                k = len(idx)
                pref = dpo_loss(
                    seq[:k],
                    seq[k:],
                    ref_seq[chosen[idx]],
                    ref_seq[rejected[idx]],
                    cfg.beta,
                    cfg.dpo_loss,
                )
                nll = nll_loss(logprobs[:k], rm[chosen[idx]])
                loss = pref + cfg.nll_coef * nll
                if _epoch == 0:  # per-prompt loss before this step's update: bandit credit
                    pair_loss = dpo_pair_losses(
                        seq, logprobs, ref_seq, chosen[idx], rejected[idx], rm, cfg
                    )
                    for pair, value in zip(idx.tolist(), pair_loss.tolist()):
                        g = int(rollout.group[chosen[pair]])
                        prompt_losses.setdefault(g, []).append(value)
                self._step(loss)
                totals["loss"] += loss.item()
                totals["pg_loss"] += pref.item()
                totals["entropy"] += entropy(logits.detach(), rm[both]).item()
                count += 1
        if cfg.ref_sync:
            self.sync_reference()
        if count == 0:  # this rank had no pair (others did): it stepped on their gradients
            return StepStats.no_update(common, skipped=False)
        return StepStats(
            loss=totals["loss"] / count,
            pg_loss=totals["pg_loss"] / count,
            value_loss=None,
            entropy=totals["entropy"] / count,
            approx_kl=None,
            clipfrac=None,
            **common,
            train_loss=totals["loss"] / count,
            num_pairs=len(pairs),
            group_loss={g: sum(v) / len(v) for g, v in prompt_losses.items()},
        )

    def sync_reference(self) -> None:
        """Copy the policy's weights into the reference (iterative DPO's ref refresh)."""
        source = self.policy
        if is_lora(source):  # the reference gets the merged weights; keep what was merged
            self._ref_adapters = trainable_state(source)
            source = merged(source)
        self.ref_policy.load_state_dict(source.state_dict())

    # --------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            **self._weights_state(),
            "critic": None if self.critic is None else self.critic.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            # sampling uses the global RNGs: a resumed run must continue their streams
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self._load_weights(state)
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.updates = int(state["updates"])

    def _weights_state(self) -> dict:
        """The policy and reference weights; a LoRA policy saves its adapters only
        (laser/policy/adapters.py says why and how the rest is rebuilt and checked)."""
        if not is_lora(self.policy):
            return {"policy": self.policy.state_dict(), "ref_policy": self.ref_policy.state_dict()}
        if self._base_sha256 is None:  # the base is frozen: fingerprint it once
            self._base_sha256 = frozen_digest(self.policy)
        return lora_weights_state(
            self.policy, self.ref_policy, self._ref_adapters, self._base_sha256
        )

    def _load_weights(self, state: dict) -> None:
        if "lora_adapters" not in state["policy"]:  # no LoRA, or an older LoRA checkpoint
            self.policy.load_state_dict(state["policy"])
            self.ref_policy.load_state_dict(state["ref_policy"])
            return
        self._ref_adapters = load_lora_weights(self.policy, self.ref_policy, state)
        self._base_sha256 = state["policy"]["base_sha256"]  # checked equal by the load
