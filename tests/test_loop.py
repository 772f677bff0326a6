"""The LASER loop on the tiny built-in world: every algo x selector runs; resume is exact;
faulty RMs are handled; only the chosen RM's passes are counted; logging; configs compose."""

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from laser.build import build_loop
from laser.cli import CONF_DIR
from laser.logging import JsonlLogger, NullLogger
from laser.rewards import FunctionReward

BANDITS = sorted(p.stem for p in (Path(CONF_DIR) / "bandit").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("world-cache")


def cfg_for(cache, tmp_path, *overrides, experiment="smoke"):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"experiment={experiment}",
                f"cache_dir={cache}",
                f"output_dir={tmp_path}",
                "progress=false",
                "logger=none",
                *overrides,
            ],
        )


def run(cfg, logger=None):
    loop = build_loop(cfg, logger or NullLogger())
    final = loop.run(progress=False)
    return loop, final


@pytest.mark.parametrize("policy", ["ppo", "a2c", "dpo"])
@pytest.mark.parametrize("bandit", BANDITS)
def test_smoke_every_algo_and_selector(cache, tmp_path, policy, bandit):
    # the oracle router reads the domain from its context
    oracle = bandit in ("oracle", "oracle_tier")
    extra = ["features=domain_onehot", "loop.selection=prompt"] if oracle else []
    if policy == "ppo":  # -loss carries nothing for single-pass PPO and is refused
        extra.append("feedback=gold_agreement")
    loop, final = run(cfg_for(cache, tmp_path, f"policy={policy}", f"bandit={bandit}", *extra))
    assert loop.step_count == 3 and 0.0 <= final.metrics["eval/accuracy"] <= 1.0
    picks = loop.router.arms.picks
    assert sum(picks.values()) == 3 * 4  # every prompt of every step went to one RM
    assert (tmp_path / "checkpoints").is_dir()


@pytest.mark.parametrize("features", ["policy_mean", "policy_last", "domain_onehot", "sentence"])
@pytest.mark.parametrize(
    "feedback",
    [
        "neg_loss",
        "reward_gain",
        "gold_gain",
        "majority_agreement",
        "consensus_agreement",
        "spectral_agreement",
        "spectral_pooled",
    ],
)
def test_features_and_feedback_options(cache, tmp_path, features, feedback):
    loop, _ = run(
        cfg_for(
            cache,
            tmp_path,
            f"features={features}",
            f"feedback={feedback}",
            "feedback.probe_size=4",
            "loop.steps=2",
        )
    )
    assert loop.step_count == 2


def test_per_prompt_selection_groups_prompts(cache, tmp_path):
    loop, _ = run(cfg_for(cache, tmp_path, "loop.selection=prompt", "bandit=random"))
    picks = loop.router.arms.picks
    assert sum(picks.values()) == 12 and len(picks) == 2


def test_only_the_chosen_rm_runs_but_an_ensemble_runs_all(cache, tmp_path):
    loop, _ = run(cfg_for(cache, tmp_path, "bandit=round_robin"))
    per_step = 4 * 2  # prompts x samples
    assert loop.rm_cost() == 3 * per_step  # one RM per batch
    ens, _ = run(cfg_for(cache, tmp_path / "e", "pool=ensemble", "bandit=fixed"))
    assert list(ens.router.arms.rms) == ["mean_ensemble"] and ens.rm_cost() == 3 * per_step * 2


# the audit of audit_decay remembers the contexts it has seen: a resume must audit the same
AUDIT_DECAY = ["feedback=spectral_pooled", "feedback.signal.audit_decay=1.0"]


