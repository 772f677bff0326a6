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
    # stochastic selectors read ${loop.seed} from the run config they are part of
    root = OmegaConf.create({"loop": {"seed": 0}, "bandit": cfg})
    selector = instantiate(root.bandit, **sizes)
    assert isinstance(selector, Bandit) and selector.num_arms == 3
    x = np.ones(4)
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
