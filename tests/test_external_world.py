"""Paper-scale configs: they compose, and every model / dataset reference resolves through the
same loaders when the hub ids are replaced by tiny local stand-ins; the loop then runs."""

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from laser.build import build_loop, typed
from laser.cli import CONF_DIR
from laser.logging import NullLogger
from laser.models import char_tokenizer, tiny_gpt2_config
from laser.tasks.mixture import MixtureTask
from laser.world.external import ExternalConfig, ExternalWorld, RMSource, TaskSource, resolve

PAPER = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("paper_*.yaml"))
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ?.:,#+=\nABCD"


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=["logger=none", *overrides])


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_configs_compose_with_hub_ids(experiment):
    cfg = typed(_compose(f"experiment={experiment}", "output_dir=/tmp/x"))
    ext = cfg.external
    assert ext is not None and "/" in ext.policy  # a hub id
    assert len(ext.reward_models) >= 2
    assert all(
        "/" in rm.source and rm.kind in ("classifier", "likelihood")
        for rm in ext.reward_models.values()
    )
    assert ext.tasks and all(t.source for t in ext.tasks)
    assert cfg.policy.algo == "dpo"


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """A tiny causal LM, tiny RMs and small local datasets in the tasks' formats."""
    root = tmp_path_factory.mktemp("stand_ins")
    tok = char_tokenizer(ALPHABET)
    small = dict(n_layer=1, n_head=2, n_embd=32, n_positions=256)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_gpt2_config(tok, **small)).save_pretrained(
        root / "policy"
    )
    tok.save_pretrained(root / "policy")
    for i in range(4):  # scalar-head RMs and causal-LM ("likelihood") RMs
        rm = AutoModelForSequenceClassification.from_config(tiny_gpt2_config(tok, **small))
        rm.save_pretrained(root / f"rm{i}")
        tok.save_pretrained(root / f"rm{i}")
        lm = AutoModelForCausalLM.from_config(tiny_gpt2_config(tok, **small))
        lm.save_pretrained(root / f"lm{i}")
        tok.save_pretrained(root / f"lm{i}")
    judge = AutoModelForSequenceClassification.from_config(tiny_gpt2_config(tok, **small))
    judge.save_pretrained(root / "judge")
    tok.save_pretrained(root / "judge")
    rows = {
        "gsm8k": [
            {"question": f"what is {i}+{i}?", "answer": f"ok #### {2 * i}"} for i in range(20)
        ],
        "mc": [
            {"question": f"pick {i}", "choices": ["a", "b", "c", "d"], "answer": i % 4}
            for i in range(20)
        ],
        "yesno": [{"question": f"is {i} even?", "answer": i % 2 == 0} for i in range(20)],
        "chat": [  # WildChat's row format (conversation + the columns the config filters on)
            {
                "conversation": [
                    {"role": "user", "content": f"say {i}"},
                    {"role": "assistant", "content": f"{i}"},
                ],
                "language": "English" if i % 4 else "French",
                "toxic": i % 5 == 0,
            }
            for i in range(40)
        ],
    }
    for name, data in rows.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    return root


