"""Samples per second of one policy step on CPU: our PPO and iterative-DPO steps next to TRL's
GRPOTrainer and RLOOTrainer, same tiny model, batch and completion length, same process.

    python benchmarks/policy_throughput.py            # 8 prompts x 4 samples, 16 new tokens

A "step" is everything from prompts to updated weights: sampling, log-probs of the policy and
of a frozen reference (TRL: beta=0.05 loads one, as our KL penalty needs), rewards from the
same rule function, and one optimisation pass (PPO: 1 epoch, 1 minibatch, like GRPO's
num_iterations=1; like TRL there, the behaviour log-probs come from the training forward,
``behaviour_logprobs=False``). Median over the timed steps after warm-up, methods taking turns
over --rounds rounds. Writes
benchmarks/results/policy_throughput.csv. Goal (issue 4): ours at least as fast per sample.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
import warnings

import datasets
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from _common import RESULTS, machine, write_csv
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.policy import PolicyConfig, PolicyTrainer, generate_rollout

PROMPTS = [f"task {i}: write a's: " for i in range(8)]


def share_of_a(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [sum(ch == "a" for ch in t) / max(len(t), 1) for t in texts]


def tiny_policy(tok):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(
        tiny_gpt2_config(tok, n_layer=2, n_head=2, n_embd=64, n_positions=128)
    )


def bench_ours(algo, tok, n, new_tokens, warmup, steps):
    policy = tiny_policy(tok)
    cfg = PolicyConfig(algo=algo, lr=1e-4, ppo_epochs=1, num_minibatches=1, kl_coef=0.05)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        ro = generate_rollout(
            trainer.policy,
            trainer.ref_policy,
            tok,
            PROMPTS,
            n=n,
            max_new_tokens=new_tokens,
            generator_seed=step,
            behaviour_logprobs=False,
        )
        trainer.update(ro, torch.tensor(share_of_a(ro.completions)))
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


class _StepTimer(TrainerCallback):
    def __init__(self):
        self.stamps = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.stamps.append(("begin", time.perf_counter()))

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(("end", time.perf_counter()))

    def step_times(self):
        begins = [t for kind, t in self.stamps if kind == "begin"]
        ends = [t for kind, t in self.stamps if kind == "end"]
        return [e - b for b, e in zip(begins, ends)]


def bench_trl(kind, tok, n, new_tokens, warmup, steps):
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if kind == "grpo" else (RLOOConfig, RLOOTrainer)
    )
    batch = len(PROMPTS) * n
    rows = [{"prompt": p} for _ in range(warmup + steps + 1) for p in PROMPTS]
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        # TRL builds its reference model from the policy's path: save the same tiny model there
        tiny_policy(tok).save_pretrained(f"{out}/policy")
        args = config_cls(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_generations=n,
            max_completion_length=new_tokens,
            beta=0.05,
            num_iterations=1,
            learning_rate=1e-4,
            max_steps=warmup + steps,
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            disable_tqdm=True,
            temperature=1.0,
            shuffle_dataset=False,
            seed=0,
        )
        trainer = trainer_cls(
            model=f"{out}/policy",
            reward_funcs=[share_of_a],
            args=args,
            train_dataset=datasets.Dataset.from_list(rows),
            processing_class=tok,
            callbacks=[timer],
        )
        trainer.train()
    return statistics.median(timer.step_times()[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {machine()}")
    tok = char_tokenizer()
    batch = len(PROMPTS) * args.n
    runs = {
        "laser PPO": lambda: bench_ours(
            "ppo", tok, args.n, args.new_tokens, args.warmup, args.steps
        ),
        "laser DPO": lambda: bench_ours(
            "dpo", tok, args.n, args.new_tokens, args.warmup, args.steps
        ),
        "TRL GRPOTrainer": lambda: bench_trl(
            "grpo", tok, args.n, args.new_tokens, args.warmup, args.steps
        ),
        "TRL RLOOTrainer": lambda: bench_trl(
            "rloo", tok, args.n, args.new_tokens, args.warmup, args.steps
        ),
    }
    # This VM's speed drifts over minutes, so the methods take turns: each round times every
    # method once; a method's figure is the median of its per-round medians.
    per_round: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            per_round[name].append(run())
            print(f"round {round_ + 1}: {name:>16} {per_round[name][-1] * 1e3:8.1f} ms/step")
    rows = []
    for name, times in per_round.items():
        seconds = statistics.median(times)
        rows.append(
            {
                "method": name,
                "samples_per_step": batch,
                "new_tokens": args.new_tokens,
                "median_step_s": round(seconds, 4),
                "samples_per_s": round(batch / seconds, 1),
                "round_medians_ms": " ".join(f"{t * 1e3:.1f}" for t in times),
            }
        )
        print(f"{name:>16}: {seconds * 1e3:8.1f} ms/step  {batch / seconds:8.1f} samples/s")
    write_csv(RESULTS / "policy_throughput.csv", rows)
    print(f"wrote {RESULTS / 'policy_throughput.csv'}")


if __name__ == "__main__":
    main()