@pytest.mark.parametrize("extra", [[], AUDIT_DECAY], ids=["default", "audit_decay"])
def test_resume_after_interruption_is_exact(cache, tmp_path, extra):
    steps = ["loop.steps=4", "loop.checkpoint_every=2", *extra]
    full, _ = run(cfg_for(cache, tmp_path / "full", *steps))
    first = build_loop(cfg_for(cache, tmp_path / "cut", *steps), NullLogger())
    first.step()
    first.step()
    first.checkpointer.save(first)
    first.step()  # work after the checkpoint is lost, as with kill -9
    resumed, _ = run(cfg_for(cache, tmp_path / "new", *steps, f"resume={tmp_path / 'cut'}"))
    assert resumed.step_count == 4
    assert resumed.rm_cost() == full.rm_cost()  # the cost before the resume is kept
    if extra:  # the same contexts seen per RM, so the same prompts audited
        seen = [loop.router.signal.peers.novelty.seen for loop in (full, resumed)]
        assert seen[0].keys() == seen[1].keys() and seen[0]
        for name, ridge in seen[0].items():
            assert (ridge.design(0) == seen[1][name].design(0)).all()
        assert all(r.design(0).trace() > r.dim for r in seen[0].values())  # contexts were added
    a, b = full.router.selector.state_dict(), resumed.router.selector.state_dict()
    assert a["kind"] == b["kind"]
    for arm_a, arm_b in zip(a["state"]["arms"], b["state"]["arms"]):
        torch.testing.assert_close(arm_a["A"], arm_b["A"])
        torch.testing.assert_close(arm_a["b"], arm_b["b"])
    for pa, pb in zip(full.trainer.policy.parameters(), resumed.trainer.policy.parameters()):
        torch.testing.assert_close(pa, pb)


def test_corrupt_checkpoint_is_a_clear_error(cache, tmp_path):
    loop, _ = run(cfg_for(cache, tmp_path / "r", "loop.checkpoint_every=1"))
    ckpts = sorted((tmp_path / "r" / "checkpoints").glob("ckpt-*.pt"))
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:100])
    from laser.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="resume from"):
        build_loop(cfg_for(cache, tmp_path / "n", f"resume={tmp_path / 'r'}"), NullLogger())


def _replace(loop, name, fn):
    loop.router.arms.rms[name] = FunctionReward(fn, name)


def broken(prompts, completions, **kw):
    raise RuntimeError("GPU fell off")


def test_a_throwing_rm_gets_worst_feedback_then_quarantine(cache, tmp_path):
    loop = build_loop(
        cfg_for(cache, tmp_path, "bandit=round_robin", "loop.steps=6", "loop.quarantine_after=2"),
        NullLogger(),
    )
    arms = loop.router.arms
    bad = arms.names[0]
    _replace(loop, bad, broken)
    before = [p.clone() for p in loop.trainer.policy.parameters()]
    m = loop.step().metrics  # round robin plays the broken arm 0 first
    assert m["bandit/feedback"] == loop.router.normalizer.floor
    assert all(torch.equal(a, b) for a, b in zip(before, loop.trainer.policy.parameters()))
    loop.step()  # arm 1 works
    assert not arms.quarantined
    loop.step()  # arm 0 fails a second time in a row
    assert arms.quarantined == [bad] and bad not in arms.names
    assert loop.router.selector.num_arms == 1
    loop.run(progress=False)  # training continues with the remaining RM
    assert loop.step_count == 6


def test_a_fixed_baseline_whose_rm_keeps_failing_stops_with_a_clear_error(cache, tmp_path):
    loop = build_loop(
        cfg_for(cache, tmp_path, "bandit=fixed", "loop.quarantine_after=2"), NullLogger()
    )
    _replace(loop, loop.router.arms.names[0], broken)
    loop.step()
    from laser.rewards import RewardModelError

    with pytest.raises(RewardModelError, match="cannot be quarantined"):
        loop.step()


def test_a_nan_rm_in_per_prompt_mode_only_loses_its_prompts(cache, tmp_path):
    loop = build_loop(
        cfg_for(cache, tmp_path, "bandit=random", "loop.selection=prompt"), NullLogger()
    )
    arms = loop.router.arms
    _replace(loop, arms.names[1], lambda prompts, completions, **kw: [math.nan] * len(prompts))
    m = loop.step().metrics
    assert arms.failures[arms.names[1]] in (0, 1) and "bandit/feedback" in m