def stand_in_rm(kind: str) -> str:
    return "lm" if kind == "likelihood" else "rm"


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_configs_run_on_local_stand_ins(stand_ins, tmp_path, experiment):
    base = typed(_compose(f"experiment={experiment}", "output_dir=/tmp/x"))
    overrides = [f"external.policy={stand_ins / 'policy'}", "external.torch_dtype=float32"]
    overrides += [
        f"external.reward_models.{name}.source={stand_ins / (stand_in_rm(rm.kind) + str(i % 4))}"
        for i, (name, rm) in enumerate(base.external.reward_models.items())
    ]
    files = {"gsm8k": "gsm8k", "multiple_choice": "mc", "prompts": "chat"}
    overrides += [
        f"external.tasks.{i}.source={stand_ins / (files[t.kind] + '.jsonl')}"
        for i, t in enumerate(base.external.tasks)
    ]
    if base.external.judge is not None:  # a stand-in outside the pool (rm0..3 / lm0..3 are in)
        overrides += [
            f"external.judge.source={stand_ins / 'judge'}",
            "external.judge.kind=classifier",
            "external.judge.chat_template=false",  # the stand-in tokenizer has no template,
        ]
    cfg = _compose(
        f"experiment={experiment}",
        *overrides,
        f"output_dir={tmp_path}",
        "progress=false",
        "policy.lora_target_modules=[c_attn]",  # the GPT-2 stand-in's attention projection
        "rm_device=cpu",
        "device=cpu",
        "loop.eval_max_new_tokens=3",
        "features.projection_dim=8",
        "loop.steps=2",
        "loop.batch_size=3",
        "loop.samples_per_prompt=2",
        "loop.max_new_tokens=3",
        "loop.eval_size=6",
        "loop.eval_every=0",
    )
    loop = build_loop(cfg, NullLogger())
    arms = loop.router.arms
    assert isinstance(loop.task, MixtureTask) and len(arms.rms) == len(base.external.reward_models)
    final = loop.run(progress=False)
    assert loop.step_count == 2 and 0.0 <= final.metrics["eval/accuracy"] <= 1.0
    domains = {e.domain for e in loop.evaluator.examples}
    assert domains == {t.domain for t in base.external.tasks}
    # every prompt was scored by a working RM (a failing RM would only be reported)
    assert not any(arms.failures.values()) and loop.rm_cost() == 2 * 3 * 2


def test_external_world_names_every_missing_piece():
    with pytest.raises(ValueError, match="policy is empty.*reward_models is empty.*tasks"):
        ExternalWorld(ExternalConfig())
    rms = {"a": RMSource("x", kind="vibes")}
    bad = ExternalConfig(policy="p", reward_models=rms, tasks=[TaskSource(kind="essay")])
    with pytest.raises(ValueError, match="kind='essay'.*kind='vibes'"):
        ExternalWorld(bad)
    with pytest.raises(FileNotFoundError, match="neither a local path nor a downloaded"):
        resolve("nobody/no-such-model-xyz")


def test_mixture_draws_evenly_and_checks_with_each_task(stand_ins):
    from laser.tasks.hf import GSM8KTask, MultipleChoiceTask

    mix = MixtureTask(
        [GSM8KTask(stand_ins / "gsm8k.jsonl"), MultipleChoiceTask(stand_ins / "mc.jsonl")]
    )
    batch = mix.examples("train", 8, seed=1)
    assert sorted(e.domain for e in batch) == ["gsm8k"] * 4 + ["mc"] * 4
    assert mix.examples("train", 8, seed=1) == batch != mix.examples("train", 8, seed=2)
    gsm = next(e for e in batch if e.domain == "gsm8k")
    assert mix.evaluate(gsm.prompt, f"#### {gsm.answer}", gsm.meta()) == 1.0
    mc = next(e for e in batch if e.domain == "mc")
    assert mix.evaluate(mc.prompt, mc.answer, mc.meta()) == 1.0
    with pytest.raises(ValueError, match="two tasks"):
        MixtureTask([GSM8KTask(stand_ins / "gsm8k.jsonl"), GSM8KTask(stand_ins / "gsm8k.jsonl")])


@pytest.mark.parametrize("setting", ["rm_device=cuda", "device=cuda"])
def test_cuda_without_a_gpu_fails_before_training(stand_ins, tmp_path, setting):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = _compose(setting, "experiment=smoke", f"cache_dir={tmp_path}", "output_dir=/tmp/x")
    with pytest.raises(ValueError, match="no CUDA device"):
        build_loop(cfg, NullLogger())


