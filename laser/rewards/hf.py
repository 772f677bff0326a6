"""Hugging Face sequence-classifier reward models (num_labels=1), with their own tokenizers."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from laser.rewards.base import RewardModelError, check_batch, check_scores
from laser.rewards.data import collate, encode, format_text

log = logging.getLogger(__name__)


def check_scalar_head(model: PreTrainedModel, name: str) -> None:
    labels = getattr(model.config, "num_labels", None)
    if labels != 1:
        raise ValueError(
            f"reward model {name!r} has num_labels={labels}; an RM needs a single scalar head "
            "(num_labels=1). Load it with AutoModelForSequenceClassification(..., num_labels=1) "
            "or convert a causal LM with reward_model_from_causal_lm()."
        )


def resolve_pad_id(tokenizer: Any, model: PreTrainedModel) -> int:
    """The pad id to batch with. Sequence classifiers find the last real token through
    ``config.pad_token_id``, so that id is what the RM was trained with and wins.

    Order: the model's ``config.pad_token_id``, else the tokenizer's pad token, else its EOS
    (TRL's fallback). Only when the model has none is it written to the model config (batches
    larger than one fail without it); the tokenizer is never modified.
    """
    pad_id = model.config.pad_token_id
    if pad_id is None:
        pad_id = (
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else (tokenizer.eos_token_id)
        )
        if pad_id is None:
            raise ValueError(
                "the RM has no pad token id and its tokenizer neither a pad nor an "
                "eos token; set config.pad_token_id"
            )
        log.warning("model config has no pad_token_id; using %d from the tokenizer", pad_id)
        model.config.pad_token_id = pad_id
    return int(pad_id)


def reward_model_from_causal_lm(lm_or_path: PreTrainedModel | str | Path) -> PreTrainedModel:
    """Reuse a causal LM's transformer and add a fresh scalar head (num_labels=1).

    The usual way to start an RM from the SFT policy. Works for any architecture whose
    sequence-classification class shares the LM's ``base_model_prefix`` (GPT-2, Llama, Qwen,
    Mistral, ...).
    """
    lm = lm_or_path
    if not isinstance(lm, PreTrainedModel):
        lm = AutoModelForCausalLM.from_pretrained(str(lm_or_path))
    config = copy.deepcopy(lm.config)
    config.num_labels = 1
    rm = AutoModelForSequenceClassification.from_config(config)
    missing, unexpected = rm.base_model.load_state_dict(lm.base_model.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"could not transfer the causal LM's transformer into {type(rm).__name__}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    rm.config.pad_token_id = lm.config.pad_token_id
    return rm


class HFRewardModel:
    """Any ``AutoModelForSequenceClassification`` with num_labels=1 as a RewardModel.

    - Reads ``format_text(prompt, completion)`` with the RM's OWN tokenizer (it may differ from
      the policy's): prompt + completion + EOS, or a chat template with ``chat_template=True``.
    - Always right-pads (position ids stay correct for GPT-2-style models), so the tokenizer's
      ``padding_side`` does not change scores; batches are sorted by length to pad less.
    - Over-long inputs are truncated from the left (the score is read at the last token);
      ``truncated`` counts them.
    - ``model_or_path`` may be a path: the weights load on first use, so a pool of K RMs costs
      no memory until one is selected. ``device`` is where scoring runs; with ``offload=True``
      the model goes back to CPU after each call, so K RMs share one accelerator.
    """

    def __init__(
        self,
        model_or_path: PreTrainedModel | str | Path,
        tokenizer: Any = None,
        *,
        name: str | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 16,
        max_length: int = 512,
        chat_template: bool = False,
        append_eos: bool = True,
        offload: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        if batch_size < 1 or max_length < 2:
            raise ValueError(
                f"batch_size must be >= 1 and max_length >= 2, got {batch_size}, {max_length}"
            )
        self._model: PreTrainedModel | None = None
        self._path: str | None = None
        if isinstance(model_or_path, PreTrainedModel):
            self._model = model_or_path
        else:
            self._path = str(model_or_path)
            if not Path(self._path).exists():
                raise FileNotFoundError(f"reward model path not found: {self._path}")
        default_name = Path(self._path).name if self._path else type(model_or_path).__name__
        self.name = name or default_name
        self._tokenizer = tokenizer
        self.pad_id: int | None = None
        if device is None:  # score where the model already is
            device = self._model.device if self._model is not None else "cpu"
        self.device = torch.device(device)
        self.batch_size, self.max_length = batch_size, max_length
        self.chat_template, self.append_eos = chat_template, append_eos
        self.offload_after_score = offload
        self.dtype = dtype
        self.forward_samples = 0
        self.truncated = 0
        if self._model is not None:
            self._prepare(self._model)

    # ------------------------------------------------------------------ loading, placement
    auto_class: Any = AutoModelForSequenceClassification  # what a path loads as

    def _prepare(self, model: PreTrainedModel) -> None:
        self._check_model(model)
        if self._tokenizer is None:
            if self._path is None:
                raise ValueError(f"reward model {self.name!r}: pass its tokenizer")
            self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        if self.chat_template and not getattr(self._tokenizer, "chat_template", None):
            raise RewardModelError(
                f"reward model {self.name!r}: chat_template=True but its tokenizer has no chat "
                "template; set chat_template=False or use a tokenizer that ships one"
            )
        self.pad_id = resolve_pad_id(self._tokenizer, model)

    def _check_model(self, model: PreTrainedModel) -> None:
        check_scalar_head(model, self.name)

    @property
    def model(self) -> PreTrainedModel:
        if self._model is None:
            try:
                model, info = self.auto_class.from_pretrained(
                    self._path, dtype=self.dtype, output_loading_info=True
                )
            except Exception as exc:
                raise RewardModelError(
                    f"reward model {self.name!r}: could not load {self._path}: {exc}"
                ) from exc
            if info.get("missing_keys"):
                # e.g. a causal-LM checkpoint: from_pretrained would invent a random head
                raise RewardModelError(
                    f"reward model {self.name!r}: {self._path} lacks weights "
                    f"{sorted(info['missing_keys'])[:5]}; a randomly initialised head would "
                    "give meaningless scores (for a causal LM use reward_model_from_causal_lm "
                    "and train it)"
                )
            self._prepare(model)
            self._model = model
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.model  # noqa: B018 -- loading the model also resolves the tokenizer
        return self._tokenizer

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def to(self, device: str | torch.device) -> HFRewardModel:
        """Move the RM to ``device`` (where it will also score from now on)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def offload(self) -> None:
        """Park the weights on CPU (keeps ``device`` as the place to score on)."""
        if self._model is not None:
            self._model.to("cpu")

    # ---------------------------------------------------------------------------- scoring
    @torch.no_grad()  # not inference_mode: callers may use the scores in autograd code
    def _score_texts(self, texts: list[str]) -> torch.Tensor:
        model, tok = self.model, self.tokenizer
        was_training = model.training
        model.eval()
        model.to(self.device)
        # a rendered chat template already holds its special tokens (as TRL tokenises it)
        enc = encode(
            tok,
            texts,
            self.max_length,
            overlong="truncate",
            add_special_tokens=not self.chat_template,
        )
        if enc.truncated:
            log.warning(
                "reward model %r: truncated %d of %d inputs to max_length=%d (kept the end)",
                self.name,
                enc.truncated,
                len(texts),
                self.max_length,
            )
        self.truncated += enc.truncated
        order = sorted(range(len(texts)), key=lambda i: len(enc.ids[i]))
        out = torch.empty(len(texts), dtype=torch.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            input_ids, mask = collate([enc.ids[i] for i in idx], self.pad_id)
            logits = model(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits
            out[idx] = logits.reshape(len(idx)).float().cpu()
        model.train(was_training)
        if self.offload_after_score:
            self.offload()
        self.forward_samples += len(texts)
        return out

    def _texts(self, prompts: list[str], completions: list[str]) -> list[str]:
        return [
            format_text(
                self.tokenizer, p, c, chat_template=self.chat_template, append_eos=self.append_eos
            )
            for p, c in zip(prompts, completions)
        ]

    def score(self, prompts: list[str], completions: list[str], **metadata: Any) -> torch.Tensor:
        """One scalar per (prompt, completion): (B,) float32 on CPU. ``metadata`` is ignored."""
        check_batch(self.name, prompts, completions)
        if not prompts:
            return torch.empty(0)
        return check_scores(
            self.name, self._score_texts(self._texts(prompts, completions)), len(prompts)
        )

    def score_segments(
        self, prompts: list[str], completions: list[str], segments: list[list[str]]
    ) -> list[torch.Tensor]:
        """Per-segment scores: entry j of sample i is the score of prompt_i + segments_i[:j+1].

        The segments of a sample must concatenate to its completion; the last entry therefore
        equals ``score`` of the whole completion. Returns one (S_i,) tensor per sample.
        """
        check_batch(self.name, prompts, completions)
        if len(segments) != len(prompts):
            raise RewardModelError(
                f"reward model {self.name!r}: {len(segments)} segment lists "
                f"for {len(prompts)} samples"
            )
        prefixes_p, prefixes_c, sizes = [], [], []
        for i, (p, c, segs) in enumerate(zip(prompts, completions, segments)):
            if not segs or "".join(segs) != c:
                raise RewardModelError(
                    f"reward model {self.name!r}: the segments of sample {i} "
                    "are empty or do not concatenate to its completion"
                )
            for j in range(len(segs)):
                prefixes_p.append(p)
                prefixes_c.append("".join(segs[: j + 1]))
            sizes.append(len(segs))
        flat = self.score(prefixes_p, prefixes_c)
        return list(torch.split(flat, sizes))

    def __repr__(self) -> str:
        where = "loaded" if self.loaded else f"lazy from {self._path}"
        return f"HFRewardModel({self.name!r}, {where}, device={self.device})"
