"""Multi-process (DDP) support for the LASER loop, on torch.distributed.

Launch with ``torchrun --nproc_per_node N .venv/bin/laser-train ...`` or
``accelerate launch --num_processes N .venv/bin/laser-train ...`` (both set RANK / WORLD_SIZE;
pass the same ``hydra.run.dir`` to every process). The contract:

- every rank trains on its own prompts; gradients are averaged across ranks before each
  optimiser step, and every rank takes the same number of steps, so the policies stay equal;
- the RM decision is made once, on rank 0, for the whole global batch and broadcast, so all
  ranks use the same RM (per batch) or the same per-prompt routing;
- feedback is reduced across ranks before the bandit update (a mean per arm in per-batch mode;
  every rank's per-prompt updates, in rank order, in per-prompt mode), so every rank holds the
  same selector and normaliser state;
- rank 0 alone logs and writes checkpoints; it builds (or checks) the cached world while the
  other ranks wait, so they only read it.

With one process every method is a no-op and costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Start the process group when launched with WORLD_SIZE > 1. With GPUs each rank takes
    cuda:LOCAL_RANK and CUDA tensors (gradients) go through nccl, CPU tensors (contexts,
    decisions, counts) through gloo; without GPUs everything goes through gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")


def shutdown() -> None:
    """Destroy the process group, if one is up. A process that exits with it alive can abort
    at interpreter finalisation (SIGABRT, "terminate called without an active exception"):
    Gloo's worker threads still hold work when the interpreter is torn down
    (pytorch/pytorch#190489). Local: no collective, so a rank that failed can still call it."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group_from_env() -> Iterator[None]:
    """The process group's lifetime for one entry point: started from the launcher's
    environment (see ``init_from_env``), destroyed on the way out, error or not."""
    init_from_env()
    try:
        yield
    finally:
        shutdown()


class Distributed:
    """The current process group as the loop sees it."""

    def __init__(self) -> None:
        self.enabled = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.enabled else 0
        self.world_size = dist.get_world_size() if self.enabled else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))  # GPU index on its node

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def mean_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average gradients across ranks (missing gradients count as zero)."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= self.world_size
