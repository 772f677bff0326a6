"""A causal LM as a reward model: the score of a completion is its mean token log-likelihood
given the prompt. This is how the LASeR authors' code uses its four RewardBench models
(github.com/duykhuongnguyen/LASeR-MAB, scripts/utils/reward_model.py): as language models
scoring responses, not as scalar-head classifiers."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, PreTrainedModel

from laser.rewards.base import RewardModelError, check_batch, check_scores
from laser.rewards.data import collate
from laser.rewards.hf import HFRewardModel


class LikelihoodRewardModel(HFRewardModel):
    """score = mean over the completion's tokens (+ EOS) of log p(token | prompt, earlier
    tokens). Lazy loading, ``device``/``offload``, batching and left truncation of the prompt
    work as in :class:`HFRewardModel`; inputs are right-padded so positions stay correct."""

    auto_class: Any = AutoModelForCausalLM

    def _check_model(self, model: PreTrainedModel) -> None:
        if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
            raise RewardModelError(f"reward model {self.name!r}: needs a causal LM with an LM head")

    def _rows(self, prompts: list[str], completions: list[str]) -> tuple[list, list[int]]:
        """Token ids of prompt + completion (+ EOS) and where the completion starts."""
        tok = self.tokenizer
        eos = [tok.eos_token_id] if self.append_eos and tok.eos_token_id is not None else []
        rows, starts = [], []
        for p, c in zip(prompts, completions):
            p_ids = tok(p).input_ids
            c_ids = tok(c, add_special_tokens=False).input_ids + eos
            if not c_ids:
                raise RewardModelError(f"reward model {self.name!r}: empty completion, no EOS")
            ids, start = p_ids + c_ids, len(p_ids)
            cut = max(0, len(ids) - self.max_length)
            if cut:
                self.truncated += 1
                ids, start = ids[cut:], max(1, start - cut)  # keep the end, as HFRewardModel
            rows.append(ids)
            starts.append(max(1, start))  # the first token has no prediction
        return rows, starts

    @torch.no_grad()
    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        check_batch(self.name, prompts, completions)
        if not prompts:
            return torch.empty(0)
        model = self.model
        was_training = model.training
        model.eval()
        model.to(self.device)
        rows, starts = self._rows(prompts, completions)
        out = torch.empty(len(rows), dtype=torch.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            ids, mask = collate([rows[i] for i in idx], self.pad_id)  # right-padded
            ids, mask = ids.to(self.device), mask.to(self.device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = F.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
            for j, i in enumerate(idx):  # token t is predicted at position t - 1
                out[i] = logp[j, starts[i] - 1 : len(rows[i]) - 1].mean().cpu()
        model.train(was_training)
        if self.offload_after_score:
            self.offload()
        self.forward_samples += len(rows)
        return check_scores(self.name, out, len(prompts))
