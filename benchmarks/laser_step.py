"""Time and peak memory of one LASER step with a pool of K reward models (issue 8).

    python benchmarks/laser_step.py                    # GPT-2-small-sized policy and 4 RMs
    python benchmarks/laser_step.py --k 8 --offload    # 8 RMs, each parked on CPU after use

A step is the whole loop iteration of ``laser-train``: context features, the LinUCB choice
per prompt, sampling, scoring with the chosen RMs, the iterative-DPO update and the bandit
update. The run is the real ``build_loop`` on an external world of randomly initialised
GPT-2-shaped models saved to a temporary directory (the same path as
``experiment=paper_reasoning``, with stand-ins), so nothing is downloaded. On a GPU the
policy and RMs sit there (``device=cuda rm_device=cuda``) and the figure is
``torch.cuda.max_memory_allocated``; on CPU it is the process's peak resident memory.
Median step time after --warmup steps. Writes benchmarks/results/laser_step_<...>.csv.

    python benchmarks/laser_step.py --compare --ks 2 4 8   # LASER vs ensemble vs round-robin

``--compare`` (issue 16, the paper's efficiency claim): for each K, one step-timing run per
method, each in its own process, all with RMs of the policy's shape: LASER with its default
feedback (spectral agreement: a quarter of the prompts audited by every RM, counted), LASER
with majority-agreement feedback (no extra RM pass), the mean ensemble (every RM scores every
sample) and round-robin (one RM per step; its free majority feedback only advances the
turn). Writes laser_step_compare_<device>.csv with each method's median step time and its
ratio to the ensemble's.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from _common import RESULTS, machine, write_csv
from laser.build import build_loop
from laser.cli import compose_train
from laser.logging import NullLogger
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.world.external import ExternalConfig


def save_world(root: Path, k: int, layers: int, width: int) -> None:
    """A policy, K scalar-head RMs of the same shape and a GSM8K-format dataset."""
    tok = char_tokenizer()
    shape = dict(n_layer=layers, n_head=max(1, width // 64), n_embd=width, n_positions=512)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_gpt2_config(tok, **shape)).save_pretrained(
        root / "policy"
    )
    tok.save_pretrained(root / "policy")
    for i in range(k):
        torch.manual_seed(i + 1)
        rm = AutoModelForSequenceClassification.from_config(tiny_gpt2_config(tok, **shape))
        rm.save_pretrained(root / f"rm{i}")
        tok.save_pretrained(root / f"rm{i}")
    rows = [{"question": f"what is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(200)]
    (root / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def peak_memory_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


METHODS = {  # laser-train overrides of each method in --compare
    "laser": ["bandit=linucb", "feedback=spectral_agreement"],  # the loop's default
    "laser_majority": ["bandit=linucb", "feedback=majority_agreement"],
    "mean_ensemble": ["bandit=fixed", "pool=ensemble", "feedback=none"],
    "round_robin": ["bandit=round_robin", "feedback=majority_agreement"],  # free; it only advances
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=4, help="reward models in the pool")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--batch", type=int, default=8, help="prompts per step")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--offload", action="store_true", help="rm_offload=true")
    parser.add_argument(
        "--minibatches", type=int, default=1, help="policy.num_minibatches (memory vs time)"
    )
    parser.add_argument("--compare", action="store_true", help="LASER vs ensemble vs RR")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8], help="with --compare")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    return parser.parse_args(argv)


def run_config(root: Path, args: argparse.Namespace, k: int, method: list[str], device: str):
    # the external world is assigned as one node after composing: TrainConfig.external is a
    # structured node that is None until set, which command-line overrides cannot fill
    external = {
        "policy": str(root / "policy"),
        "torch_dtype": "float32",
        "reward_models": {f"rm{i}": {"source": str(root / f"rm{i}")} for i in range(k)},
        "tasks": [{"kind": "gsm8k", "source": str(root / "gsm8k.jsonl")}],
    }
    cfg = compose_train(
        [
            "policy=dpo",
            f"++policy.num_minibatches={args.minibatches}",
            "features=policy_mean",
            *method,
            f"output_dir={root / 'run'}",
            "progress=false",
            f"device={device}",
            f"rm_device={device}",
            f"rm_offload={str(args.offload).lower()}",
            "world.max_length=256",
            "loop.selection=prompt",
            f"loop.batch_size={args.batch}",
            f"loop.samples_per_prompt={args.samples}",
            f"loop.max_new_tokens={args.new_tokens}",
            f"loop.steps={args.warmup + args.steps}",
            "loop.eval_every=0",
            "loop.checkpoint_every=0",
        ]
    )
    cfg.external = OmegaConf.merge(OmegaConf.structured(ExternalConfig), external)
    return cfg


def time_steps(root: Path, args: argparse.Namespace, k: int, method: list[str]) -> dict:
    """Median step time (after warm-up), RM forward samples per step, peak memory."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loop = build_loop(run_config(root, args, k, method, device), NullLogger())
    times, costs = [], []
    for _ in range(args.warmup + args.steps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        record = loop.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        costs.append(record.rm_cost)
    return {
        "device": device,
        "seconds": statistics.median(times[args.warmup :]),
        "times": times,
        # record.rm_cost counts the run so far: the timed steps' share of it
        "rm_forward_samples_per_step": (costs[-1] - (costs[args.warmup - 1] if args.warmup else 0))
        / args.steps,
        "loaded": sum(getattr(rm, "loaded", True) for rm in loop.router.arms.rms.values()),
        "params": sum(p.numel() for p in loop.trainer.policy.parameters()) / 1e6,
        "peak": peak_memory_mib(device),
    }


def _child(queue, root, args, k, method) -> None:
    queue.put(time_steps(root, args, k, method))


def in_child(root: Path, args: argparse.Namespace, k: int, method: list[str]) -> dict:
    """time_steps in a fresh process: each figure has its own peak memory and warm caches."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue, root, args, k, method))
    child.start()
    child.join()  # the result is tiny: the queue's feeder thread does not block the exit
    if child.exitcode != 0 or queue.empty():
        raise SystemExit(f"timing {method} with K={k} failed (exit code {child.exitcode})")
    return queue.get()


def build_stand_ins(root: Path, args: argparse.Namespace, k: int) -> None:
    # built in a child process, so the peak memory below is the run's, not the build's
    child = mp.get_context("spawn").Process(
        target=save_world, args=(root, k, args.layers, args.width)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"building the stand-in models failed (exit code {child.exitcode})")


def compare(args: argparse.Namespace) -> None:
    """LASER vs mean ensemble vs round-robin per K, with the step-time ratio to the ensemble."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_stand_ins(root, args, max(args.ks))
        for k in args.ks:
            timed = {m: in_child(root, args, k, METHODS[m]) for m in args.methods}
            ensemble = timed.get("mean_ensemble", {}).get("seconds")
            for m, t in timed.items():
                rows.append(
                    {
                        "device": t["device"],
                        "k_rms": k,
                        "method": m,
                        "policy_params_m": round(t["params"], 1),
                        "rm_shape": f"{args.layers}x{args.width} (as the policy)",
                        "prompts_x_samples": f"{args.batch}x{args.samples}",
                        "new_tokens": args.new_tokens,
                        "median_step_s": round(t["seconds"], 3),
                        "ratio_to_ensemble": round(t["seconds"] / ensemble, 3) if ensemble else "",
                        "rm_forward_samples_per_step": t["rm_forward_samples_per_step"],
                        "step_times_s": " ".join(f"{x:.3f}" for x in t["times"]),
                        "peak_memory_mib": round(t["peak"], 1),
                    }
                )
                print(
                    f"K={k} {m:>15}: {t['seconds']:.3f} s/step "
                    f"({rows[-1]['ratio_to_ensemble']} x ensemble), "
                    f"{t['rm_forward_samples_per_step']:.0f} RM forward samples/step",
                    flush=True,
                )
    path = RESULTS / f"laser_step_compare_{rows[0]['device']}.csv"
    write_csv(path, rows)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"machine: {machine()}")
    if args.compare:
        compare(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_stand_ins(root, args, args.k)
        t = time_steps(root, args, args.k, ["bandit=linucb", "feedback=neg_loss"])
    device, seconds, peak, loaded, params = (
        t["device"],
        t["seconds"],
        t["peak"],
        t["loaded"],
        t["params"],
    )
    row = {
        "device": device,
        "k_rms": args.k,
        "rm_offload": args.offload,
        "dpo_minibatches": args.minibatches,
        "policy_params_m": round(params, 1),
        "prompts_x_samples": f"{args.batch}x{args.samples}",
        "new_tokens": args.new_tokens,
        "median_step_s": round(seconds, 3),
        "step_times_s": " ".join(f"{x:.3f}" for x in t["times"]),
        "peak_memory_mib": round(peak, 1),
        "peak_memory_kind": "cuda max_memory_allocated" if device == "cuda" else "process RSS",
        "rms_loaded": loaded,
    }
    print(
        f"one LASER step: {seconds:.3f} s (median of {args.steps}); peak memory {peak:.0f} MiB "
        f"({row['peak_memory_kind']}); policy {params:.1f}M params; {loaded}/{args.k} RMs loaded"
    )
    suffix = f"{device}_k{args.k}_mb{args.minibatches}{'_offload' if args.offload else ''}"
    write_csv(RESULTS / f"laser_step_{suffix}.csv", [row])
    print(f"wrote {RESULTS / f'laser_step_{suffix}.csv'}")


if __name__ == "__main__":
    main()
