"""laser-train-rm end to end on a local JSONL file, and its config checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from laser.cli import CONF_DIR, to_train_rm_config
from laser.rewards import HFRewardModel, pairwise_accuracy
from laser.rewards.toy import toy_preference_rows

SCRIPT = Path(sys.executable).parent / "laser-train-rm"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_trains_saves_and_reports(tmp_path):
    data = _write_jsonl(tmp_path / "prefs.jsonl", toy_preference_rows(600, seed=0))
    out = tmp_path / "rm"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    result = subprocess.run(
        [
            str(SCRIPT),
            f"data.train={data}",
            f"output_dir={out}",
            "model.tiny.n_layer=1",
            "model.tiny.n_embd=32",
            "max_length=64",
            "progress=false",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eval pairwise accuracy" in result.stdout
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_accuracy"] >= 0.95
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged and {"step", "rm_train/loss", "rm_train/accuracy"} <= set(logged[-1])

    rm = HFRewardModel(out)
    heldout = toy_preference_rows(200, seed=7)
    prompts = [r["prompt"] for r in heldout]
    acc = pairwise_accuracy(
        rm.score(prompts, [r["chosen"] for r in heldout]),
        rm.score(prompts, [r["rejected"] for r in heldout]),
    )
    assert acc >= 0.95


def test_cli_reports_a_missing_data_file(tmp_path):
    result = subprocess.run(
        [
            str(SCRIPT),
            f"data.train={tmp_path / 'nope.jsonl'}",
            f"output_dir={tmp_path / 'o'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "data file not found" in result.stderr


@pytest.mark.parametrize("logger", ["none", "jsonl"])
def test_train_rm_config_composes(logger):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train_rm", overrides=["data.train=x.jsonl", f"logger={logger}"])
    config = to_train_rm_config(cfg)
    assert config.loss == "bradley_terry" and config.data.train == "x.jsonl"


def test_wrong_config_values_fail_early():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train_rm", overrides=["data.train=x.jsonl"])
    bad_type = OmegaConf.merge(cfg, {"epochs": "three"})
    with pytest.raises(Exception, match="epochs"):
        to_train_rm_config(bad_type)
    OmegaConf.set_struct(cfg, False)
    unknown = OmegaConf.merge(cfg, {"learning_rate": 0.1})
    with pytest.raises(Exception, match="learning_rate"):
        to_train_rm_config(unknown)


def test_missing_conf_dir_is_a_clear_error(tmp_path, monkeypatch):
    from laser import cli

    monkeypatch.setenv("LASER_CONF_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="LASER_CONF_DIR"):
        cli.conf_dir()


def test_jsonl_logger_starts_fresh_unless_resuming(tmp_path):
    from laser.logging import JsonlLogger

    for append, expected in ((False, 1), (False, 1), (True, 2)):
        logger = JsonlLogger(tmp_path / "m.jsonl", append=append)
        logger.log({"rm_train/loss": float("nan")}, step=1)
        logger.close()
        lines = (tmp_path / "m.jsonl").read_text().splitlines()
        assert len(lines) == expected and json.loads(lines[0])["rm_train/loss"] == "nan"


def _config(train, **data):
    from laser.rewards.config import RMDataConfig, TrainRMConfig

    return TrainRMConfig(data=RMDataConfig(train=str(train), **data), output_dir="unused")


def test_bad_rows_are_named_by_their_line_in_the_file_not_the_shuffled_split(tmp_path):
    """Issue 17.6: a bad row on line 5 used to be reported by its position in the split."""
    from laser.logging import NullLogger
    from laser.rewards.run import run_train_rm

    rows = toy_preference_rows(40, seed=0)
    rows[3]["chosen"] = ""  # line 5: the file starts with a blank line
    rows[30]["rejected"] = " "  # line 32
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n" + "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError) as info:
        run_train_rm(_config(path), NullLogger())
    message = str(info.value)
    assert str(path) in message
    assert "empty 'chosen' in line(s) 5;" in message and "empty 'rejected' in line(s) 32" in message


def test_a_column_missing_from_the_first_row_is_not_dropped_for_all(tmp_path):
    """Issue 17.7: without 'prompt' on line 1, training ran with every prompt set to ''."""
    from laser.rewards.run import split_data

    rows = toy_preference_rows(20, seed=0)
    del rows[0]["prompt"]
    path = _write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(ValueError, match=r"prefs.jsonl: missing 'prompt' in line\(s\) 1\b"):
        split_data(_config(path))