def test_new_rm_on_resume_gets_a_fresh_arm(cache, tmp_path):
    loop, _ = run(cfg_for(cache, tmp_path / "a"))
    state = loop.state_dict()
    loop2 = build_loop(cfg_for(cache, tmp_path / "b"), NullLogger())
    loop2.router.arms.rms["verifier"] = FunctionReward(
        lambda prompts, completions, **kw: [1.0] * len(prompts), "verifier"
    )
    loop2.load_state_dict(state)
    assert loop2.router.arms.names[-1] == "verifier" and loop2.router.selector.num_arms == 3
    del loop2.router.arms.rms["verifier"]
    loop2.load_state_dict(state)  # and dropped cleanly when it leaves again
    assert loop2.router.selector.num_arms == 2


def test_jsonl_logger_writes_the_documented_keys(cache, tmp_path):
    logger = JsonlLogger(tmp_path / "m.jsonl")
    # PPO: the update that reports every policy/* key (DPO has no policy/kl_ref: its
    # reference is the policy itself when the rollout is sampled); per batch: bandit/arm
    overrides = ["policy=ppo", "feedback=reward_gain", "feedback.probe_size=4"]
    run(cfg_for(cache, tmp_path, *overrides, "loop.selection=batch"), logger)
    logger.close()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    keys = set().union(*lines)
    expected = {
        "bandit/arm",
        "bandit/feedback",
        "bandit/propensity",
        "policy/loss",
        "policy/pg_loss",
        "policy/kl_ref",
        "cost/rm_forward_samples",
        "perf/step_time",
        "perf/samples_per_sec",
        "eval/accuracy",
    }
    assert expected <= keys
    assert any(k.startswith("bandit/arm_frac/") for k in keys)
    assert any(k.startswith("reward/") and k.endswith("/mean") for k in keys)
    assert any(k.startswith("task/") and k.endswith("/accuracy") for k in keys)


