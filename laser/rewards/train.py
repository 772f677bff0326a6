"""Train a reward model with the Bradley-Terry or the segment-regression loss (plain torch).

``train_reward_model`` reads the text exactly as ``HFRewardModel`` scores it (``format_text``,
right padding, left truncation), so a trained model saved with ``save_pretrained`` reloads as
an ``HFRewardModel`` with the same scores.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from laser.rewards.data import (
    Encoded,
    PreferencePair,
    SegmentExample,
    collate,
    encode,
    format_text,
    preference_pairs,
    segment_examples,
)
from laser.rewards.hf import check_scalar_head, resolve_pad_id
from laser.rewards.losses import bradley_terry_loss, pairwise_accuracy, segment_regression_loss

log = logging.getLogger(__name__)
LOSSES = ("bradley_terry", "segment_regression")


class MetricLogger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...


def make_optimizer(
    name: str, params: Any, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    optimizers = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if name not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {name!r}")
    return optimizers[name](params, lr=lr, weight_decay=weight_decay)


def _scores(model: Any, ids: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    input_ids, mask = collate(ids, pad_id)
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
    return out.logits.reshape(len(ids)).float()


def _batches(n: int, batch_size: int, rng: random.Random | None) -> Iterator[list[int]]:
    order = list(range(n))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


# ------------------------------------------------------------------- Bradley-Terry pairs
class _PairData:
    """Tokenised preference pairs; a pair is dropped if either side is (``overlong="drop"``)."""

    def __init__(self, pairs: list[PreferencePair], tok: Any, max_length: int, overlong: str):
        chosen = encode(
            tok, [format_text(tok, p.prompt, p.chosen) for p in pairs], max_length, overlong
        )
        rejected = encode(
            tok, [format_text(tok, p.prompt, p.rejected) for p in pairs], max_length, overlong
        )
        keep = sorted(set(chosen.kept) & set(rejected.kept))
        pos_c = {i: k for k, i in enumerate(chosen.kept)}
        pos_r = {i: k for k, i in enumerate(rejected.kept)}
        self.chosen = [chosen.ids[pos_c[i]] for i in keep]
        self.rejected = [rejected.ids[pos_r[i]] for i in keep]
        margins = [pairs[i].margin for i in keep]
        self.margin = None if margins and margins[0] is None else torch.tensor(margins)
        self.truncated = chosen.truncated + rejected.truncated
        self.dropped = len(pairs) - len(keep)

    def __len__(self) -> int:
        return len(self.chosen)

    def loss(
        self, model: Any, idx: list[int], pad_id: int, device: torch.device
    ) -> tuple[torch.Tensor, float]:
        # one forward over chosen + rejected, as TRL does, so batch norms see both
        scores = _scores(
            model, [self.chosen[i] for i in idx] + [self.rejected[i] for i in idx], pad_id, device
        )
        r_c, r_r = scores[: len(idx)], scores[len(idx) :]
        margin = None if self.margin is None else self.margin[idx].to(device)
        return bradley_terry_loss(r_c, r_r, margin), pairwise_accuracy(r_c, r_r)


# ----------------------------------------------------------------------- segment targets
class _SegmentData:
    """Each example becomes one prefix per segment; its target is that segment's score."""

    def __init__(self, examples: list[SegmentExample], tok: Any, max_length: int, overlong: str):
        self.ids: list[list[list[int]]] = []
        self.targets: list[list[float]] = []
        self.truncated = self.dropped = 0
        for ex in examples:
            texts = [
                format_text(tok, ex.prompt, "".join(ex.segments[: j + 1]))
                for j in range(len(ex.segments))
            ]
            enc: Encoded = encode(tok, texts, max_length, overlong)
            self.truncated += enc.truncated
            if enc.dropped:
                self.dropped += 1
                continue
            self.ids.append(enc.ids)
            self.targets.append(list(ex.scores))

    def __len__(self) -> int:
        return len(self.ids)

    def loss(
        self, model: Any, idx: list[int], pad_id: int, device: torch.device
    ) -> tuple[torch.Tensor, float]:
        flat = [seq for i in idx for seq in self.ids[i]]
        pred_flat = _scores(model, flat, pad_id, device)
        width = max(len(self.ids[i]) for i in idx)
        pred = torch.zeros(len(idx), width, device=device)
        target = torch.zeros(len(idx), width, device=device)
        mask = torch.zeros(len(idx), width, device=device)
        pos = 0
        for row, i in enumerate(idx):
            n = len(self.ids[i])
            pred[row, :n] = pred_flat[pos : pos + n]
            target[row, :n] = torch.tensor(self.targets[i], device=device)
            mask[row, :n] = 1.0
            pos += n
        loss = segment_regression_loss(pred, target, mask)
        return loss, float("nan")


