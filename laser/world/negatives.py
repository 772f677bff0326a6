"""Wrong answers the SFT policy itself samples: on-policy negatives for the RM pool.

Real RMs are trained on comparisons of a policy's own samples. RMs that only ever compared
gold answers with hand-made corruptions were exploited within a few dozen RL steps by outputs
no corruption resembles (measured on the default world: every RM, and the per-domain oracle
router, drove gold accuracy below the SFT start). Pairs whose rejected side is a wrong sample
of the SFT policy teach each RM the errors the policy actually makes, on its own domains only.
"""

from __future__ import annotations

import torch

from laser.policy.rollout import left_pad
from laser.tasks.base import Example, Task


@torch.no_grad()
def sampled_wrong_answers(
    policy,
    tokenizer,
    task: Task,
    examples: list[Example],
    *,
    n: int = 4,
    max_new_tokens: int = 8,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, list[str]]:
    """{prompt: distinct wrong completions among ``n`` temperature-1 samples} (may be empty)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    policy.eval()
    wrong: dict[str, list[str]] = {}
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            ids = [tokenizer(e.prompt, add_special_tokens=False).input_ids for e in chunk]
            x, mask = left_pad(ids, tokenizer.pad_token_id)
            gen = policy.generate(
                input_ids=x,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                num_return_sequences=n,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(gen[:, x.shape[1] :], skip_special_tokens=True)
            for i, e in enumerate(chunk):
                samples = dict.fromkeys(texts[i * n : (i + 1) * n])  # distinct, in order
                wrong[e.prompt] = [
                    s for s in samples if s.strip() and task.evaluate(e.prompt, s, e.meta()) < 1.0
                ]
    finally:
        torch.random.set_rng_state(generator_state)  # the caller's RNG stream is unchanged
    return wrong
