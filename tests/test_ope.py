"""Off-policy evaluation: IPS / SNIPS / DR recover a known target value from a synthetic
bandit log; hand-computed small cases; the loop's decision log and the laser-ope command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from laser.bandits.envs import LinearEnv
from laser.ope import DecisionLog, evaluate, read_decisions, target_probabilities

ROOT = Path(__file__).resolve().parent.parent


class Greedy:
    """Deterministic target: the truly best arm (the env's weights)."""

    def __init__(self, theta):
        self.theta = theta

    def probabilities(self, x):
        p = np.zeros(len(self.theta))
        p[int(np.argmax(self.theta @ x))] = 1.0
        return p


def synthetic_log(n=6000, seed=0):
    """A softmax logging policy over K=3 linear arms (known propensities)."""
    env = LinearEnv(num_arms=3, dim=4, noise=0.3, seed=seed)
    rng = np.random.default_rng(seed + 1)
    xs, arms, props, rewards = [], [], [], []
    for _ in range(n):
        x = env.context()
        logits = 0.5 * np.arange(3.0)  # prefers arm 2 whatever the context
        p = np.exp(logits) / np.exp(logits).sum()
        a = int(rng.choice(3, p=p))
        xs.append(x), arms.append(a), props.append(p[a]), rewards.append(env.reward(a, x))
    log = DecisionLog(np.array(xs), np.array(arms), np.array(props), np.array(rewards))
    return env, log


def test_estimators_recover_the_true_value_of_another_policy():
    env, log = synthetic_log()
    target = Greedy(env.theta)
    truth = float(np.mean([env.expected(x).max() for x in log.contexts]))
    logged = float(log.rewards.mean())
    assert truth > logged + 0.3  # the target is clearly better than the logger
    est = evaluate(log, target_probabilities(target, log.contexts, 3))
    for name in ("ips", "snips", "dr"):
        assert abs(est[name] - truth) < 4 * est[f"{name}_se"], (name, est, truth)
        assert abs(est[name] - truth) < 0.1
    assert est["dr_se"] < est["ips_se"]  # the reward model removes most of the variance
    assert 0 < est["ess"] < len(log.arms)


def test_hand_computed_ips_and_snips():
    # two decisions, logged with propensity 0.5; target picks arm 0 with prob 1, 0 resp.
    log = DecisionLog(
        np.zeros((2, 1)), np.array([0, 1]), np.array([0.5, 0.5]), np.array([1.0, 3.0])
    )
    probs = np.array([[1.0, 0.0], [1.0, 0.0]])
    est = evaluate(log, probs)
    assert est["ips"] == pytest.approx((2 * 1.0 + 0 * 3.0) / 2)  # = 1
    assert est["snips"] == pytest.approx(1.0)  # (2 * 1) / 2
    assert est["ess"] == pytest.approx(1.0)  # one decision carries all the weight


@pytest.mark.parametrize(
    "arms, props, rewards, match",
    [
        ([0, 1], [0.5, 0.0], [1.0, 1.0], "propensities"),
        ([0, 1], [0.5, 0.5], [1.0, float("nan")], "NaN"),
        ([0], [0.5, 0.5], [1.0, 1.0], "disagree"),
    ],
)
def test_bad_logs_are_refused(arms, props, rewards, match):
    with pytest.raises(ValueError, match=match):
        DecisionLog(np.zeros((len(arms), 1)), np.array(arms), np.array(props), np.array(rewards))


def test_read_decisions_names_the_bad_line(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text('{"context": [0.1], "arm": 0, "propensity": 1.0, "reward": 0.5}\n{oops\n')
    with pytest.raises(ValueError, match="decisions.jsonl:2"):
        read_decisions(tmp_path)
    with pytest.raises(FileNotFoundError, match="log_decisions"):
        read_decisions(tmp_path / "nowhere")


def test_loop_logs_decisions_and_laser_ope_reads_them(tmp_path):
    from test_loop import cfg_for

    from laser.build import build_loop
    from laser.logging import NullLogger

    cfg = cfg_for(
        tmp_path / "cache",
        tmp_path,
        "bandit=random",
        "policy=dpo",
        "loop.selection=prompt",
        "loop.log_decisions=true",
    )
    loop = build_loop(cfg, NullLogger())
    loop.run(progress=False)
    rows = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(rows) <= cfg.loop.steps * cfg.loop.batch_size and rows
    k = len(loop.router.arms.names)
    assert all(r["propensity"] == pytest.approx(1 / k) for r in rows)  # uniform random logger
    assert all(len(r["context"]) == loop.featurizer.dim for r in rows)
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from laser.cli import ope; ope()",
            f"run_dir={tmp_path}",
            "bandit=fixed",
            f"bandit.arm={rows[0]['rm']}",
            f"hydra.run.dir={tmp_path / 'ope'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DR" in proc.stdout and "IPS" in proc.stdout and "FixedArm" in proc.stdout
