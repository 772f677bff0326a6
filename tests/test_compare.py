"""laser-compare: routing accuracy, the oracle router, the report and goals, and the whole
command end to end on a shrunken world (2 seeds, every method). The statistics it reports:
tests/test_stats.py."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from experiments.report import routing_accuracy, routing_regret
from laser.bandits import DomainRouter, DomainTierRouter
from laser.cli import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_routing_accuracy_counts_after_warmup_only():
    summary = {
        "kind": "selector",
        "best_rm": {"rev": "A", "max": "B"},
        "routes": [
            {"rev|B": 4, "max|A": 4},  # warm-up step: all wrong, not counted
            {"rev|A": 3, "rev|B": 1, "max|B": 4},  # 7 of 8 right
            {"rev|A": 2, "max|A": 2},  # 2 of 4 right
        ],
    }
    assert routing_accuracy(summary, warmup=0.2) == pytest.approx(9 / 12)
    assert routing_accuracy(summary, warmup=0.0) == pytest.approx(9 / 20)
    assert routing_accuracy({**summary, "kind": "ensemble"}, 0.2) is None
    # the cold start alone: ceil(0.2 * 3) = 1 step, 0 of 8 right; 0.5 -> 2 steps, 7 of 16
    assert routing_accuracy(summary, warmup=0.2, early=True) == 0.0
    assert routing_accuracy(summary, warmup=0.5, early=True) == pytest.approx(7 / 16)
    # an external world without a report: no best RM, so no routing accuracy (not a crash)
    assert routing_accuracy({**summary, "best_rm": {}}, 0.2) is None


def test_routing_regret_is_the_accuracy_the_chosen_rm_gives_up():
    """Per routed prompt, best RM's held-out accuracy on the domain minus the chosen RM's."""
    summary = {
        "kind": "selector",
        "best_rm": {"rev": "A", "max": "B"},
        "rm_domain_accuracy": {"A": {"rev": 0.9, "max": 0.5}, "B": {"rev": 0.6, "max": 0.8}},
        "routes": [
            {"rev|B": 4, "max|A": 4},  # every prompt wrong: 4 * 0.3 + 4 * 0.3 over 8
            {"rev|A": 3, "rev|B": 1, "max|B": 4},  # one wrong on rev: 0.3 over 8
        ],
    }
    assert routing_regret(summary, 0.5, early=True) == pytest.approx(0.3)
    assert routing_regret(summary, 0.5) == pytest.approx(0.3 / 8)
    assert routing_regret(summary, 0.0) == pytest.approx(2.7 / 16)
    assert routing_regret({**summary, "kind": "gold"}, 0.5) is None
    assert routing_regret({**summary, "rm_domain_accuracy": {}}, 0.5) is None


def test_an_external_world_is_reported_from_its_own_report_not_the_built_in_world(tmp_path):
    """laser-compare on an external world reads the RM quality from the world's report file
    (external.report), and builds no built-in world."""
    import json

    from laser.build import open_world, typed
    from laser.cli import compose_train
    from laser.world.quality import best_rm_per_domain, best_tier_per_domain

    matrix = {
        "numeric": {"next": 0.9, "add": 0.8, "larger": 0.4, "antonym": 0.6},
        "choice": {"next": 0.5, "add": 0.5, "larger": 0.9, "antonym": 0.8},
        "noisy": {"next": 0.5, "add": 0.5, "larger": 0.6, "antonym": 0.5},
        "verbose": {"next": 0.5, "add": 0.5, "larger": 0.6, "antonym": 0.5},
    }
    (tmp_path / "r.json").write_text(json.dumps({"rm_domain_accuracy": matrix}))
    cache = tmp_path / "cache"
    train = typed(
        compose_train(
            [
                "experiment=real_smollm2",
                f"external.report={tmp_path / 'r.json'}",
                f"cache_dir={cache}",
            ]
        )
    )
    world = open_world(train)
    assert world.summary["rm_domain_accuracy"] == matrix and not cache.exists()
    best = best_rm_per_domain(world, world.reward_model_names, ["next", "larger"])
    assert best == ["numeric", "choice"]
    # the tier: every RM within 0.05 of the best (the default margin), in pool order
    tiers = best_tier_per_domain(world, world.reward_model_names, ["next", "larger", "antonym"])
    assert tiers == [["numeric"], ["choice"], ["choice"]]
    assert best_tier_per_domain(world, world.reward_model_names, ["larger"], margin=0.31) == [
        ["choice", "noisy", "verbose"]
    ]


def test_domain_router_routes_by_domain_and_keeps_its_state():
    router = DomainRouter(num_arms=3, dim=2, routes=[2, 0])
    assert router.select([1.0, 0.0]) == 2 and router.select([0.0, 1.0]) == 0
    assert router.probabilities([0.0, 1.0]).tolist() == [1.0, 0.0, 0.0]
    router.remove_arm(1)
    assert router.routes == [1, 0]
    with pytest.raises(ValueError, match="routes a domain"):
        router.remove_arm(0)
    with pytest.raises(ValueError, match="one-hot"):
        router.select([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="routes has"):
        DomainRouter(num_arms=2, dim=3, routes=[0, 1])
    other = DomainRouter(num_arms=2, dim=2, routes=[0, 0])
    other.load_state_dict(router.state_dict())
    assert other.routes == [1, 0]


def test_domain_tier_router_draws_uniformly_from_its_domains_tier_and_resumes_its_draws():
    router = DomainTierRouter(num_arms=4, dim=3, tiers=[[0, 2], [1], [1, 3]], seed=0)
    domain = np.eye(3)
    draws = [router.select(domain[0]) for _ in range(2000)]
    assert set(draws) == {0, 2} and abs(np.mean(np.array(draws) == 0) - 0.5) < 0.04
    assert {router.select(domain[1]) for _ in range(50)} == {1}
    assert router.probabilities(domain[2]).tolist() == [0.0, 0.5, 0.0, 0.5]
    restored = DomainTierRouter(num_arms=4, dim=3, tiers=[[0], [1], [2]], seed=7)
    restored.load_state_dict(router.state_dict())
    assert restored.tiers == router.tiers
    assert [restored.select(domain[0]) for _ in range(20)] == [
        router.select(domain[0]) for _ in range(20)
    ]
    router.remove_arm(2)  # domain 0 keeps arm 0; domain 2's arm 3 shifts down
    assert router.tiers == [[0], [1], [1, 2]] and router.num_arms == 3
    with pytest.raises(ValueError, match="only RM of a domain's tier"):
        router.remove_arm(0)
    with pytest.raises(ValueError, match="distinct arms"):
        DomainTierRouter(num_arms=3, dim=1, tiers=[[1, 1]])
    with pytest.raises(ValueError, match="distinct arms"):
        DomainTierRouter(num_arms=3, dim=1, tiers=[[]])
    with pytest.raises(ValueError, match="tiers has"):
        DomainTierRouter(num_arms=3, dim=2, tiers=[[0]])
    with pytest.raises(ValueError, match="one-hot"):
        router.select([1.0, 0.0])


# The default pool's RM names on a world small enough to build in seconds.
SHRINK = [
    "world.policy_model.n_embd=32",
    "world.sft.steps=10",
    "world.sft.train_examples=500",
    "world.sft.eval_per_domain=10",
    "world.eval_pairs_per_domain=20",
    *[
        f"++world.reward_models.{rm}.{key}"
        for rm in ("reverse_sort", "sort_max", "max_reverse", "generalist")
        for key in ("pairs_per_domain=40", "hard_negatives=5", "epochs=1", "model.n_embd=32")
    ],
]


def test_laser_compare_end_to_end(tmp_path):
    """The main method list, 2 seeds, 4 steps: table, CSV and plots with every method."""
    main = yaml.safe_load((Path(CONF_DIR) / "compare" / "main.yaml").read_text())
    methods = main["hydra"]["sweeper"]["params"]["method"].split(",")  # the swept ones
    assert set(methods) <= set(main["methods"])
    extra = ",".join(f'"{o}"' for o in SHRINK)
    out = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.compare",
            "seed=0,1",
            "algo=dpo",
            "steps=4",
            "eval_every=2",
            "eval_size=16",
            f"extra=[{extra}]",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (out / "results.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(methods)
    assert all(r["seeds"] == "2" for r in rows.values())
    for r in rows.values():
        assert 0.0 <= float(r["acc_mean"]) <= 1.0
    # equal step budgets: one RM per prompt, K RMs per prompt for the ensemble; LASER's
    # consensus feedback adds the audited prompts' peer passes (a quarter of them x 3 peers)
    single = float(rows["random"]["rm_forward_samples"])
    assert single == 4 * 8 * 8  # steps x prompts x samples
    ensemble = float(rows["mean_ensemble"]["rm_forward_samples"])
    assert ensemble == 4 * single
    assert single < float(rows["laser"]["rm_forward_samples"]) < ensemble
    assert float(rows["oracle"]["routing_mean"]) == 1.0
    assert float(rows["oracle"]["regret_early_mean"]) == 0.0  # the best RM: nothing given up
    assert float(rows["oracle_tier"]["routing_tier_mean"]) == 1.0  # only the best tier
    table = (out / "results.md").read_text()
    assert all(m in table for m in methods) and "McNemar" in table and "seeds laser ahead" in table
    pngs = {p.name for p in out.glob("*.png")}
    assert {"accuracy_curves.png", "rm_cost.png", "arm_selection_laser.png"} <= pngs
    assert "arm_selection_mean_ensemble.png" not in pngs and "arm_selection_gold.png" not in pngs
    # the gold reward: the task's checker scores every sample, no routing
    assert rows["gold"]["kind"] == "gold" and rows["gold"]["routing_mean"] == ""


def test_sweep_size_counts_config_and_command_line_sweeps():
    from omegaconf import OmegaConf

    from experiments.compare import sweep_size

    cfg = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"params": {"seed": "0,1,2", "method": "a,b,c,d"}},
                "overrides": {"task": ["seed=0,1", "steps=4"]},
            }
        }
    )
    assert sweep_size(cfg) == 2 * 4  # the command line's seeds replace the config's


def _summary(method, kind, seed, scores, start=0.5, cost=100, routes=None):
    domains = ["d1", "d2"]
    eval_domains = ["d1", "d2"] * (len(scores) // 2)
    mean = sum(scores) / len(scores)
    return {
        "method": method,
        "kind": kind,
        "seed": seed,
        "domains": domains,
        "pool": ["a", "b"],
        "final": {"mean": mean, "d1": mean, "d2": mean},
        "curve": [{"step": 0, "eval/accuracy": start}, {"step": 10, "eval/accuracy": mean}],
        "eval_scores": scores,
        "eval_domains": eval_domains,
        "rm_forward_samples": cost,
        "routes": routes or [{"d1|a": 1, "d2|b": 1}] * 10,
        "best_rm": {"d1": "a", "d2": "b"},
        "rm_domain_accuracy": {"a": {"d1": 0.9, "d2": 0.5}, "b": {"d1": 0.5, "d2": 0.9}},
    }


def test_goals_are_measured_not_assumed():
    from experiments.goals import goal_rows

    n = 40
    laser = [1.0] * (n - 4) + [0.0] * 4  # 0.9
    summaries = []
    for seed in (0, 1):
        summaries += [
            _summary("laser", "selector", seed, laser, cost=100),
            _summary("fixed_a", "fixed", seed, [1.0] * (n // 2) + [0.0] * (n // 2), cost=100),
            _summary("ens", "ensemble", seed, [1.0] * (n - 6) + [0.0] * 6, cost=200),
            _summary("oracle", "oracle", seed, [1.0] * n, cost=100),
        ]

    def by_key(rows):
        keys = ("SFT", "best fixed", "ens +", "oracle", "routing")
        return {k: r for r in rows for k in keys if k in r["goal"]}

    rows = by_key(goal_rows(summaries, "laser", 0.2))
    assert rows["SFT"]["met"] and "+0.400" in rows["SFT"]["measured"]  # 0.9 vs 0.5
    assert rows["best fixed"]["met"]  # +0.4 over the fixed RM, CI far above 0
    # +0.05 over the ensemble, at 0.50 of its cost where K = 2 allows 0.50: met
    assert rows["ens +"]["met"] and "0.50 of its cost" in rows["ens +"]["measured"]
    # the oracle gained 0.5, LASER 0.4: 80%
    assert rows["oracle"]["met"] and "(80%)" in rows["oracle"]["measured"]
    assert rows["routing"]["met"]  # every prompt to its domain's best RM
    worse = [dict(s, routes=[{"d1|b": 1, "d2|b": 1}] * 10) for s in summaries]
    rows = by_key(goal_rows(worse, "laser", 0.2))
    assert not rows["routing"]["met"] and "0.50" in rows["routing"]["measured"]
    # an oracle that gained nothing: the goal is unmet and says why (it printed "nan%")
    flat = [
        dict(s, final={**s["final"], "mean": 0.5}) if s["method"] == "oracle" else s
        for s in summaries
    ]
    rows = by_key(goal_rows(flat, "laser", 0.2))
    assert not rows["oracle"]["met"] and "oracle gained nothing" in rows["oracle"]["measured"]


def test_job_counter_counts_summaries_written_by_any_process(tmp_path):
    """The progress bar counts the jobs' summary files (so it works when jobs run in other
    processes), not those left by an earlier sweep in the same directory."""
    import os
    import pickle
    import time

    from experiments.compare import SUMMARY, CompareCallback, JobCounter

    old = tmp_path / "old" / SUMMARY
    old.parent.mkdir()
    old.write_text("{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # an earlier sweep's
    counter = JobCounter(tmp_path, total=3, every=0.05)
    for job in ("a", "b"):
        (tmp_path / job).mkdir()
        (tmp_path / job / SUMMARY).write_text("{}")
    deadline = time.time() + 5
    while counter.bar.n < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert counter.bar.n == 2
    counter.close()
    assert not counter.thread.is_alive()
    callback = CompareCallback()
    callback.counter = counter  # holds a thread and a lock: the pickled copy drops it
    assert pickle.loads(pickle.dumps(callback)).counter is None


def test_pairs_merges_sweeps_first_directory_first_and_pairs_the_reference(tmp_path, capsys):
    """experiments.pairs: summaries from two sweep dirs, the first one's copy of a duplicated
    (rule, method, seed) kept, refused jobs skipped, and the reference's paired differences."""
    import json

    from experiments.pairs import main

    n = 40
    runs = {
        "a": [("laser", [1.0] * 36 + [0.0] * 4), ("other", [1.0] * 20 + [0.0] * 20)],
        "b": [("other", [0.0] * n), ("third", [1.0] * 30 + [0.0] * 10)],
    }
    for sweep, methods in runs.items():
        for method, scores in methods:
            for seed in (0, 1):
                job = tmp_path / sweep / "dpo" / method / f"seed{seed}"
                job.mkdir(parents=True)
                summary = {**_summary(method, "selector", seed, scores), "algo": "dpo", "wall_s": 1}
                (job / "summary.json").write_text(json.dumps(summary))
    refused = tmp_path / "b" / "dpo" / "neg_loss" / "seed0"
    refused.mkdir(parents=True)
    (refused / "summary.json").write_text(
        json.dumps({"method": "neg_loss", "algo": "dpo", "seed": 0, "refused": "carries nothing"})
    )
    main(["laser", str(tmp_path / "a"), str(tmp_path / "b")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dpo: laser 0.900 (tier 1.00), third 0.750 (tier 1.00), other 0.500")
    # both seeds differ by exactly 0.15: the interval over seeds has no width
    assert "  laser - third: +0.150 [" in out[1]
    assert out[1].endswith("2/2, over seeds [+0.150, +0.150]")
    assert "  laser - other: +0.400 [" in out[2]  # sweep a's "other", not b's
    assert "neg_loss" not in "\n".join(out)


def test_reseeded_runs_count_as_more_seeds_of_their_recipe():
    from experiments.pairs import RESEED_OFFSET, reseeded

    runs = [
        {"method": "laser", "seed": 2},
        {"method": "laser_reseed", "seed": 2},
        {"method": "laser_d1_reseed", "seed": 0},
    ]
    out = reseeded(runs, "_reseed")
    assert [(r["method"], r["seed"]) for r in out] == [
        ("laser", 2),
        ("laser", 2 + RESEED_OFFSET),
        ("laser_d1", RESEED_OFFSET),
    ]
    assert runs[1] == {"method": "laser_reseed", "seed": 2}  # the input is not changed


def test_pairs_gives_each_method_its_share_of_the_ensembles_rm_cost():
    from experiments.pairs import lines

    scores = [1.0] * 10 + [0.0] * 10
    runs = [
        {**_summary("laser", "selector", 0, scores, cost=150), "algo": "dpo", "wall_s": 1},
        {**_summary("mean_ensemble", "ensemble", 0, scores, cost=400), "algo": "dpo", "wall_s": 1},
    ]
    head = lines(runs, "laser", 0.2)[0]
    assert "laser 0.500 (tier 1.00, cost 0.38)" in head and head.endswith("mean_ensemble 0.500")
