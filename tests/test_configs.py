"""Every conf/bandit file composes with Hydra and instantiates a working selector."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from laser.bandits import Bandit

CONF = Path(__file__).resolve().parent.parent / "conf"
BANDITS = sorted(p.stem for p in (CONF / "bandit").glob("*.yaml"))


def test_bandit_group_is_not_empty():
    assert {"linucb", "lints", "exp3", "fixed", "random", "round_robin"} <= set(BANDITS)


@pytest.mark.parametrize("name", BANDITS)
def test_bandit_config_composes_and_instantiates(name):
    with initialize_config_dir(config_dir=str(CONF / "bandit"), version_base="1.3"):
        cfg = compose(config_name=name)
    sizes = {"num_arms": 3, **({"dim": 4} if "dim" in cfg.keys() else {})}
    if "routes" in cfg.keys():  # the oracle router: filled from the world at run time
        sizes.update(dim=4, routes=[0, 1, 2, 0])
    if "tiers" in cfg.keys():  # the tier oracle router: likewise
        sizes.update(dim=4, tiers=[[0, 1], [1], [2], [0, 2]])
    # stochastic selectors read ${loop.seed} from the run config they are part of
    root = OmegaConf.create({"loop": {"seed": 0}, "bandit": cfg})
    selector = instantiate(root.bandit, **sizes)
    assert isinstance(selector, Bandit) and selector.num_arms == 3
    x = np.ones(4) if "tiers" not in cfg.keys() else np.eye(4)[0]
    arm = selector.select(x)
    selector.update(arm, x, 0.5)
    assert selector.probabilities(x).sum() == pytest.approx(1.0)


def test_round_robin_without_feedback_is_refused():
    """RoundRobin advances after each selector update: feedback=none would freeze it on the
    first RM, silently a fixed-RM run (it did, in a robustness sweep); refused up front."""
    from laser.build import validate
    from laser.cli import CONF_DIR  # importing laser.cli registers train_schema

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        bad = compose("train", ["bandit=round_robin", "feedback=none", "output_dir=."])
        free = "feedback=majority_agreement"
        good = compose("train", ["bandit=round_robin", free, "output_dir=."])
    with pytest.raises(ValueError, match="round_robin.*feedback=none"):
        validate(bad)
    validate(good)


def test_fixed_arm_best_is_the_rm_the_caller_names():
    """bandit.arm=best (the main job's fixed_best) resolves through build_selector's `best`;
    without a world report to ask, it is an error, not a silent first arm."""
    from laser.build import build_selector

    fixed = {"_target_": "laser.bandits.FixedArm", "num_arms": "???", "arm": "best"}
    node = OmegaConf.create(fixed)
    names = ["a", "b", "c"]
    assert build_selector(node, names, best=lambda: "c").select(np.ones(2)) == 2
    assert build_selector(node, names, best=lambda: "b").select(np.ones(2)) == 1
    assert node.arm == "best"  # the config node itself is left as written
    with pytest.raises(ValueError, match="arm=best needs a world report"):
        build_selector(node, names)


@pytest.mark.parametrize("experiment", ["baseline_fixed", "baseline_random", "baseline_ensemble"])
def test_baseline_experiments_pay_no_feedback_passes(experiment):
    """A selector that learns nothing gets no feedback: the default one audits a quarter of
    the prompts with every other RM, passes a fixed or random RM would pay for nothing."""
    from laser.cli import CONF_DIR  # importing laser.cli registers train_schema

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"experiment={experiment}", "output_dir=."])
    assert cfg.feedback.signal._target_ == "laser.feedback.NoFeedback"
