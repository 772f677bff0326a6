"""Checkpoints survive kill -9, load with weights_only, and fail loudly when damaged."""

import os

import numpy as np
import pytest
import torch

from laser import checkpoint as ckpt
from laser.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def _rl_state():
    """A state shaped like a real run's: model/optimizer tensors, numpy buffers, both RNGs."""
    rng = np.random.default_rng(123)
    rng.normal(size=7)  # advance so the state is not the seed's
    torch_gen = torch.Generator().manual_seed(7)
    torch.randn(5, generator=torch_gen)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    return (
        {
            "step": 41,
            "model": model.state_dict(),
            "bandit": {"A": np.eye(3) * 2.5, "b": np.arange(3, dtype=np.float32), "t": np.int64(9)},
            "history": [np.float64(0.25), 1, "ppo", None, (1, 2)],
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch_gen.get_state(),
        },
        rng,
        torch_gen,
    )


def test_round_trip_restores_tensors_arrays_and_both_generators(tmp_path):
    state, rng, torch_gen = _rl_state()
    path = save_checkpoint(tmp_path, 41, state)
    assert path.name == "ckpt-00000041.pt"
    loaded = load_checkpoint(path)

    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert loaded["model"]._metadata == state["model"]._metadata  # module versions kept
    # numpy arrays come back as tensors (documented); values and dtypes are unchanged
    np.testing.assert_array_equal(np.asarray(loaded["bandit"]["A"]), np.eye(3) * 2.5)
    assert loaded["bandit"]["b"].dtype == torch.float32
    assert loaded["bandit"]["t"] == 9 and type(loaded["bandit"]["t"]) is int
    assert loaded["history"] == [0.25, 1, "ppo", None, [1, 2]]

    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["numpy_rng"]
    np.testing.assert_array_equal(restored.normal(size=10), rng.normal(size=10))
    restored_torch = torch.Generator()
    restored_torch.set_state(loaded["torch_rng"])
    assert torch.equal(
        torch.randn(10, generator=restored_torch), torch.randn(10, generator=torch_gen)
    )


def test_file_loads_with_plain_weights_only_torch_load(tmp_path):
    """128-bit PCG64 ints survive weights_only as python ints: no encoding needed."""
    state, _, _ = _rl_state()
    payload = torch.load(save_checkpoint(tmp_path, 1, state), weights_only=True)
    pcg = payload["state"]["numpy_rng"]["state"]
    assert isinstance(pcg["state"], int) and pcg == state["numpy_rng"]["state"]


def test_ints_too_big_for_weights_only_are_encoded_and_decoded(tmp_path):
    huge = {"pos": 2**5000 + 3, "neg": -(3**4000), "edge": 2**2000 - 1}
    assert load_checkpoint(save_checkpoint(tmp_path, 1, huge)) == huge


def test_unsupported_types_fail_at_save_time_not_at_load_time(tmp_path):
    with pytest.raises(TypeError, match=r"state\['bad'\]"):
        save_checkpoint(tmp_path, 1, {"bad": object()})
    with pytest.raises(TypeError, match="object arrays"):
        save_checkpoint(tmp_path, 1, {"arr": np.array([{}], dtype=object)})
    assert list_checkpoints(tmp_path) == []