def test_prompt_task_reads_wildchat_rows_and_judges_against_the_reference(stand_ins):
    from laser.rewards.function import FunctionReward
    from laser.tasks.prompts import PromptTask

    where = {"language": "English", "toxic": False}
    # a judge that prefers longer answers: its verdicts are known in advance
    judge = FunctionReward(
        lambda prompts, completions, **_: [float(len(x)) for x in completions], name="len"
    )
    task = PromptTask(stand_ins / "chat.jsonl", judge=judge, domain="chat", where=where)
    kept = [i for i in range(40) if i % 4 and i % 5]  # English and not toxic
    assert [e.prompt for e in task.rows] == [f"say {i}" for i in kept]
    e = task.rows[0]  # "say 1", reference "1"
    assert e.meta()["reference"] == "1"
    assert task.evaluate(e.prompt, "11", e.meta()) == 1.0  # longer: wins
    assert task.evaluate(e.prompt, "2", e.meta()) == 0.5  # as long: tie
    assert task.evaluate(e.prompt, "", e.meta()) == 0.0
    no_ref = {"domain": "chat", "answer": "", "reference": ""}
    assert task.evaluate("p", "ab", no_ref) == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_prompt_task_errors_name_the_problem(stand_ins, tmp_path):
    from laser.rewards.function import FunctionReward
    from laser.tasks.prompts import PromptTask

    with pytest.raises(ValueError, match="no gold answers.*judge"):
        task = PromptTask(stand_ins / "chat.jsonl")
        task.evaluate("p", "c", {"reference": "r"})
    with pytest.raises(ValueError, match="'prompt' or a 'conversation' column"):
        PromptTask(stand_ins / "gsm8k.jsonl")
    with pytest.raises(ValueError, match=r"where= names column\(s\) \['lang'\]"):
        PromptTask(stand_ins / "chat.jsonl", where={"lang": "English"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"conversation": [{"role": "assistant", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match="row 0: conversation has no non-empty user turn"):
        PromptTask(bad)
    from laser.rewards import HFRewardModel

    with pytest.raises(Exception, match="chat_template=True but its tokenizer has no chat"):
        HFRewardModel(stand_ins / "judge", chat_template=True).score(["p"], ["c"])
    nan_judge = FunctionReward(
        lambda prompts, completions, **_: [float("nan")] * len(completions), name="nan"
    )
    task = PromptTask(stand_ins / "chat.jsonl", judge=nan_judge)
    with pytest.raises(Exception, match="nan"):
        task.evaluate("p", "c", {"reference": "r"})


def test_prompt_tasks_need_a_judge_outside_the_pool():
    rms = {"a": RMSource("rm/a"), "b": RMSource("rm/b")}
    tasks = [TaskSource(kind="prompts", source="chat.jsonl")]
    with pytest.raises(ValueError, match="external.judge is not set"):
        ExternalWorld(ExternalConfig(policy="p", reward_models=rms, tasks=tasks))
    with pytest.raises(ValueError, match="also in reward_models"):
        ExternalWorld(
            ExternalConfig(policy="p", reward_models=rms, tasks=tasks, judge=RMSource("rm/a"))
        )
    gsm = [TaskSource(kind="gsm8k", source="g.jsonl", where={"x": 1})]
    with pytest.raises(ValueError, match="where is only supported by kind 'prompts'"):
        ExternalWorld(ExternalConfig(policy="p", reward_models=rms, tasks=gsm))


def test_an_external_report_must_rate_every_rm_on_the_same_domains(tmp_path):
    rms = {"a": RMSource(source="x"), "b": RMSource(source="y")}
    tasks = [TaskSource(source="t.jsonl")]

    def world(report):
        return ExternalWorld(
            ExternalConfig(policy="p", reward_models=rms, tasks=tasks, report=report)
        )

    with pytest.raises(FileNotFoundError, match="external.report"):
        world(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="no rm_domain_accuracy"):
        world(str(bad))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"rm_domain_accuracy": {"a": {"d": 0.9}}}))
    with pytest.raises(ValueError, match=r"missing RMs \['b'\]"):
        world(str(partial))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"rm_domain_accuracy": {"a": {"d": 0.9}, "b": {"d": 0.6}}}))
    assert world(str(good)).summary["rm_domain_accuracy"]["b"] == {"d": 0.6}
