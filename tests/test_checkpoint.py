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


# --- issue 17.5: checksums, non-finite weights, a full disk --------------------------------


def test_flipped_bytes_in_the_weights_are_a_checkpoint_error(tmp_path):
    """4 flipped bytes inside a tensor's data used to load silently with altered weights."""
    previous = save_checkpoint(tmp_path, 1, {"w": torch.randn(1000)})
    w = torch.randn(1000)
    newest = save_checkpoint(tmp_path, 2, {"w": w})
    data = bytearray(newest.read_bytes())
    at = data.find(w.numpy().tobytes()[:64])
    assert at > 0
    data[at + 8 : at + 12] = bytes(b ^ 0xFF for b in data[at + 8 : at + 12])
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum") as info:
        load_checkpoint(newest)
    assert info.value.path == newest and info.value.previous == previous
    assert f"resume from {previous} instead" in str(info.value)


def _legacy(path, state, step=3):
    """A checkpoint as written before checksums: same format marker, no digest."""
    torch.save({"laser_checkpoint": 1, "step": step, "state": state}, path)
    return path


def test_non_finite_weights_in_a_loaded_checkpoint_name_the_file_and_the_key(tmp_path):
    previous = save_checkpoint(tmp_path, 1, {"w": torch.ones(2)})
    w = torch.ones(4, dtype=torch.bfloat16)
    w[2] = float("nan")
    state = {"trainer": {"policy": {"h.0.w": torch.ones(3), "h.1.w": w}}, "rng": torch.ones(3)}
    path = _legacy(tmp_path / "ckpt-00000003.pt", state)
    with pytest.raises(CheckpointError, match="non-finite") as info:
        load_checkpoint(path)
    assert "state['trainer']['policy']['h.1.w']" in str(info.value)
    assert info.value.path == path and info.value.previous == previous
    # a checksum does not bless NaNs: valid digest, still refused
    payload = {"laser_checkpoint": 1, "step": 4, "state": state}
    payload["sha256"] = ckpt._state_digest(4, state)
    torch.save(payload, tmp_path / "ckpt-00000004.pt")
    with pytest.raises(CheckpointError, match=r"non-finite .*'h\.1\.w'"):
        load_checkpoint(tmp_path / "ckpt-00000004.pt")


def test_saving_non_finite_weights_is_refused_and_keeps_the_good_checkpoints(tmp_path):
    """A diverged run must not prune its last good checkpoints by saving NaN ones."""
    good = save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, keep=1)
    with pytest.raises(ValueError, match=r"step 2: .*non-finite.*state\['opt'\]\[0\]"):
        save_checkpoint(tmp_path, 2, {"opt": [torch.tensor([1.0, float("inf")])]}, keep=1)
    assert list_checkpoints(tmp_path) == [good] and not list(tmp_path.glob(".ckpt-*"))


def test_a_checkpoint_without_checksum_still_loads_with_a_warning(tmp_path, caplog):
    path = _legacy(tmp_path / "ckpt-00000003.pt", {"w": torch.ones(2), "n": 5})
    with caplog.at_level("WARNING", logger="laser.checkpoint"):
        state = load_checkpoint(path)
    assert torch.equal(state["w"], torch.ones(2)) and state["n"] == 5
    assert "no checksum" in caplog.text and str(path) in caplog.text


def test_digest_covers_every_value_not_only_tensors(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": 5, "name": "ppo", "x": [1.5, None]}
    digest = ckpt._state_digest(7, state)
    assert digest == ckpt._state_digest(7, load_checkpoint(save_checkpoint(tmp_path, 7, state)))
    for changed in (
        {**state, "n": 6},
        {**state, "name": "ppO"},
        {**state, "w": torch.arange(6.0).reshape(3, 2)},  # same bytes, other shape
        {**state, "w": torch.arange(6.0, dtype=torch.float64).reshape(2, 3)},
        {**state, "x": [1.5]},
    ):
        assert ckpt._state_digest(7, changed) != digest
    assert ckpt._state_digest(8, state) != digest


@pytest.mark.parametrize("chained", ["cause", "context"])
def test_disk_full_names_the_errno_and_the_checkpoint(tmp_path, monkeypatch, chained):
    """torch reports ENOSPC as "unexpected pos 704 vs 598" with the OSError in its chain."""
    import errno

    previous = save_checkpoint(tmp_path, 1, {"w": torch.ones(2)})

    def full_disk(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        disk = OSError(errno.ENOSPC, "No space left on device")
        opaque = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
        if chained == "cause":
            raise RuntimeError(opaque) from disk
        try:
            raise disk
        except OSError:
            raise RuntimeError(opaque)  # noqa: B904 (implicit context, as torch raises it)

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path, 2, {"w": torch.zeros(2)})
    err = info.value
    assert err.errno == errno.ENOSPC and "No space left on device" in str(err)
    assert str(tmp_path / "ckpt-00000002.pt") in str(err)
    assert list_checkpoints(tmp_path) == [previous] and not list(tmp_path.glob(".ckpt-*"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_full_device_surfaces_enospc(tmp_path, monkeypatch):
    """The same through torch's real writer: the temp file's writes go to /dev/full."""
    import errno

    real_fdopen = os.fdopen

    def to_dev_full(fd, mode="r", *args, **kwargs):
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode, *args, **kwargs)

    monkeypatch.setattr(ckpt.os, "fdopen", to_dev_full)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path, 2, {"w": torch.zeros(1_000_000)})
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and "ckpt-00000002.pt" in str(info.value)
    assert "unexpected pos" not in str(info.value).split(":")[0]
