"""Multi-process LASER on 2 CPU processes (gloo): one RM decision for all ranks, feedback
reduced before the bandit update, gradients averaged (policies stay equal), rank 0 alone
writes checkpoints."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from laser.granularity import Credit, PerBatch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, cache, out, overrides):
    from test_loop import cfg_for

    from laser.build import build_loop
    from laser.evaluation import example_scores
    from laser.logging import NullLogger

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = cfg_for(cache, out / f"rank{rank}", "policy=dpo", "loop.steps=3", *overrides)
        loop = build_loop(cfg, NullLogger())
        first = [e.prompt for e in loop.next_batch()]
        arms = []
        final = loop.run(progress=False, on_step=lambda record: arms.append(record.chosen))
        torch.save(
            {
                "arms": arms,
                "first_prompts": first,
                "params": torch.cat(
                    [p.detach().flatten() for p in loop.trainer.policy.parameters()]
                ),
                "selector": loop.router.selector.state_dict(),
                "normalizer": loop.router.normalizer.state_dict(),
                "local_cost": loop.rm_cost(),
                "eval_scores": final.scores,  # sharded over the ranks, gathered
                "eval_reference": example_scores(  # this rank alone, on the whole set
                    loop.trainer.policy,
                    loop.tokenizer,
                    loop.task,
                    loop.evaluator.examples,
                    loop.config.eval_max_new_tokens,
                ),
                "global_cost": loop.global_rm_cost(),
            },
            out / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, torch.Tensor)):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


@pytest.fixture(scope="module")
def world_cache(tmp_path_factory):
    """Build the smoke world once, so the two processes only read it."""
    from test_loop import cfg_for

    from laser.build import build_loop
    from laser.logging import NullLogger

    cache = tmp_path_factory.mktemp("ddp-cache")
    build_loop(cfg_for(cache, tmp_path_factory.mktemp("warm")), NullLogger())
    return cache


@pytest.mark.parametrize(
    "overrides",
    [["bandit=linucb", "loop.selection=batch"], ["bandit=lints", "loop.selection=prompt"]],
    ids=["batch-linucb", "prompt-lints"],
)
def test_two_processes_stay_in_sync(world_cache, tmp_path, overrides):
    mp.spawn(_worker, args=(2, _free_port(), world_cache, tmp_path, overrides), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["first_prompts"] != r1["first_prompts"]  # each rank trains on its own prompts
    assert torch.equal(r0["params"], r1["params"])  # averaged gradients, equal steps
    assert _same(r0["selector"], r1["selector"]) and _same(r0["normalizer"], r1["normalizer"])
    if "loop.selection=batch" in overrides:
        assert r0["arms"] == r1["arms"]  # one decision, broadcast
    assert r0["global_cost"] == r1["global_cost"] == r0["local_cost"] + r1["local_cost"]
    assert r0["eval_scores"] == r1["eval_scores"] == r0["eval_reference"]
    assert any((tmp_path / "rank0" / "checkpoints").glob("ckpt-*.pt"))
    assert not (tmp_path / "rank1" / "checkpoints").exists() or not any(
        (tmp_path / "rank1" / "checkpoints").glob("ckpt-*.pt")
    )


def test_per_batch_feedback_is_the_mean_over_ranks():
    """PerBatch credit and reduction with a stand-in process group of 2 ranks."""
    context = torch.ones(3)  # the global batch context
    per_batch, fake = PerBatch(), SimpleNamespace(enabled=True)
    local = [Credit(1, c, v, 0.5) for _, c, v in per_batch.credit(1.0, [0, 1], None, context)]

    def updates(other_rank):
        return per_batch.reduce(local + [Credit(*other_rank)], fake)

    result = updates((1, torch.zeros(3), 3.0, 0.5))
    assert len(result) == 1
    arm, ctx, value, prop = result[0]
    assert arm == 1 and torch.equal(ctx, context) and value == pytest.approx(2.0) and prop == 0.5
    # a rank whose RM failed (None) does not drag the mean to the floor
    assert updates((1, torch.zeros(3), None, 0.5))[0][2] == 1.0
    # several arms (a full-information signal's other RMs): one mean per arm, in first-seen order
    others = [
        Credit(2, context, 0.2, 0.0),
        Credit(3, context, 0.4, 0.0),
        Credit(2, context, 0.6, 0.0),
    ]
    assert [(c.arm, c.raw) for c in per_batch.reduce(others, fake)] == [
        (2, pytest.approx(0.4)),
        (3, pytest.approx(0.4)),
    ]


def _lifetime_worker(rank, world, port, out):
    from laser.distributed import process_group_from_env

    env = dict(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1")
    os.environ.update(env, MASTER_PORT=str(port))
    with process_group_from_env():
        up = dist.is_initialized() and dist.get_world_size() == world
        dist.barrier()
    torch.save({"up": up, "down": not dist.is_initialized()}, out / f"life{rank}.pt")


def test_the_entry_points_process_group_is_destroyed_on_the_way_out(tmp_path):
    """laser-train's process group, as torchrun's environment starts it, is gone when the run
    ends: one left alive can abort the process at exit (SIGABRT, a CI failure of the torchrun
    test below)."""
    mp.spawn(_lifetime_worker, args=(2, _free_port(), tmp_path), nprocs=2)
    for rank in (0, 1):
        assert torch.load(tmp_path / f"life{rank}.pt") == {"up": True, "down": True}


def test_laser_train_under_torchrun(world_cache, tmp_path):
    """The real entry point, launched as users launch it: one process per rank, one run dir."""
    run_dir = tmp_path / "run"
    script = Path(sys.executable).parent / "laser-train"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(_free_port()), str(script), "experiment=smoke"]
    cmd += [f"cache_dir={world_cache}", f"hydra.run.dir={run_dir}", "logger=jsonl"]
    cmd += ["progress=false", "loop.log_decisions=true", "loop.selection=batch"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    finals = [line for line in out.stdout.splitlines() if line.startswith("final gold accuracy")]
    assert len(finals) == 1  # rank 0 alone reports
    # smoke: 3 steps x 4 prompts x 2 samples per rank; the cost counts both ranks
    assert "RM forward samples 48 (all ranks)" in finals[0]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    train_rows = [r["step"] for r in rows if "policy/loss" in r]
    assert train_rows == [1, 2, 3]  # rank 0 alone logs: each step once
    decisions = (run_dir / "decisions.jsonl").read_text().splitlines()
    assert len(decisions) == 3  # per-batch: one decision per step, written once
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.pt"))


def _resume_worker(rank, world, port, cache, out):
    """4 steps straight vs 2 steps, a checkpoint, a lost 3rd step, and a resume to 4."""
    from test_loop import cfg_for

    from laser.build import build_loop
    from laser.logging import NullLogger

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        common = ("policy=dpo", "loop.steps=4", "loop.checkpoint_every=0", "loop.selection=prompt")
        full = build_loop(cfg_for(cache, out / "full", *common), NullLogger())
        full.run(progress=False)
        cut = build_loop(cfg_for(cache, out / "cut", *common), NullLogger())
        cut.step()
        cut.step()
        cut.checkpointer.save(cut)  # written by rank 0 into the shared run dir
        cut.step()  # lost, as with kill -9
        dist.barrier()
        resumed = build_loop(
            cfg_for(cache, out / f"new{rank}", *common, f"resume={out / 'cut'}"), NullLogger()
        )
        resumed.run(progress=False)
        torch.save(
            {
                name: torch.cat([p.detach().flatten() for p in lp.trainer.policy.parameters()])
                for name, lp in (("full", full), ("resumed", resumed))
            }
            | {"cost": (full.global_rm_cost(), resumed.global_rm_cost())},
            out / f"resume{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_resume_under_ddp_is_exact(world_cache, tmp_path):
    mp.spawn(_resume_worker, args=(2, _free_port(), world_cache, tmp_path), nprocs=2)
    for rank in (0, 1):
        r = torch.load(tmp_path / f"resume{rank}.pt", weights_only=False)
        torch.testing.assert_close(r["full"], r["resumed"])  # each rank's own RNG restored
        assert r["cost"][0] == r["cost"][1]
