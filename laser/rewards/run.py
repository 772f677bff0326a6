"""Train and save one reward model from a ``TrainRMConfig`` (the body of ``laser-train-rm``)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from laser.gguf import is_gguf, local_model
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards.config import TrainRMConfig
from laser.rewards.data import load_checked, load_rows
from laser.rewards.hf import reward_model_from_causal_lm
from laser.rewards.train import train_reward_model

log = logging.getLogger(__name__)


def build_model(cfg: TrainRMConfig) -> tuple[Any, Any]:
    """The (model, tokenizer) to train: a local checkpoint, or a tiny GPT-2 from config."""
    m = cfg.model
    if m.path is None:
        tok = char_tokenizer()
        torch.manual_seed(cfg.seed)
        config = tiny_gpt2_config(
            tok,
            n_layer=m.tiny.n_layer,
            n_head=m.tiny.n_head,
            n_embd=m.tiny.n_embd,
            n_positions=m.tiny.n_positions,
        )
        if cfg.max_length > m.tiny.n_positions:
            raise ValueError(
                f"max_length={cfg.max_length} exceeds model.tiny.n_positions={m.tiny.n_positions}"
            )
        return AutoModelForSequenceClassification.from_config(config), tok
    path = Path(local_model(m.path, cfg.cache_dir)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model.path not found: {path}")
    tok = AutoTokenizer.from_pretrained(m.tokenizer or str(path))
    if m.from_causal_lm or is_gguf(m.path):  # a GGUF file is always a causal LM
        return reward_model_from_causal_lm(path), tok
    # num_labels=1: a bare encoder (e.g. MiniLM) gets a fresh scalar head; an RM keeps its own
    return AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1), tok


# which rows each loss reads; a loss not listed here is reported by train_reward_model
_DATA_KIND = {"bradley_terry": "preference", "segment_regression": "segment"}


def split_data(cfg: TrainRMConfig) -> tuple[Any, Any]:
    """(train, eval) datasets: the configured eval file, or a seeded hold-out of train.

    Every row is validated before the shuffle, so a bad row is named by its line in the file,
    not by its position in the shuffled split (training validates the splits again: cheap).
    """
    kind = _DATA_KIND.get(cfg.loss)
    train = _load(cfg.data.train, kind)
    if cfg.data.eval is not None:
        return train, _load(cfg.data.eval, kind)
    if not 0.0 < cfg.data.eval_fraction < 1.0:
        raise ValueError(f"data.eval_fraction must be in (0, 1), got {cfg.data.eval_fraction}")
    order = list(range(train.num_rows))
    random.Random(cfg.seed).shuffle(order)
    n_eval = max(1, round(cfg.data.eval_fraction * len(order)))
    if n_eval >= len(order):
        raise ValueError(f"{len(order)} rows are too few to hold out an eval split")
    return train.select(order[n_eval:]), train.select(order[:n_eval])


def _load(source: Any, kind: str | None) -> Any:
    return load_checked(source, kind) if kind else load_rows(source)


def run_train_rm(cfg: TrainRMConfig, logger: Any) -> dict[str, float]:
    """Train, save (safetensors + tokenizer + metrics.json) and return the final metrics."""
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = build_model(cfg)
    train, evals = split_data(cfg)
    metrics = train_reward_model(
        model,
        tok,
        train,
        loss=cfg.loss,
        eval_dataset=evals,
        epochs=cfg.epochs,
        lr=cfg.optimizer.lr,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        optimizer=cfg.optimizer.name,
        weight_decay=cfg.optimizer.weight_decay,
        max_grad_norm=cfg.optimizer.max_grad_norm,
        seed=cfg.seed,
        overlong=cfg.data.overlong,
        device=device,
        logger=logger,
        progress=cfg.progress,
    )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out)  # safetensors
    tok.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
