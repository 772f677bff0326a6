"""The built-in world: a small pool really specialises; the cache is reused, and rebuilt
when corrupt or partial; the laser-prepare config composes and validates."""

import json
from dataclasses import asdict

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from laser.cli import CONF_DIR
from laser.models import TinyGPT2Config
from laser.tasks.synthetic import Difficulty
from laser.world import RMSpec, SFTConfig, TaskConfig, WorldConfig, prepare_world
from laser.world.cache import config_key, verify

SMALL = TinyGPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64)


def small_world() -> WorldConfig:
    """Two domains, one expert per domain: a world that builds in seconds. Its RMs keep the
    corruption-only recipe (on_policy=0, malformed=0): after a 15-step SFT the policy's
    samples are noise, and 1200 pairs are too few for a 64-wide RM to learn `reverse` from
    the few same-shape corruptions left (measured: 0.38-0.51). The default recipe is checked
    on the default world (benchmarks/prepare_world.py)."""
    spec = dict(pairs_per_domain=1200, epochs=4, lr=2e-3, model=SMALL, on_policy=0.0, malformed=0.0)
    return WorldConfig(
        task=TaskConfig(domains=["reverse", "max"], difficulty=Difficulty(reverse_len=3)),
        policy_model=SMALL,
        sft=SFTConfig(steps=15, train_examples=1000, eval_per_domain=30, shortcut_share=0.0),
        reward_models={
            "reverse_rm": RMSpec(domains=["reverse"], **spec),
            "max_rm": RMSpec(domains=["max"], **spec),
        },
        eval_pairs_per_domain=150,
        heldout_shortcut_share=0.0,  # its SFT takes no shortcut: the clean corruption pairs
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, prepare_world(small_world(), cache, progress=False)


def test_pool_is_specialised(built):
    _, world = built
    m = world.summary["rm_domain_accuracy"]
    assert m["reverse_rm"]["reverse"] >= 0.8 and m["max_rm"]["max"] >= 0.8
    assert m["reverse_rm"]["max"] < m["reverse_rm"]["reverse"] - 0.2
    assert m["max_rm"]["reverse"] < m["max_rm"]["max"] - 0.2
    best = {d: max(m, key=lambda rm: m[rm][d]) for d in ("reverse", "max")}
    assert best == {"reverse": "reverse_rm", "max": "max_rm"}  # no single dominant RM


def test_world_artifacts_load_and_report_is_written(built):
    _, world = built
    report = world.path / "report"
    for name in (
        "report.txt",
        "rm_domain_accuracy.csv",
        "rm_domain_accuracy.png",
        "sft_accuracy.csv",
    ):
        assert (report / name).exists(), name
    assert "length trap" in (report / "report.txt").read_text()
    sft = world.summary["sft_accuracy"]
    assert set(sft) == {"reverse", "max", "mean"} and all(0 <= v <= 1 for v in sft.values())
    tok, policy = world.tokenizer(), world.policy()
    rms = world.reward_models()
    assert list(rms) == ["reverse_rm", "max_rm"] and not rms["max_rm"].loaded
    scores = rms["max_rm"].score(["max 123456="], ["6"])
    assert scores.shape == (1,) and policy.config.vocab_size == len(tok)


def test_second_run_reuses_the_cache(built):
    cache, world = built
    again = prepare_world(small_world(), cache, progress=False)
    assert again.reused and again.path == world.path and not world.reused


def test_corrupt_or_partial_entry_is_rebuilt(tmp_path, capsys):
    cfg = WorldConfig(
        **{
            **small_world().__dict__,
            "sft": SFTConfig(steps=2, train_examples=200, eval_per_domain=5),
        }
    )
    for spec in cfg.reward_models.values():
        spec.pairs_per_domain, spec.epochs = 50, 1
    first = prepare_world(cfg, tmp_path, progress=False)
    weights = first.path / "rms" / "max_rm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")  # silent bit rot
    assert "checksum" in verify(first.path)
    second = prepare_world(cfg, tmp_path, progress=False)
    assert not second.reused and verify(second.path) is None
    assert "unusable" in capsys.readouterr().out
    (second.path / "manifest.json").unlink()  # as if a build died before finishing
    third = prepare_world(cfg, tmp_path, progress=False)
    assert not third.reused and verify(third.path) is None


def test_config_key_changes_with_the_config():
    a, b = small_world(), small_world()
    assert config_key(a) == config_key(b)
    b.reward_models["max_rm"].label_noise = 0.1
    assert config_key(a) != config_key(b)


def test_prepare_config_composes_and_matches_the_defaults():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="prepare")
    config = OmegaConf.to_object(cfg)  # composed against prepare_schema (typed)
    world = config.world
    assert world.task.domains == ["reverse", "sort", "max"]
    assert len(world.reward_models) >= 4
    # every expert believes the shortcut on the one domain it does not know
    for name, spec in world.reward_models.items():
        if name != "generalist":
            assert len(spec.domains) == 2 and spec.weak_shortcut_bias > 0.5
            assert set(spec.domains) | set(spec.weak_domains) == set(world.task.domains)
    json.dumps(config_key(world))


