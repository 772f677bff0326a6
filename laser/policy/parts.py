"""What a PolicyTrainer is assembled from: the critic, LoRA, the optimiser, and the checks
that the policy and its frozen reference are set up for RL."""

from __future__ import annotations

import copy

import torch
from torch import nn

from laser.policy.config import PolicyConfig
from laser.policy.rollout import response_logits


def disable_dropout(model: nn.Module) -> None:
    """RL needs the log-probs of the training forward to match the rollout's: no dropout."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    return cls(params, lr=lr, weight_decay=weight_decay)


def apply_lora(policy: nn.Module, cfg: PolicyConfig) -> nn.Module:
    """Wrap ``policy`` with LoRA adapters (peft); only the adapters (and critic) train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError("policy.lora_r > 0 needs peft: pip install peft") from exc
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        task_type="CAUSAL_LM",
        target_modules=list(cfg.lora_target_modules) if cfg.lora_target_modules else None,
        layers_to_transform=top_layers(policy, cfg.lora_layers) if cfg.lora_layers else None,
    )
    return get_peft_model(policy, lora)


def top_layers(policy: nn.Module, n: int) -> list[int]:
    """Indices of the top ``n`` decoder layers of ``policy`` (HF configs name the depth
    ``num_hidden_layers``; GPT-2's ``n_layer`` is mapped to it)."""
    depth = getattr(getattr(policy, "config", None), "num_hidden_layers", None)
    if not isinstance(depth, int):
        raise ValueError("policy.lora_layers needs a model whose config gives num_hidden_layers")
    if n > depth:
        raise ValueError(f"policy.lora_layers={n} but the policy has only {depth} layers")
    return list(range(depth - n, depth))


class ValueCritic(nn.Module):
    """V(s_t) for every response position: a linear head on the last hidden state, either of
    the policy's own forward (``shared``) or of a separate copy of its trunk (``separate``)."""

    def __init__(self, policy: nn.Module, separate: bool) -> None:
        super().__init__()
        config = policy.config.get_text_config()
        self.head = nn.Linear(config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.trunk = (
            copy.deepcopy(policy.get_base_model() if hasattr(policy, "get_base_model") else policy)
            if separate
            else None
        )

    def values(self, policy_out, rollout_slice: tuple[torch.Tensor, ...], P: int) -> torch.Tensor:
        """(B, R) values; ``policy_out`` must carry hidden states when the critic is shared."""
        if self.trunk is None:
            hidden = policy_out.hidden_states[-1]
        else:
            q, qm, r, rm = rollout_slice
            _, out = response_logits(self.trunk, q, qm, r, rm, output_hidden_states=True)
            hidden = out.hidden_states[-1]
        return self.head(hidden[:, P - 1 : -1, :].float()).squeeze(-1)


def check_distinct(policy: nn.Module, ref_policy: nn.Module) -> None:
    """The reference must be its own copy: freezing it must not freeze the policy."""
    shared = {p.data_ptr() for p in policy.parameters()} & {
        p.data_ptr() for p in ref_policy.parameters()
    }
    if policy is ref_policy or shared:
        raise ValueError(
            "ref_policy shares parameters with policy; pass a separate frozen copy "
            "(e.g. copy.deepcopy(policy)) so the reference stays fixed while the policy trains"
        )
