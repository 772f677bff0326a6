"""Starting accuracy of the real-model world's policy per domain: greedy and sampled.

python experiments/real/probe.py [--n 48] [--samples 4] [--temperature 1.0] [--tokens 24]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from laser.evaluation import greedy_completions
from laser.policy.rollout import generate_rollout
from laser.world.external import ExternalConfig, ExternalWorld, RMSource, TaskSource


def real_world_config() -> ExternalConfig:
    from pathlib import Path

    from laser.gguf import SMOLLM2

    data = Path(__file__).parent / "data"
    kinds = {
        "next": "gsm8k",
        "add": "gsm8k",
        "larger": "multiple_choice",
        "antonym": "multiple_choice",
    }
    tasks = [
        TaskSource(kind=k, source=str(data / f"{d}.jsonl"), domain=d) for d, k in kinds.items()
    ]
    return ExternalConfig(
        policy=SMOLLM2,
        reward_models={"x": RMSource(source="unused")},
        tasks=tasks,
        chat_template=True,
        torch_dtype="float32",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--tokens", type=int, default=24)
    args = ap.parse_args()
    torch.manual_seed(0)
    world = ExternalWorld(real_world_config())
    tok, policy, task = world.tokenizer(), world.policy(), world.task()
    examples = task.examples("eval", args.n, seed=0)
    t = time.time()
    greedy = greedy_completions(policy, tok, [e.prompt for e in examples], args.tokens)
    tg = time.time() - t
    t = time.time()
    ro = generate_rollout(
        policy,
        policy,
        tok,
        [e.prompt for e in examples],
        n=args.samples,
        max_new_tokens=args.tokens,
        temperature=args.temperature,
        behaviour_logprobs=False,
    )
    ts = time.time() - t
    texts = tok.batch_decode(ro.response_ids, skip_special_tokens=True)
    g, s = defaultdict(list), defaultdict(list)
    for e, c in zip(examples, greedy):
        g[e.domain].append(task.evaluate(e.prompt, c, e.meta()))
    for i, c in enumerate(texts):
        e = examples[i // args.samples]
        s[e.domain].append(task.evaluate(e.prompt, c, e.meta()))
    for d in g:
        print(
            f"{d:8s} greedy {sum(g[d]) / len(g[d]):.2f} sampled {sum(s[d]) / len(s[d]):.2f} "
            f"| {greedy[[e.domain for e in examples].index(d)]!r}"
        )
    print(f"greedy {tg:.1f}s for {len(examples)}; sampled {ts:.1f}s for {len(texts)}")


if __name__ == "__main__":
    main()
