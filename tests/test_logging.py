"""Loggers: run info first, metrics after; W&B offline by default without credentials."""

import io
import json
import re
from pathlib import Path

import pytest

from laser.logging import (
    JsonlLogger,
    Logger,
    NullLogger,
    WandbLogger,
    resolve_wandb_mode,
    run_metadata,
    wandb_api_key_configured,
)

REPO = Path(__file__).resolve().parents[1]


def test_jsonl_writes_run_info_line_then_metric_lines(tmp_path):
    import numpy as np

    logger = JsonlLogger(tmp_path / "m.jsonl")
    assert isinstance(logger, Logger) and isinstance(NullLogger(), Logger)
    logger.log_run_info({"config": {"lr": np.float32(0.5), "out": tmp_path}, "seed": 3})
    logger.log({"policy/loss": 1.25}, step=1)
    logger.log({"policy/loss": float("inf")}, step=2)
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0] == {"run_info": {"config": {"lr": 0.5, "out": str(tmp_path)}, "seed": 3}}
    assert lines[1:] == [{"step": 1, "policy/loss": 1.25}, {"step": 2, "policy/loss": "inf"}]


def test_null_logger_accepts_everything():
    logger = NullLogger()
    logger.log_run_info({"seed": 1})
    logger.log({"a": 1.0}, step=0)
    logger.close()


def test_run_metadata_records_commit_seed_and_versions(monkeypatch):
    import platform

    import torch

    monkeypatch.chdir(REPO)
    meta = run_metadata({"bandit": "linucb"}, seed=7)
    assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert meta["git_dirty"] in (True, False)
    assert meta["config"] == {"bandit": "linucb"} and meta["seed"] == 7
    assert meta["python"] == platform.python_version() and meta["torch"] == torch.__version__


def test_run_metadata_outside_a_repository_says_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    meta = run_metadata({}, seed=0, cwd=tmp_path)
    assert meta["git_commit"] == "unknown" and meta["git_dirty"] is None


