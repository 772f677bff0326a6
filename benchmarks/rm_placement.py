"""Peak accelerator memory of a pool of K reward models: all resident vs LASER's placement
(lazy load, score on the GPU, park on CPU after scoring: ``rm_device=cuda rm_offload=true``).

    python benchmarks/rm_placement.py            # K = 4 GPT-2-small-sized RMs, batch 32 x 256
    python benchmarks/rm_placement.py --k 8 --layers 24 --width 1024

Needs a CUDA device (prints why and exits otherwise). Scores one batch with every RM in turn,
as a bandit does over steps, and reports torch.cuda.max_memory_allocated and the time per
scoring call for both placements. Writes benchmarks/results/rm_placement.csv.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForSequenceClassification

from _common import RESULTS, machine, write_csv
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.rewards import HFRewardModel


def make_pool(k: int, layers: int, width: int, tok, offload: bool) -> list[HFRewardModel]:
    pool = []
    for i in range(k):
        torch.manual_seed(i)
        cfg = tiny_gpt2_config(
            tok, n_layer=layers, n_head=width // 64, n_embd=width, n_positions=512
        )
        model = AutoModelForSequenceClassification.from_config(cfg)
        pool.append(
            HFRewardModel(model, tok, name=f"rm{i}", device="cuda", offload=offload, max_length=512)
        )
    return pool


def measure(pool: list[HFRewardModel], prompts: list[str], completions: list[str], resident: bool):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    if resident:
        for rm in pool:
            rm.to("cuda")
    times = []
    for rm in pool:
        torch.cuda.synchronize()
        start = time.perf_counter()
        rm.score(prompts, completions)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return torch.cuda.max_memory_allocated() / 2**20, sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("rm_placement needs a CUDA device; none here, nothing measured")
        return
    print(f"machine: {machine()}")
    tok = char_tokenizer()
    prompts = ["q" * (args.length // 2)] * args.batch
    completions = ["a" * (args.length // 2 - 2)] * args.batch
    rows = []
    for label, offload, resident in (
        ("one RM at a time (LASER)", True, False),
        ("all resident", False, True),
    ):
        pool = make_pool(args.k, args.layers, args.width, tok, offload)
        measure(pool[:1], prompts, completions, resident)  # warm-up (CUDA context, kernels)
        peak, per_call = measure(pool, prompts, completions, resident)
        one = sum(p.numel() * p.element_size() for p in pool[0].model.parameters()) / 2**20
        rows.append(
            {
                "placement": label,
                "k": args.k,
                "peak_mib": round(peak),
                "one_rm_weights_mib": round(one),
                "ms_per_score": round(per_call * 1e3, 1),
            }
        )
        print(rows[-1])
        del pool
    write_csv(RESULTS / "rm_placement.csv", rows)


if __name__ == "__main__":
    main()
