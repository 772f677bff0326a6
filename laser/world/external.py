"""A world made of existing models and datasets (local paths or hub ids): the policy, the RM
pool and the tasks of a real run such as the LASeR paper's (conf/experiment/paper_*.yaml).

Everything goes through the loaders the built-in world uses (``AutoModelForCausalLM``,
``HFRewardModel``, ``GSM8KTask`` / ``MultipleChoiceTask`` on ``load_rows``), so a config that
works with tiny local stand-ins works with the hub ids on a machine that has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from laser.gguf import local_model
from laser.rewards import HFRewardModel, LikelihoodRewardModel
from laser.rewards.data import load_rows
from laser.tasks.chat import ChatTemplateTask
from laser.tasks.hf import GSM8KTask, MultipleChoiceTask
from laser.tasks.mixture import MixtureTask
from laser.tasks.prompts import PromptTask

DEFAULT_CACHE = ".cache/laser"  # TrainConfig.cache_dir's default
TASK_KINDS = {"gsm8k": GSM8KTask, "multiple_choice": MultipleChoiceTask, "prompts": PromptTask}


@dataclass
class TaskSource:
    kind: str = "gsm8k"  # gsm8k | multiple_choice | prompts (open-ended; needs a judge)
    source: str = ""  # a local .jsonl/.json/.parquet/.csv or a hub id
    name: str | None = None  # the hub dataset's configuration (e.g. "main" for GSM8K)
    split: str = "train"  # the hub split to read (local files: the whole file)
    domain: str = ""
    eval_share: float = 0.2
    where: dict[str, Any] = field(default_factory=dict)  # keep rows whose column == value


@dataclass
class RMSource:
    source: str = ""  # local directory or hub id (downloaded: resolved from the HF cache)
    kind: str = "classifier"  # classifier: scalar-head RM | likelihood: a causal LM's mean
    # log-likelihood of the completion (how the LASeR authors' code scores with its RMs)
    chat_template: bool = False  # format (prompt, completion) with the RM tokenizer's template


RM_KINDS = {"classifier": HFRewardModel, "likelihood": LikelihoodRewardModel}


def resolve(source: str, cache_dir: str | Path = DEFAULT_CACHE) -> str:
    """A local directory as is; a GGUF file (a path or ``package:<module>/<file>.gguf``) to
    its converted, cached folder (laser/gguf.py); a hub id to its downloaded snapshot (never
    downloads)."""
    local = local_model(source, cache_dir)  # GGUF and package: sources; others unchanged
    if Path(local).exists():
        return local
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id=source, local_files_only=True)
    except Exception as exc:
        raise FileNotFoundError(
            f"{source!r} is neither a local path nor a downloaded hub model; download it first "
            f"(huggingface-cli download {source}) or give its local directory"
        ) from exc


def load_rm(
    name: str, rm: RMSource, cache_dir: str | Path = DEFAULT_CACHE, **kwargs: Any
) -> HFRewardModel:
    """An RM of the pool (or the judge) from its source; it loads lazily, on first use."""
    return RM_KINDS[rm.kind](
        resolve(rm.source, cache_dir), name=name, chat_template=rm.chat_template, **kwargs
    )


def load_report(path: str, rms: list[str]) -> dict[str, Any]:
    """``{"rm_domain_accuracy": {rm: {domain: accuracy}}}`` from ``path``, checked to cover
    every RM of the pool with the same domains."""
    try:
        data = json.loads(Path(path).read_text())
        matrix = data["rm_domain_accuracy"]
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"external.report {path!r} not found") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"external.report {path!r}: no rm_domain_accuracy table ({exc})") from exc
    missing = [rm for rm in rms if rm not in matrix]
    domains = {tuple(sorted(row)) for row in matrix.values()}
    if missing or len(domains) != 1:
        raise ValueError(
            f"external.report {path!r} must rate every RM of the pool on the same domains; "
            f"missing RMs {missing}, domain sets {sorted(domains)}"
        )
    return data


@dataclass
class ExternalConfig:
    # a causal LM: local directory, hub id, or GGUF file (a path or package:<module>/<f>.gguf)
    policy: str = ""
    reward_models: dict[str, RMSource] = field(default_factory=dict)
    tasks: list[TaskSource] = field(default_factory=list)
    torch_dtype: str = "auto"
    # write the policy's prompts in its tokenizer's chat template (instruct models)
    chat_template: bool = False
    # a JSON file {"rm_domain_accuracy": {rm: {domain: held-out pairwise accuracy}}} (what
    # experiments/real/matrix.py writes): enables the oracle router, bandit.arm=best and the
    # routing accuracy, which need to know each RM's quality per domain
    report: str | None = None
    # scores held-out completions of ``prompts`` tasks (laser/tasks/prompts.py); keep it out of
    # reward_models, or the policy is graded by an RM it was trained on
    judge: RMSource | None = None


class ExternalWorld:
    """The same interface as the built-in ``World`` (tokenizer, policy, reward_models) plus
    the task. The oracle router and routing accuracy need ``report`` (each RM's accuracy per
    domain), as the built-in world's own report gives them."""

    def __init__(self, cfg: ExternalConfig, cache_dir: str | Path = DEFAULT_CACHE) -> None:
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
        rms = {f"external.reward_models.{name}": rm for name, rm in cfg.reward_models.items()}
        if cfg.judge is not None:
            rms["external.judge"] = cfg.judge
        problems += [
            f"{key}.kind={rm.kind!r} is not one of {sorted(RM_KINDS)}"
            for key, rm in rms.items()
            if rm.kind not in RM_KINDS
        ]
        problems += [
            f"{key}: chat_template is only supported by kind 'classifier' RMs"
            for key, rm in rms.items()
            if rm.chat_template and rm.kind == "likelihood"
        ]
        problems += [
            f"external.tasks[{i}].where is only supported by kind 'prompts'"
            for i, t in enumerate(cfg.tasks)
            if t.where and t.kind != "prompts"
        ]
        if any(t.kind == "prompts" for t in cfg.tasks) and cfg.judge is None:
            problems.append(
                "external.tasks has a 'prompts' task (no gold answers) but external.judge is "
                "not set: name an RM outside the pool to score held-out completions"
            )
        if cfg.judge is not None and cfg.judge.source in {
            rm.source for rm in cfg.reward_models.values()
        }:
            problems.append(
                f"external.judge {cfg.judge.source!r} is also in reward_models: the policy "
                "would be graded by an RM it was trained on"
            )
        if problems:
            raise ValueError("; ".join(problems))
        self.cfg = cfg
        self.summary = load_report(cfg.report, list(cfg.reward_models)) if cfg.report else {}
        self.cache_dir = cache_dir
        self._policy_path: str | None = None
        self.reward_model_names = list(cfg.reward_models)

    def policy_path(self) -> str:
        """The policy's folder (a GGUF policy converted and cached on first use; resolved
        once: verifying the cached copy hashes it)."""
        if self._policy_path is None:
            self._policy_path = resolve(self.cfg.policy, self.cache_dir)
        return self._policy_path

    def tokenizer(self):
        tok = AutoTokenizer.from_pretrained(self.policy_path())
        if tok.pad_token is None:  # Llama-style tokenizers ship without one
            tok.pad_token = tok.eos_token
        return tok

    def policy(self):
        return AutoModelForCausalLM.from_pretrained(self.policy_path(), dtype=self.cfg.torch_dtype)

    def reward_models(self, **kwargs: Any) -> dict[str, HFRewardModel]:
        return {
            name: load_rm(name, rm, self.cache_dir, **kwargs)
            for name, rm in self.cfg.reward_models.items()
        }

    def reward_model_sources(self) -> dict[str, str]:
        return {name: rm.source for name, rm in self.cfg.reward_models.items()}

    def task(self, **rm_kwargs: Any) -> MixtureTask | ChatTemplateTask:
        """The tasks as one mixture; ``rm_kwargs`` (device, max_length, offload) place the
        judge of ``prompts`` tasks like the pool's RMs (it loads lazily, on first use)."""
        judge = self.cfg.judge
        judge_rm = (
            load_rm("judge", judge, self.cache_dir, **rm_kwargs) if judge is not None else None
        )
        tasks = []
        for t in self.cfg.tasks:
            rows = load_rows(t.source, split=t.split, name=t.name)
            kwargs: dict[str, Any] = {"domain": t.domain or t.kind, "eval_share": t.eval_share}
            if t.kind == "prompts":
                kwargs.update(judge=judge_rm, where=dict(t.where))
            tasks.append(TASK_KINDS[t.kind](rows, **kwargs))
        mixture = MixtureTask(tasks)
        return ChatTemplateTask(mixture, self.tokenizer()) if self.cfg.chat_template else mixture
