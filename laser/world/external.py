"""A world made of existing models and datasets (local paths or hub ids): the policy, the RM
pool and the tasks of a real run such as the LASeR paper's (conf/experiment/paper_*.yaml).

Everything goes through the loaders the built-in world uses (``AutoModelForCausalLM``,
``HFRewardModel``, ``GSM8KTask`` / ``MultipleChoiceTask`` on ``load_rows``), so a config that
works with tiny local stand-ins works with the hub ids on a machine that has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from laser.rewards import HFRewardModel, LikelihoodRewardModel
from laser.rewards.data import load_rows
from laser.tasks.hf import GSM8KTask, MultipleChoiceTask
from laser.tasks.mixture import MixtureTask

TASK_KINDS = {"gsm8k": GSM8KTask, "multiple_choice": MultipleChoiceTask}


@dataclass
class TaskSource:
    kind: str = "gsm8k"  # gsm8k | multiple_choice
    source: str = ""  # a local .jsonl/.json/.parquet/.csv or a hub id
    name: str | None = None  # the hub dataset's configuration (e.g. "main" for GSM8K)
    split: str = "train"  # the hub split to read (local files: the whole file)
    domain: str = ""
    eval_share: float = 0.2


@dataclass
class RMSource:
    source: str = ""  # local directory or hub id (downloaded: resolved from the HF cache)
    kind: str = "classifier"  # classifier: scalar-head RM | likelihood: a causal LM's mean
    # log-likelihood of the completion (how the LASeR authors' code scores with its RMs)


RM_KINDS = {"classifier": HFRewardModel, "likelihood": LikelihoodRewardModel}


def resolve(source: str) -> str:
    """A local directory as is; a hub id to its downloaded snapshot (never downloads)."""
    if Path(source).exists():
        return source
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id=source, local_files_only=True)
    except Exception as exc:
        raise FileNotFoundError(
            f"{source!r} is neither a local path nor a downloaded hub model; download it first "
            f"(huggingface-cli download {source}) or give its local directory"
        ) from exc


@dataclass
class ExternalConfig:
    policy: str = ""  # a causal LM: local directory or hub id
    reward_models: dict[str, RMSource] = field(default_factory=dict)
    tasks: list[TaskSource] = field(default_factory=list)
    torch_dtype: str = "auto"


class ExternalWorld:
    """The same interface as the built-in ``World`` (tokenizer, policy, reward_models) plus
    the task. No report: the oracle router and routing accuracy need the built-in world."""

    summary: dict[str, Any] = {}

    def __init__(self, cfg: ExternalConfig) -> None:
        problems = []
        if not cfg.policy:
            problems.append("external.policy is empty")
        if not cfg.reward_models:
            problems.append("external.reward_models is empty")
        if not cfg.tasks:
            problems.append("external.tasks is empty")
        problems += [
            f"external.tasks[{i}].kind={t.kind!r} is not one of {sorted(TASK_KINDS)}"
            for i, t in enumerate(cfg.tasks)
            if t.kind not in TASK_KINDS
        ]
        problems += [
            f"external.reward_models.{name}.kind={rm.kind!r} is not one of {sorted(RM_KINDS)}"
            for name, rm in cfg.reward_models.items()
            if rm.kind not in RM_KINDS
        ]
        if problems:
            raise ValueError("; ".join(problems))
        self.cfg = cfg
        self.reward_model_names = list(cfg.reward_models)

    def tokenizer(self):
        tok = AutoTokenizer.from_pretrained(self.cfg.policy)
        if tok.pad_token is None:  # Llama-style tokenizers ship without one
            tok.pad_token = tok.eos_token
        return tok

    def policy(self):
        return AutoModelForCausalLM.from_pretrained(
            self.cfg.policy, torch_dtype=self.cfg.torch_dtype
        )

    def reward_models(self, **kwargs: Any) -> dict[str, HFRewardModel]:
        return {
            name: RM_KINDS[rm.kind](resolve(rm.source), name=name, **kwargs)
            for name, rm in self.cfg.reward_models.items()
        }

    def reward_model_sources(self) -> dict[str, str]:
        return {name: rm.source for name, rm in self.cfg.reward_models.items()}

    def task(self) -> MixtureTask:
        return MixtureTask(
            [
                TASK_KINDS[t.kind](
                    load_rows(t.source, split=t.split, name=t.name),
                    domain=t.domain or t.kind,
                    eval_share=t.eval_share,
                )
                for t in self.cfg.tasks
            ]
        )
