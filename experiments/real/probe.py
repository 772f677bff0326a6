"""Starting accuracy of the real-model world's policy per domain: greedy and sampled, on the
held-out split, with the loop's sampler (``generate_rollout``) and the tasks' gold checkers.

python experiments/real/probe.py [--n 48] [--samples 4] [--temperature 0.7] [--tokens 16]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from experiments.real.world import real_world
from laser.evaluation import greedy_completions
from laser.policy.rollout import generate_rollout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    world = real_world("external.report=null")
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
