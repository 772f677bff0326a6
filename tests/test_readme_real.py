"""The README's "LASER with your own model" commands, as written: every script they run
exists, and every laser-train / laser-compare / laser-bon command composes into a config that
passes the same validation a run does (no model is loaded; test_gguf.py runs the world)."""

import re
import shlex
from pathlib import Path

import pytest

from laser.build import validate
from laser.cli import compose_train

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### LASER with your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks, "the section has no bash block"
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line]


def program(cmd: list[str]) -> str:
    """``laser-train`` for ``.venv/bin/laser-train ...``; the script for ``python script``."""
    name = cmd[0].rsplit("/", 1)[-1]
    return cmd[1] if name == "python" else name


def test_the_section_runs_the_real_world_pipeline_end_to_end():
    programs = [program(c) for c in commands()]
    assert "experiments/real/prepare.py" in programs  # the RM pool and its report
    assert {"laser-train", "laser-compare"} <= set(programs)


@pytest.mark.parametrize("cmd", commands(), ids=lambda c: " ".join(c)[:60])
def test_each_command_is_valid(cmd):
    program, args = cmd[0], cmd[1:]
    if program.endswith("python"):
        assert (ROOT / args[0]).is_file(), f"{args[0]} does not exist"
        return
    if program.endswith("laser-train"):
        validate(compose_train(args))
        return
    if program.endswith("laser-compare"):
        from hydra import compose, initialize_config_dir

        from experiments.compare import train_overrides
        from laser.cli import CONF_DIR

        given = [a.split("=", 1)[1] for a in args if a.startswith("method=")]
        rest = [a for a in args if not a.startswith("method=")]
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="compare", overrides=rest, return_hydra_config=True)
        # the methods this command sweeps: its own method=..., else the group's default sweep
        # (opt-in rows, such as the prior ones, need files their own script writes first)
        methods = (given[0] if given else cfg.hydra.sweeper.params.method).split(",")
        assert set(methods) <= set(cfg.methods), methods
        if not given:
            assert "laser" in methods and len(methods) >= 4  # LASER and the baselines
        for method in methods:
            validate(compose_train(train_overrides(cfg, method, 0, "/tmp/x")))
        return
    pytest.fail(f"the test does not know how to check {program!r}: teach it")
