"""TRL's GRPOTrainer on the real model (SmolLM2-135M-Instruct + LoRA, the real-model world's
tasks and RM pool): LASER as the reward function (per-prompt routing, the loop's default
spectral-agreement feedback, no gold labels) against what a TRL user would write without it,
``reward_funcs=[rm1, rm2, rm3, rm4]`` (TRL sums the RMs' scores with equal weights), and one
fixed RM (the world report's best on average). Per setting: seconds per training step, RM
forward samples, and held-out gold accuracy (greedy) before and after. The LoRA recipe and
learning rate are the world's own (conf/experiment/real_smollm2.yaml: r 8 on q/v of the top
8 layers, lr 3e-3), so TRL and the loop train the same adapters.

    python benchmarks/trl_real.py [--steps 12] [--eval 64] [--settings laser all_rms fixed]

Needs the real-model world (python experiments/real/prepare.py). Prints a table and writes
benchmarks/results/trl_real.{json,md}. Run it alone: two torch processes on 2 cores slow
each other many times over.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

OUT = Path(__file__).parent / "results"


def accuracy(model, tok, task, examples, tokens: int) -> float:
    from laser.evaluation import example_scores, macro_accuracy

    scores = example_scores(model, tok, task, examples, max_new_tokens=tokens)
    return macro_accuracy(scores, examples)["mean"]


class RMFunc:
    """One RM as a TRL reward function (what a user passes in ``reward_funcs``)."""

    def __init__(self, name, rm):
        self.__name__, self.rm = name, rm

    def __call__(self, prompts, completions, **kwargs):
        return self.rm.score(list(prompts), list(completions)).tolist()


class StepTimer:
    """Wall time of each optimiser step (TrainerCallback hooks)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.callback = _CB()


def run(setting: str, args) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import AutoConfig
    from trl import GRPOConfig, GRPOTrainer

    from experiments.real.world import EXPERIMENT, real_world
    from laser.bandits import LinUCB
    from laser.build import typed
    from laser.cli import compose_train
    from laser.features import Projected, SentenceEncoder, minilm_path
    from laser.integrations import LaserRewardSelector
    from laser.policy.parts import top_layers
    from laser.spectral import SpectralAgreement
    from laser.world.quality import best_overall

    torch.manual_seed(args.seed)
    recipe = typed(compose_train([f"experiment={EXPERIMENT}"])).policy
    world = real_world()
    # top_layers reads the depth off a model's config: the config alone, not a 20 s load
    shape = SimpleNamespace(config=AutoConfig.from_pretrained(world.policy_path()))
    tok, task = world.tokenizer(), world.task()
    pool = world.reward_models(max_length=160)
    names = list(pool)
    train = task.examples("train", args.steps * args.prompts, seed=args.seed)
    held_out = task.examples("eval", args.eval, seed=0)
    rows = [{"prompt": e.prompt, **e.meta()} for e in train]
    rows = [{k: v for k, v in r.items() if k != "choices"} for r in rows]
    callbacks, selector = [], None
    if setting == "laser":
        featurizer = Projected(SentenceEncoder(minilm_path()), 32, seed=args.seed)
        selector = LaserRewardSelector(
            pool,
            LinUCB(len(pool), 32, alpha=1.0),
            featurizer,
            signal=SpectralAgreement(pool, seed=args.seed),
        )
        funcs, callbacks = [selector], [selector.callback()]
    elif setting == "all_rms":
        funcs = [RMFunc(n, rm) for n, rm in pool.items()]
    else:
        best = best_overall(world, names)
        funcs = [RMFunc(best, pool[best])]
    timer = StepTimer()
    config = GRPOConfig(
        output_dir=f"/tmp/trl_real_{setting}",
        per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations,
        max_completion_length=16,
        temperature=0.7,
        learning_rate=args.lr if args.lr is not None else recipe.lr,
        max_steps=args.steps,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = GRPOTrainer(
        model=world.policy_path(),
        reward_funcs=funcs,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[*callbacks, timer.callback],
        peft_config=LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            target_modules=list(recipe.lora_target_modules),
            layers_to_transform=top_layers(shape, recipe.lora_layers)
            if recipe.lora_layers
            else None,
        ),
    )
    before = accuracy(trainer.model, tok, task, held_out, 16)
    trainer.train()
    after = accuracy(trainer.model, tok, task, held_out, 16)
    steps = timer.times[1:] or timer.times  # the first step includes warm-up
    result = {
        "setting": setting,
        "steps": args.steps,
        "s_per_step": sum(steps) / len(steps),
        "rm_forward_samples": sum(getattr(rm, "forward_samples", 0) for rm in pool.values()),
        "accuracy_before": before,
        "accuracy_after": after,
    }
    if selector is not None:
        result["selector_updates"] = selector.updates
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt")
    ap.add_argument("--eval", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="default: the world's policy.lr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", nargs="+", default=["laser", "all_rms", "fixed"])
    args = ap.parse_args()
    results = [run(s, args) for s in args.settings]
    ref = {r["setting"]: r for r in results}.get("all_rms")
    lines = [
        "| setting | s / step | vs all RMs | RM forward samples | gold acc. before | after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r['s_per_step'] / ref['s_per_step']:.2f}x" if ref else "-"
        lines.append(
            f"| {r['setting']} | {r['s_per_step']:.1f} | {ratio} | {r['rm_forward_samples']} "
            f"| {r['accuracy_before']:.3f} | {r['accuracy_after']:.3f} |"
        )
    command = "python benchmarks/trl_real.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if v is not None  # an unset --lr is the world's policy.lr
    )
    text = "\n".join(lines) + f"\n\n`{command}`\n"
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "trl_real.json").write_text(
        json.dumps({"command": command, "results": results}, indent=1)
    )
    (OUT / "trl_real.md").write_text(text)


if __name__ == "__main__":
    main()
