"""Tiny models built from config, for tests and the built-in world: no hub, no download.

``char_tokenizer`` makes a character-level ``PreTrainedTokenizerFast`` (saved and reloaded
with ``save_pretrained``/``AutoTokenizer.from_pretrained`` like any HF tokenizer);
``tiny_gpt2_config`` a small GPT-2 configuration matching it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "unk_token": "<unk>",
}
DEFAULT_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n"


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` plus <pad> <bos> <eos> <unk> (ids 0-3).

    Characters outside the alphabet map to <unk>. Special tokens written literally in text
    (e.g. "<eos>") are recognised as single tokens.
    """
    chars = list(dict.fromkeys(alphabet))  # dedupe, keep order
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)


@dataclass
class TinyGPT2Config:
    """Size of a tiny GPT-2 built from scratch (the fields of ``tiny_gpt2_config``)."""

    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    n_positions: int = 256


def tiny_gpt2_config(
    tokenizer: PreTrainedTokenizerFast,
    *,
    n_layer: int = 2,
    n_head: int = 2,
    n_embd: int = 64,
    n_positions: int = 256,
    num_labels: int = 1,
) -> GPT2Config:
    """A small GPT-2 config whose vocabulary and special-token ids match ``tokenizer``."""
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=num_labels,
        # no dropout: RL compares log-probs of the same tokens across forward passes
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
    )
