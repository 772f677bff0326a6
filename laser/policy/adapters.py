"""Checkpoint state of a LoRA policy: its adapters, not its frozen base.

A LoRA run trains about 0.1% of the weights (SmolLM2-135M, r 8 on q/v of 8 layers: 123k of
134.5M), yet ``state_dict()`` of the peft model holds every base weight, and iterative DPO's
reference (the merged policy of the last sync) is a second full copy: 1.08 GB per checkpoint
of the real-model world, for a few hundred kB of learned state. The base is rebuilt from the
config on resume anyway (``laser.resume`` rebuilds the loop, then loads the state), so a
checkpoint keeps only

- the trainable adapter tensors,
- the adapters as they were at the last reference sync (the reference is re-merged from them:
  ``merge_and_unload`` of the same weights is the same arithmetic, so the same bits),
- sha256 fingerprints of the frozen base and of the reference, checked on load, so that a
  checkpoint resumed onto another base model, or a reference that does not rebuild to the
  saved bits, is refused rather than silently trained on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from laser.checkpoint import tensors_digest


def is_lora(model: nn.Module) -> bool:
    """Whether ``model`` is a peft model (what ``apply_lora`` returns)."""
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the parameters that train (the adapters), by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into ``model``'s trainable parameters; the names and shapes must match
    exactly (another LoRA rank, target or layer set is a different run)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    reshaped = [n for n in params if n in state and params[n].shape != state[n].shape]
    if missing or extra or reshaped:
        detail = (
            f"adapter {reshaped[0]} has shape {tuple(state[reshaped[0]].shape)} in the "
            f"checkpoint, {tuple(params[reshaped[0]].shape)} here"
            if reshaped
            else f"missing {missing[:3]}, unexpected {extra[:3]}"
        )
        raise ValueError(
            f"{what}: the checkpoint's adapters do not match this policy's LoRA setup "
            f"({detail}); resume with the LoRA settings (policy.lora_r, "
            f"lora_target_modules, lora_layers) it was saved with"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])


def frozen_digest(model: nn.Module) -> str:
    """Fingerprint of the weights that do not train (the base under the adapters)."""
    return tensors_digest((n, p) for n, p in model.named_parameters() if not p.requires_grad)


def model_digest(model: nn.Module) -> str:
    """Fingerprint of every weight of ``model`` (the frozen reference)."""
    return tensors_digest(model.named_parameters())


def merged(model: nn.Module, adapters: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A plain copy of the LoRA ``model`` with its adapters (or ``adapters``) merged in."""
    clone = copy.deepcopy(model)
    if adapters is not None:
        load_trainable(clone, adapters, "reference")
    return clone.merge_and_unload()


def lora_weights_state(
    policy: nn.Module, ref_policy: nn.Module, synced: dict | None, base_sha256: str
) -> dict:
    """The ``policy`` / ``ref_policy`` entries of a LoRA trainer's checkpoint: the adapters,
    the adapters the reference was last merged from (``synced``; None: never synced, the
    reference is as built) and the fingerprints that :func:`load_lora_weights` checks."""
    return {
        "policy": {"lora_adapters": trainable_state(policy), "base_sha256": base_sha256},
        "ref_policy": {"synced_adapters": synced, "sha256": model_digest(ref_policy)},
    }


def load_lora_weights(policy: nn.Module, ref_policy: nn.Module, state: dict) -> dict | None:
    """Load :func:`lora_weights_state`'s entries of ``state`` into a freshly built LoRA
    ``policy`` and its ``ref_policy``, re-merging the reference; returns the synced adapters.
    Refuses a policy without LoRA, another base model and a reference that does not rebuild."""
    saved, ref = state["policy"], state["ref_policy"]
    if not is_lora(policy):
        raise ValueError(
            "the checkpoint holds LoRA adapters only, but this policy has no LoRA "
            "(policy.lora_r = 0): resume with the LoRA settings it was saved with"
        )
    if frozen_digest(policy) != saved["base_sha256"]:
        raise ValueError(
            "the checkpoint's LoRA adapters were trained on another base model (the frozen "
            "weights' sha256 differs): resume with the policy it was saved with"
        )
    load_trainable(policy, saved["lora_adapters"], "policy")
    if ref["synced_adapters"] is not None:
        ref_policy.load_state_dict(merged(policy, ref["synced_adapters"]).state_dict())
    if model_digest(ref_policy) != ref["sha256"]:
        raise ValueError(
            "the DPO reference rebuilt from the checkpoint does not match the saved one "
            "(sha256 differs): was the run started with another ref_policy?"
        )
    return ref["synced_adapters"]