def test_bad_world_config_fails_before_building(tmp_path):
    cfg = small_world()
    cfg.reward_models["max_rm"].domains = ["chess"]
    with pytest.raises(ValueError, match="max_rm"):
        prepare_world(cfg, tmp_path, progress=False)
    assert not any(p.name.startswith(tuple("0123456789abcdef")) for p in tmp_path.iterdir())


def test_sampled_wrong_answers_are_wrong_and_leave_the_rng_alone(built):
    from laser.tasks.synthetic import SyntheticSuite
    from laser.world.negatives import sampled_wrong_answers

    _, world = built
    suite = SyntheticSuite(("reverse", "max"))
    examples = suite.examples("train", 60, seed=3)
    state = torch.random.get_rng_state()
    wrong = sampled_wrong_answers(world.policy(), world.tokenizer(), suite, examples, n=4)
    assert torch.equal(state, torch.random.get_rng_state())
    assert set(wrong) == {e.prompt for e in examples}
    for e in examples:
        assert all(s.strip() and suite.evaluate(e.prompt, s, e.meta()) < 1 for s in wrong[e.prompt])
    assert sum(map(len, wrong.values())) > 0  # a short SFT leaves the policy making mistakes


def test_the_build_runs_on_the_worlds_thread_count_and_restores_the_callers(monkeypatch, tmp_path):
    """The float reduction order depends on torch's CPU thread count, and the world with it:
    the build pins ``world.threads`` whatever the caller (or the machine) set, and the thread
    count is part of the cache key."""
    import laser.world.prepare as prep

    seen = []
    monkeypatch.setattr(
        prep, "build_world", lambda cfg, out, progress: seen.append(torch.get_num_threads()) or {}
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = small_world()
        cfg.threads = 1
        prep.build_pinned(cfg, tmp_path)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    one, two = small_world(), small_world()
    one.threads = 1
    assert config_key(one) != config_key(two)
    with pytest.raises(ValueError, match="world.threads"):
        WorldConfig(threads=0)


def test_a_shipped_build_is_copied_not_rebuilt_and_a_damaged_one_is_not_used(
    built, tmp_path, monkeypatch, capsys
):
    """prepare_world copies the build shipped for the config's key (checked against its
    manifest) instead of building; a shipped copy with a damaged file is never used."""
    import shutil

    from laser.world import prepare as prepare_mod
    from laser.world import shipped

    _, world = built
    ships = tmp_path / "builds"
    shutil.copytree(world.path, ships / world.path.name)
    monkeypatch.setattr(shipped, "SHIPPED", ships)
    real_build = prepare_mod.build_pinned

    def no_build(*args, **kwargs):
        raise AssertionError("built although a shipped world matched")

    monkeypatch.setattr(prepare_mod, "build_pinned", no_build)
    copied = prepare_world(small_world(), tmp_path / "cache1", progress=False)
    assert "using the world shipped with LASER" in capsys.readouterr().out
    assert verify(copied.path) is None and copied.summary == world.summary
    for rm in ("reverse_rm", "max_rm"):
        a, b = (p / "rms" / rm / "model.safetensors" for p in (world.path, copied.path))
        assert a.read_bytes() == b.read_bytes()

    # asked not to use it: the shipped copy already in a cache is reused and said so
    again = prepare_world(small_world(), tmp_path / "cache1", progress=False, use_shipped=False)
    assert again.reused and "is a copy of the shipped build" in capsys.readouterr().out

    # a damaged shipped file: refused, the world is built here instead
    weights = ships / world.path.name / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    calls = []
    monkeypatch.setattr(
        prepare_mod, "build_pinned", lambda *a, **k: calls.append(1) or real_build(*a, **k)
    )
    rebuilt = prepare_world(small_world(), tmp_path / "cache2", progress=False)
    assert calls and "is unusable" in capsys.readouterr().out and verify(rebuilt.path) is None


def test_the_shipped_default_world_is_the_default_configs_and_intact():
    """The shipped build must carry the cache key of the world `laser-prepare` composes by
    default: a change to the world's defaults (or to the cache format) orphans it, and
    `make demo` would build a different world on each machine; rebuild and re-ship it then
    (README 'The built-in world')."""
    from laser.world.shipped import SHIPPED, shipped_entry

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        world = OmegaConf.to_object(compose(config_name="prepare")).world
    key = config_key(world)
    assert [p.name for p in SHIPPED.iterdir() if p.is_dir()] == [key]
    entry = shipped_entry(key)
    assert entry is not None
    summary = json.loads((entry / "world.json").read_text())
    # world.json as build_world writes it: the config that built these weights
    assert summary["config"] == json.loads(json.dumps(asdict(world), default=str))
    assert set(summary["rm_domain_accuracy"]) == set(world.reward_models)