def _load(loss: str, source: Any, tok: Any, max_length: int, overlong: str):
    if loss == "bradley_terry":
        return _PairData(preference_pairs(source), tok, max_length, overlong)
    return _SegmentData(segment_examples(source), tok, max_length, overlong)


@torch.no_grad()
def _evaluate(
    model: Any, data: Any, batch_size: int, pad_id: int, device: torch.device
) -> dict[str, float]:
    model.eval()
    total, acc, n = 0.0, 0.0, 0
    for idx in _batches(len(data), batch_size, None):
        loss, batch_acc = data.loss(model, idx, pad_id, device)
        total += loss.item() * len(idx)
        acc += batch_acc * len(idx)
        n += len(idx)
    metrics = {"loss": total / n}
    if isinstance(data, _PairData):
        metrics["accuracy"] = acc / n
    return metrics


def train_reward_model(
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    *,
    loss: str = "bradley_terry",
    eval_dataset: Any = None,
    epochs: int = 1,
    lr: float = 1e-4,
    batch_size: int = 16,
    max_length: int = 512,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    seed: int = 0,
    overlong: str = "truncate",
    device: str | torch.device | None = None,
    logger: MetricLogger | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` (a sequence classifier with num_labels=1) in place; return final metrics.

    ``train_dataset``/``eval_dataset``: anything ``laser.rewards.data.load_rows`` accepts.
    Returns ``loss`` (mean train loss of the last epoch), ``accuracy`` (train pairwise accuracy
    of the last epoch, BT only), ``eval_loss`` and ``eval_accuracy`` (with an eval set),
    ``train_examples``, ``truncated``, ``dropped`` and ``time_s``. Logs ``rm_train/loss`` and
    ``rm_train/accuracy`` per step to ``logger``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    check_scalar_head(model, type(model).__name__)
    pad_id = resolve_pad_id(tokenizer, model)
    device = torch.device(device or "cpu")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    start = time.perf_counter()

    train = _load(loss, train_dataset, tokenizer, max_length, overlong)
    evals = (
        None if eval_dataset is None else _load(loss, eval_dataset, tokenizer, max_length, overlong)
    )
    for what, data in (("train", train), ("eval", evals)):
        if data is not None and (data.truncated or data.dropped):
            log.warning(
                "%s data: %d sequences truncated and %d examples dropped for max_length=%d",
                what,
                data.truncated,
                data.dropped,
                max_length,
            )
    if len(train) == 0:
        raise ValueError(
            f"no training example fits max_length={max_length} "
            f"({train.dropped} dropped); raise max_length or use overlong='truncate'"
        )

    model.to(device)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    steps_per_epoch = -(-len(train) // batch_size)
    step, epoch_loss, epoch_acc = 0, 0.0, 0.0
    bar = tqdm(total=epochs * steps_per_epoch, desc=f"train RM ({loss})", disable=not progress)
    for _ in range(epochs):
        model.train()
        epoch_loss = epoch_acc = 0.0
        for idx in _batches(len(train), batch_size, rng):
            batch_loss, batch_acc = train.loss(model, idx, pad_id, device)
            if not torch.isfinite(batch_loss):
                raise FloatingPointError(
                    f"reward-model loss became {batch_loss.item()} at step "
                    f"{step}; lower lr (now {lr})"
                )
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            opt.step()
            step += 1
            epoch_loss += batch_loss.item() * len(idx)
            epoch_acc += batch_acc * len(idx)
            metrics = {"rm_train/loss": batch_loss.item()}
            if loss == "bradley_terry":
                metrics["rm_train/accuracy"] = batch_acc
            if logger is not None:
                logger.log(metrics, step)
            bar.update(1)
            bar.set_postfix(loss=f"{batch_loss.item():.4f}")
    bar.close()
    model.eval()

    result: dict[str, float] = {
        "loss": epoch_loss / len(train),
        "train_examples": len(train),
        "truncated": train.truncated,
        "dropped": train.dropped,
    }
    if loss == "bradley_terry":
        result["accuracy"] = epoch_acc / len(train)
    if evals is not None:
        result["eval_examples"] = len(evals)
        if len(evals):
            for key, value in _evaluate(model, evals, batch_size, pad_id, device).items():
                result[f"eval_{key}"] = value
        else:
            log.warning("no eval example fits max_length=%d: eval metrics are missing", max_length)
    result["time_s"] = time.perf_counter() - start
    return result
