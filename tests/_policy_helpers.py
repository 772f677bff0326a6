"""What the PolicyTrainer tests share: a tiny GPT-2 policy, its prompts, its tokenizer's
alphabet and a rule reward (each test file builds its own ``tok`` fixture from it)."""

import torch
from transformers import AutoModelForCausalLM

from laser.models import tiny_gpt2_config

PROMPTS = ["go: ", "run: ", "do: ", "x: "]
ALPHABET = "abcdefgh :"  # of the tests' tokenizer (char_tokenizer(ALPHABET))


def _policy(tok, seed=0):
    torch.manual_seed(seed)
    cfg = tiny_gpt2_config(tok, n_layer=1, n_head=2, n_embd=32, n_positions=64)
    return AutoModelForCausalLM.from_config(cfg)


def share_of_a(completions):
    return torch.tensor([sum(ch == "a" for ch in c) / max(len(c), 1) for c in completions])