def test_wandb_offline_run_directory(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    from laser.build import build_logger

    cfg = cfg_for(cache, tmp_path, "logger=wandb")
    logger = build_logger(cfg.logger)
    run(cfg, logger)
    logger.close()
    assert list((tmp_path / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(cache, tmp_path, experiment):
    cfg = cfg_for(cache, tmp_path, experiment=experiment)
    assert cfg.loop.steps >= 1 and "bandit" in cfg


@pytest.mark.parametrize(
    "launcher,plugin",
    [
        ("slurm", "hydra_plugins.hydra_submitit_launcher"),
        ("ray", "hydra_plugins.hydra_ray_launcher"),
    ],
)
def test_cluster_launcher_configs_compose(launcher, plugin):
    pytest.importorskip(plugin)  # the submitit plugin is a dev dependency; Ray is optional
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True
        )
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")


def test_multirun_sweep_with_the_basic_launcher(cache, tmp_path):
    """laser-train -m runs one job per combination (Hydra's basic launcher)."""
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "laser-train"
    done = subprocess.run(
        [
            str(script),
            "-m",
            "experiment=smoke",
            "bandit=random,round_robin",
            f"cache_dir={cache}",
            "logger=jsonl",
            "progress=false",
            "loop.steps=2",
            f"hydra.sweep.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("final gold accuracy") == 2
    assert len(list(tmp_path.glob("*/metrics.jsonl"))) == 2


def test_quarantining_the_last_arm_keeps_metrics_on_the_right_rm(cache, tmp_path):
    loop = build_loop(
        cfg_for(cache, tmp_path, "bandit=round_robin", "loop.steps=4", "loop.quarantine_after=1"),
        NullLogger(),
    )
    arms = loop.router.arms
    good, bad = arms.names
    _replace(loop, bad, broken)
    loop.step()  # arm 0 works
    record = loop.step()  # arm 1 fails and is quarantined at the end of the step
    m = record.metrics
    assert arms.quarantined == [bad] and record.chosen == [bad]
    assert m[f"bandit/arm_frac/{bad}"] == 0.5 and f"reward/{bad}/mean" in m
    loop.run(progress=False)
    assert loop.step_count == 4 and arms.picks[good] == 3 * 4


def test_probe_failure_counts_as_an_rm_failure(cache, tmp_path):
    loop = build_loop(
        cfg_for(
            cache,
            tmp_path,
            "bandit=fixed",
            "feedback=reward_gain",
            "feedback.probe_size=3",
            "loop.quarantine_after=5",
        ),
        NullLogger(),
    )

    def nan_on_probe(prompts, completions, **kw):
        return [math.nan if len(prompts) == 3 else 0.5] * len(prompts)

    arms = loop.router.arms
    _replace(loop, arms.names[0], nan_on_probe)
    m = loop.step().metrics
    floor = loop.router.normalizer.floor
    assert arms.failures[arms.names[0]] >= 1 and m["bandit/feedback"] == floor


def test_normalize_without_projection(cache, tmp_path):
    loop = build_loop(cfg_for(cache, tmp_path, "features.projection_dim=null"), NullLogger())
    x = loop.featurizer(loop.next_batch())
    torch.testing.assert_close(x.norm(dim=1), torch.ones(x.shape[0]))


def test_unselected_rms_never_load_and_offload_parks_them(cache, tmp_path):
    """RM placement: RMs load lazily, so a fixed selector loads exactly one; with rm_offload
    the chosen RM's weights go back to CPU after scoring (here device=cpu: the moves are
    checked through the model's device, the GPU figure is benchmarks/rm_placement.py)."""
    loop, _ = run(cfg_for(cache, tmp_path, "bandit=fixed", "bandit.arm=1", "rm_offload=true"))
    arms = loop.router.arms
    loaded = {name: rm.loaded for name, rm in arms.rms.items()}
    assert sum(loaded.values()) == 1 and loaded[arms.names[1]]
    chosen = arms.rms[arms.names[1]]
    assert chosen.offload_after_score and next(chosen.model.parameters()).device.type == "cpu"


def test_evaluation_decodes_eval_max_new_tokens(cache, tmp_path, monkeypatch):
    import laser.evaluation as evaluation

    lengths, real = [], evaluation.greedy_completions

    def spy(model, tokenizer, prompts, max_new_tokens=10, batch_size=128):
        lengths.append(max_new_tokens)
        return real(model, tokenizer, prompts, max_new_tokens, batch_size)

    monkeypatch.setattr(evaluation, "greedy_completions", spy)
    run(cfg_for(cache, tmp_path, "loop.eval_max_new_tokens=2"))
    assert lengths and set(lengths) == {2}


def test_a_feedback_that_carries_nothing_is_refused_before_any_world_is_built(tmp_path):
    cache = tmp_path / "never-built"
    cfg = cfg_for(cache, tmp_path, "policy=ppo", "feedback=neg_loss")
    with pytest.raises(ValueError, match="neg_loss carries no signal with policy.algo=ppo"):
        build_loop(cfg, NullLogger())
    assert not cache.exists()  # refused before the world was built or loaded


def test_bare_laser_train_is_the_measured_recipe_and_defaults_live_in_one_place():
    from omegaconf import OmegaConf

    from laser.config import LoopConfig
    from laser.policy import PolicyConfig

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        bare = compose(config_name="train", overrides=["output_dir=x"])
        laser = compose(config_name="train", overrides=["output_dir=x", "experiment=laser"])
    assert OmegaConf.to_container(bare) == OmegaConf.to_container(laser)
    assert bare.bandit._target_ == "laser.bandits.LinTS" and bare.bandit.v == 0.1
    assert bare.feedback.signal._target_ == "laser.spectral.PooledSpectralAgreement"
    assert bare.features.featurizer._target_ == "laser.features.SentenceEncoder"
    # the YAML chooses the algorithm; every other value is the dataclass default
    assert OmegaConf.to_object(bare.policy) == PolicyConfig(algo="dpo")
    assert OmegaConf.to_object(bare.loop) == LoopConfig()
    assert bare.loop.selection == "prompt"