def test_crash_during_replace_keeps_previous_and_next_save_cleans_temp(tmp_path, monkeypatch):
    good = save_checkpoint(tmp_path, 1, {"x": torch.ones(3)})

    def crash(src, dst):
        raise OSError("simulated kill")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="simulated kill"):
        save_checkpoint(tmp_path, 2, {"x": torch.zeros(3)})
    monkeypatch.undo()
    assert list_checkpoints(tmp_path) == [good]
    assert torch.equal(load_checkpoint(good)["x"], torch.ones(3))

    # a kill -9 leaves its temp file behind (no except clause runs): fake one
    (tmp_path / ".ckpt-00000002-abc.tmp").write_bytes(b"half a checkpoint")
    assert latest_checkpoint(tmp_path) == good
    save_checkpoint(tmp_path, 2, {"x": torch.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000001.pt", "ckpt-00000002.pt"]


def test_keep_prunes_oldest_only_after_the_new_file_exists(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"s": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000030.pt", "ckpt-00000040.pt"]
    assert latest_checkpoint(tmp_path).name == "ckpt-00000040.pt"
    save_checkpoint(tmp_path, 50, {"s": 50}, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000050.pt"]
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, 60, {}, keep=0)


def test_resuming_from_an_earlier_step_drops_the_abandoned_later_ones(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"s": step}, keep=3)
    save_checkpoint(tmp_path, 2, {"s": "redo"}, keep=3)  # resumed from step 1 and re-ran step 2
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000001.pt", "ckpt-00000002.pt"]
    assert load_checkpoint(latest_checkpoint(tmp_path)) == {"s": "redo"}


def test_truncated_newest_names_the_file_and_the_previous_checkpoint(tmp_path):
    previous = save_checkpoint(tmp_path, 1, {"w": torch.randn(1000)})
    newest = save_checkpoint(tmp_path, 2, {"w": torch.randn(1000)})
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(newest)
    err = info.value
    assert isinstance(err, RuntimeError) and err.path == newest and err.previous == previous
    message = str(err)
    assert str(newest) in message and f"resume from {previous} instead" in message
    assert "zip archive" in message  # the cause, from torch


@pytest.mark.parametrize("content", [b"", b"\x00garbage bytes" * 50, b"PK\x03\x04not a zip"])
def test_garbage_or_empty_file_is_a_checkpoint_error(tmp_path, content):
    path = tmp_path / "ckpt-00000005.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="ckpt-00000005.pt") as info:
        load_checkpoint(path)
    assert info.value.previous is None and "resume from" not in str(info.value)
    assert f"file has {len(content)} bytes" in str(info.value)


def test_missing_file_and_foreign_pickle_are_checkpoint_errors(tmp_path):
    previous = save_checkpoint(tmp_path, 1, {"a": 1})
    with pytest.raises(CheckpointError, match="FileNotFoundError") as info:
        load_checkpoint(tmp_path / "ckpt-00000009.pt")
    assert info.value.previous == previous
    torch.save({"a": 1}, tmp_path / "ckpt-00000003.pt")  # loadable, but not ours
    with pytest.raises(CheckpointError, match="not a LASER checkpoint"):
        load_checkpoint(tmp_path / "ckpt-00000003.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"laser_checkpoint": 1, "state": {"x": Evil()}}, tmp_path / "ckpt-00000004.pt")
    with pytest.raises(CheckpointError, match="UnpicklingError"):
        load_checkpoint(tmp_path / "ckpt-00000004.pt")


def test_listing_ignores_temp_and_foreign_files(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    save_checkpoint(tmp_path, 3, {})
    save_checkpoint(tmp_path, 12, {})
    for name in (".ckpt-00000099-x.tmp", "ckpt-00000050.pt.bak", "notes.txt", "ckpt-abc.pt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000003.pt", "ckpt-00000012.pt"]
    assert latest_checkpoint(tmp_path).name == "ckpt-00000012.pt"


def test_error_pickles_across_processes(tmp_path):
    import pickle

    err = CheckpointError(tmp_path / "ckpt-00000002.pt", "bad", tmp_path / "ckpt-00000001.pt")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.previous == err.previous


_WRITER = """
import sys, torch
from laser.checkpoint import save_checkpoint
state = {"w": torch.arange(4_000_000, dtype=torch.float32)}  # 16 MB: writes take a while
step = 0
while True:
    step += 1
    state["step"] = step
    save_checkpoint(sys.argv[1], step, state, keep=2)
"""


def test_real_kill_9_mid_write_leaves_a_loadable_latest(tmp_path):
    """Fault injection: SIGKILL a writer at an arbitrary moment, then resume as a run would."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while len(list_checkpoints(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.037)  # land somewhere inside a later write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = latest_checkpoint(tmp_path)
    state = load_checkpoint(latest)
    assert state["step"] == int(latest.name[5:13]) and state["w"][-1] == 3_999_999
    save_checkpoint(tmp_path, state["step"] + 1, state)
    assert not list(tmp_path.glob(".ckpt-*.tmp"))