@pytest.fixture
def no_wandb_credentials(tmp_path, monkeypatch):
    """Hide every credential source wandb knows (env key, token file, netrc, settings)."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "wandb-data"))
    return home


def test_mode_resolution_uses_credentials_and_respects_overrides(no_wandb_credentials):
    netrc_path = no_wandb_credentials / ".netrc"
    assert not wandb_api_key_configured() and resolve_wandb_mode() == "offline"
    assert resolve_wandb_mode(env={"WANDB_API_KEY": "x" * 40}) == "online"
    netrc_path.write_text("machine example.com login user password nope\n")
    assert resolve_wandb_mode() == "offline"  # an entry for another host is not a key
    netrc_path.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc_path.chmod(0o600)
    assert wandb_api_key_configured() and resolve_wandb_mode() == "online"
    self_hosted = {"NETRC": str(netrc_path), "WANDB_BASE_URL": "https://wandb.example.org"}
    assert resolve_wandb_mode(env=self_hosted) == "offline"  # key is for another server
    # explicit mode beats WANDB_MODE beats detection
    assert resolve_wandb_mode(env={"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}) == "disabled"
    assert resolve_wandb_mode("offline", env={"WANDB_API_KEY": "k"}) == "offline"
    assert resolve_wandb_mode("online", env={}) == "online"


def test_wandb_offline_run_writes_a_syncable_directory(tmp_path, monkeypatch, no_wandb_credentials):
    monkeypatch.setenv("WANDB_MODE", "offline")  # belt and braces: a test never goes online
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert resolve_wandb_mode(env={}) == "offline"  # and detection alone would agree
    logger = WandbLogger(name="unit", config={"alpha": 0.1}, dir=tmp_path, tags=["test"])
    assert logger.mode == "offline" and isinstance(logger, Logger)
    logger.log_run_info(run_metadata({"alpha": 0.1}, seed=5, cwd=REPO))
    logger.log({"bandit/arm": 2, "policy/loss_probe": 0.75}, step=1)
    logger.log({"policy/loss_probe": float("nan")}, step=2)
    logger.close()
    logger.close()  # idempotent: shutdown paths may close twice

    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (record_file,) = runs[0].glob("run-*.wandb")
    data = record_file.read_bytes()  # leveldb-style log of protobuf records; keys are plain text
    assert len(data) > 0
    for key in (b"policy/loss_probe", b"bandit/arm", b"git_commit", b"seed"):
        assert key in data


def test_wandb_disabled_mode_is_a_silent_no_op(no_wandb_credentials):
    logger = WandbLogger(mode="disabled")
    logger.log_run_info({"seed": 1})
    logger.log({"a": 1.0}, step=0)
    logger.close()


# --- resume: log files are cut back to the checkpoint step, never duplicated or wiped ---------


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _write_decisions(writer, steps):
    for step in steps:
        writer.write(step, [0.5, 1.0], "rm_a", 0, 0.5, 0.25)


def test_decision_writer_resume_drops_rows_after_the_checkpoint_and_a_torn_line(tmp_path):
    """Issue 17.1: kill -9 after step 13, resume from the step-10 checkpoint."""
    from laser.logging import DecisionWriter

    path = tmp_path / "decisions.jsonl"
    _write_decisions(DecisionWriter(path), range(1, 14))
    with path.open("a") as f:
        f.write('{"step": 14, "context": [0.5')  # the kill landed mid-line
    _write_decisions(DecisionWriter(path, resume_step=10), range(11, 14))
    steps = [r["step"] for r in _records(path)]  # every line parses: nothing glued
    assert steps == list(range(1, 14))  # steps 11-13 once, not twice
    _write_decisions(DecisionWriter(path), [1])  # a new run starts empty
    assert [r["step"] for r in _records(path)] == [1]


def test_decision_writer_append_without_a_step_still_drops_a_torn_line(tmp_path):
    from laser.logging import DecisionWriter

    path = tmp_path / "decisions.jsonl"
    _write_decisions(DecisionWriter(path), [1, 2])
    with path.open("a") as f:
        f.write('{"step": 3, "rm"')
    _write_decisions(DecisionWriter(path, append=True), [3])
    assert [r["step"] for r in _records(path)] == [1, 2, 3]


def test_jsonl_logger_resume_keeps_metrics_up_to_the_checkpoint(tmp_path):
    """Issue 17.2: resuming into the run directory used to reopen metrics.jsonl with 'w'."""
    path = tmp_path / "metrics.jsonl"
    logger = JsonlLogger(path)
    logger.log_run_info({"seed": 1})
    for step in range(1, 6):
        logger.log({"policy/loss": float(step)}, step=step)
    logger.close()
    with path.open("a") as f:
        f.write('{"step": 6, "policy/lo')
    logger = JsonlLogger(path, resume_step=3)
    logger.log_run_info({"seed": 1})
    logger.log({"policy/loss": 4.5}, step=4)
    logger.close()
    records = _records(path)
    assert records[0] == {"run_info": {"seed": 1}} and records[4] == {"run_info": {"seed": 1}}
    assert [r.get("step") for r in records] == [None, 1, 2, 3, None, 4]
    assert records[-1]["policy/loss"] == 4.5


def test_truncate_jsonl_is_atomic_and_keeps_the_file_when_the_rewrite_fails(tmp_path, monkeypatch):
    from laser import logging as laser_logging

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 5)))
    before = path.read_text()

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(laser_logging.os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        laser_logging.truncate_jsonl(path, last_step=2)
    assert path.read_text() == before  # the original survives a failed rewrite
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temp file left
    monkeypatch.undo()
    assert laser_logging.truncate_jsonl(path, last_step=2) == 2  # records dropped
    assert [r["step"] for r in _records(path)] == [1, 2]


def test_each_log_line_is_one_write_call(tmp_path, monkeypatch):
    """A line longer than the text buffer is still written by one os.write, then flushed: a
    crash leaves whole lines plus at most one torn tail, which resume drops."""
    from laser import logging as laser_logging
    from laser.logging import DecisionWriter

    writes = []
    real_write = laser_logging.os.write

    def spy(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(laser_logging.os, "write", spy)
    logger = JsonlLogger(tmp_path / "m.jsonl")
    logger.log({f"reward/rm{i}/mean": 0.125 for i in range(1000)}, step=1)  # ~25 kB
    logger.close()
    DecisionWriter(tmp_path / "d.jsonl").write(1, [0.1] * 5000, "rm", 0, 0.5, 1.0)
    longer_than_a_buffer = [len(w) > 2 * io.DEFAULT_BUFFER_SIZE for w in writes]
    assert len(writes) == 2 and all(longer_than_a_buffer) and writes[1].endswith(b"\n")
    assert writes[0] == (tmp_path / "m.jsonl").read_bytes()
