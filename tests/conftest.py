"""Test-wide settings: no hub, no internet, no W&B uploads (see README "Tests")."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def char_tok():
    from laser.models import char_tokenizer

    return char_tokenizer()


@pytest.fixture
def tiny_rm(char_tok):
    """A randomly initialised 1-layer GPT-2 reward model (num_labels=1) for the char tokenizer."""
    from transformers import AutoModelForSequenceClassification

    from laser.models import tiny_gpt2_config

    torch.manual_seed(0)
    cfg = tiny_gpt2_config(char_tok, n_layer=1, n_head=2, n_embd=32, n_positions=128)
    return AutoModelForSequenceClassification.from_config(cfg).eval()
