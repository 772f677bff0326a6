"""Issue 17, end to end through `laser-train` as users run it: resume keeps every log line
once, a second process cannot share a run directory, Ctrl-C saves the step it finished, bad
values fail before any work, and a resume whose config changed is refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from laser.build import build_loop, planned_rm_names, validate
from laser.cli import CONF_DIR
from laser.cli import compose_train as compose_run
from laser.logging import NullLogger

SCRIPT = Path(sys.executable).parent / "laser-train"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The smoke world, built once."""
    cache = tmp_path_factory.mktemp("cli-cache")
    run = train(cache, tmp_path_factory.mktemp("warm"), "loop.steps=1")
    assert run.returncode == 0, run.stderr[-2000:]
    return cache


def command(cache, run_dir, *overrides):
    return [
        str(SCRIPT),
        "experiment=smoke",
        f"cache_dir={cache}",
        f"hydra.run.dir={run_dir}",
        "logger=jsonl",
        "progress=false",
        "loop.eval_size=4",
        *overrides,
    ]


def train(cache, run_dir, *overrides, timeout=600):
    cmd = command(cache, run_dir, *overrides)
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def train_steps(run_dir) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "policy/loss" in r]


def wait_for_steps(run_dir, n, proc, limit=120.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (run_dir / "metrics.jsonl").exists() and len(train_steps(run_dir)) >= n:
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError(f"no {n} training steps logged within {limit} s")


def test_resume_into_the_same_directory_neither_loses_nor_repeats_a_step(cache, tmp_path):
    run_dir = tmp_path / "run"
    # a feedback with one value per step: every prompt gets exactly one selector update
    common = ["loop.checkpoint_every=2", "loop.log_decisions=true", "feedback=reward_gain"]
    common.append("feedback.probe_size=2")
    first = train(cache, run_dir, "loop.steps=5", *common)
    assert first.returncode == 0, first.stderr[-2000:]
    # kill -9 after step 5 was logged but before its checkpoint was written
    (run_dir / "checkpoints" / "ckpt-00000005.pt").unlink()
    again = train(cache, run_dir, "loop.steps=6", *common, f"resume={run_dir}")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "at step 4" in again.stdout
    assert train_steps(run_dir) == [1, 2, 3, 4, 5, 6]  # 1-4 kept, 5 redone once, 6 new
    decisions = [json.loads(x) for x in (run_dir / "decisions.jsonl").read_text().splitlines()]
    per_step = [sum(d["step"] == s for d in decisions) for s in range(1, 7)]
    assert per_step == [4] * 6  # smoke: 4 prompts a step, one decision each, none twice


def test_a_second_run_on_the_same_directory_is_refused(cache, tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        command(cache, run_dir, "loop.steps=100000", "loop.checkpoint_every=0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        wait_for_steps(run_dir, 1, holder)
        second = train(cache, run_dir, "loop.steps=2", "loop.seed=1")
        assert second.returncode != 0
        assert f"in use by pid {holder.pid}" in second.stderr
        assert train_steps(run_dir)[:3] == [1, 2, 3][: len(train_steps(run_dir)[:3])]
    finally:
        holder.kill()
        holder.wait()


def test_ctrl_c_finishes_the_step_saves_it_and_resume_continues(cache, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        command(cache, run_dir, "loop.steps=100000", "loop.checkpoint_every=0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    wait_for_steps(run_dir, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    saved = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    step = int(saved[-1].stem.split("-")[1])
    assert f"stopped after step {step}" in out and step == train_steps(run_dir)[-1] >= 2
    more = train(cache, run_dir, f"loop.steps={step + 1}", f"resume={run_dir}")
    assert more.returncode == 0, more.stderr[-2000:]
    assert train_steps(run_dir) == list(range(1, step + 2))


def compose_train(cache, tmp_path, *overrides):
    smoke = ["experiment=smoke", f"cache_dir={cache}", f"output_dir={tmp_path}", "progress=false"]
    return compose_run([*smoke, *overrides])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["keep_checkpoints=0"], "keep_checkpoints must be >= 1"),
        (["loop.eval_size=0"], "loop.eval_size must be >= 1"),
        (["policy.lr=inf"], "policy.lr must be finite"),
        (["bandit=linucb", "bandit.alpha=abc"], "bandit=LinUCB"),
        (["bandit.v=fast"], "bandit=LinTS: v must be a finite number > 0 or 'auto'"),
        (["bandit=fixed", "bandit.arm=nobody"], "nobody"),
        (["feedback=reward_gain", "feedback.probe_size=0"], "feedback.probe_size"),
        (["features.projection_dim=0"], "features.projection_dim"),
        (["loop.temperature=0"], "loop.temperature"),
    ],
)
def test_bad_values_fail_before_any_world_is_built(tmp_path, overrides, message):
    cache = tmp_path / "never-built"
    with pytest.raises(ValueError, match=message):
        build_loop(compose_train(cache, tmp_path, *overrides), NullLogger())
    assert not cache.exists()


def test_the_cli_names_a_bad_bandit_value_before_building_anything(tmp_path):
    run = train(tmp_path / "never-built", tmp_path / "run", "bandit.v=abc")
    assert run.returncode != 0 and "v must" in run.stderr and "bandit=LinTS" in run.stderr
    assert not (tmp_path / "never-built").exists()  # no world, no RM was built first


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_knobs_do_not_leak_into_another_selector(tmp_path, experiment):
    """`experiment=X bandit=fixed bandit.arm=<rm>` is a fixed-RM baseline of X's setup."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        base = compose(config_name="train", overrides=[f"experiment={experiment}", "output_dir=x"])
        names = planned_rm_names(validate(base))
        cfg = compose(
            config_name="train",
            overrides=[
                f"experiment={experiment}",
                "output_dir=x",
                "bandit=fixed",
                f"bandit.arm={names[0]}",
            ],
        )
    assert validate(cfg).loop.steps >= 1


def test_resuming_with_another_meaning_is_refused_and_names_what_changed(tmp_path):
    cache = tmp_path / "cache"
    loop = build_loop(compose_train(cache, tmp_path / "a", "loop.steps=2"), NullLogger())
    loop.run(progress=False)
    changed = compose_train(
        cache, tmp_path / "b", "features=policy_last", f"resume={tmp_path / 'a'}"
    )
    with pytest.raises(ValueError, match=r"features\.featurizer\._target_"):
        build_loop(changed, NullLogger())
    # what may change on resume: the length of the run, evaluation, logging, placement
    longer = compose_train(
        cache, tmp_path / "c", "loop.steps=3", "loop.eval_size=8", f"resume={tmp_path / 'a'}"
    )
    assert build_loop(longer, NullLogger()).step_count == 2
