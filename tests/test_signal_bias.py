"""experiments/signal_bias.py: the diagnostic's columns and verdicts on hand-made scores."""

from __future__ import annotations

import pytest
import torch

from experiments.signal_bias import agreement_table, tally, verdicts

N = 8  # samples per prompt


def _world(prompts: int = 40, seed: int = 0) -> dict:
    """Per prompt: 8 samples, gold 1 for the first two (decided pairs: right vs wrong), 0 for
    the rest. Two experts order 0.9 of the decided pairs right and every other pair at
    random, each on its own; two copies score a wrong sample by a feature they share (its
    length) and a right one +2 or -2 each on its own (+2 with probability 0.6): they order
    0.6 of the decided pairs right, with independent errors there, and every pair of two
    wrong samples alike; ``noise`` is unrelated to everything."""
    g = torch.Generator().manual_seed(seed)
    size = prompts * N
    gold = torch.tensor([1.0, 1.0] + [0.0] * (N - 2)).repeat(prompts)
    length = torch.rand(size, generator=g)

    def signed(p_right: float) -> torch.Tensor:
        return (torch.rand(size, generator=g) < p_right).float() * 2 - 1

    def expert() -> torch.Tensor:
        return gold * signed(0.9) + 0.5 * torch.rand(size, generator=g)

    def copy() -> torch.Tensor:
        return gold * 2 * signed(0.6) + (1 - gold) * length

    scores = {"expert_1": expert(), "expert_2": expert(), "copy_a": copy(), "copy_b": copy()}
    scores["noise"] = torch.rand(size, generator=g)
    return {"scores": scores, "gold": gold, "domains": ["d"] * prompts, "n": N}


def _groups(data: dict) -> dict[int, list[int]]:
    return {p: list(range(p * N, (p + 1) * N)) for p in range(len(data["domains"]))}


def test_gold_column_is_agreement_on_the_pairs_gold_orders():
    data = _world()
    table = agreement_table(data["scores"], data["gold"], _groups(data))
    for name in ("expert_1", "expert_2", "copy_a", "copy_b"):
        # hand-computed: a right sample scored above 0.75 beats every wrong one (those score
        # at most 0.5 by an expert, 1 by a copy), one below loses to all of them
        right = data["scores"][name].view(-1, N)[:, :2]
        assert table[name]["gold"] == pytest.approx(float((right > 0.75).float().mean()))


def test_the_pooled_fit_follows_a_shared_flaw_and_the_decided_pairs_expose_it():
    """Most pairs are two wrong samples, which the two copies order alike by their shared
    feature: the fit on every pair rates them above the experts, the fit on the pairs gold
    orders does not. This is what the labelled column is there to tell apart."""
    data = _world()
    table = agreement_table(data["scores"], data["gold"], _groups(data))
    pooled = {m: r["spectral_pooled"] for m, r in table.items()}
    decided = {m: r["spectral_decided"] for m, r in table.items()}
    experts, copies = ("expert_1", "expert_2"), ("copy_a", "copy_b")
    assert min(pooled[c] for c in copies) > max(pooled[e] for e in experts)
    assert min(decided[e] for e in experts) > max(decided[c] for c in [*copies, "noise"])
    tier = verdicts(table)
    assert tier["spectral_pooled"][1:] == (False, False)  # a copy first
    assert tier["spectral_decided"][0] in experts and tier["spectral_decided"][1:] == (True, True)


def test_verdicts_on_a_hand_made_table():
    table = {
        "a": {"gold": 0.95, "others": 0.1, "pool": 0.9},
        "b": {"gold": 0.92, "others": 0.3, "pool": 0.8},
        "c": {"gold": 0.50, "others": 0.2, "pool": 0.95},
    }
    for row in table.values():
        row.update({k: row["pool"] for k in ("pool_margin", "spectral", "spectral_pooled")})
        row["spectral_decided"] = row["gold"]
    out = verdicts(table)
    # others: b first, in a's tier (0.92 vs 0.95); not ordered, as a is more than 0.05 above
    # c by gold but below it by the signal (0.1 < 0.2)
    assert out["others"] == ("b", True, False)
    assert out["pool"] == ("c", False, False)
    assert out["spectral_decided"] == ("a", True, True)


def test_tally_counts_every_file_and_domain(tmp_path):
    paths = []
    for seed in (0, 1):
        data = _world(seed=seed)
        data["domains"] = ["d1"] * 20 + ["d2"] * 20
        paths.append(tmp_path / f"scores_{seed}.pt")
        torch.save(data, paths[-1])
    lines = tally(paths)
    assert lines[0].startswith("4 (file, domain) cells from 2 score files")
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| spectral")}
    assert rows["spectral_decided"].endswith("| 4/4 | 4/4 |")
    assert rows["spectral_pooled"].startswith("| spectral_pooled | 0/4 |")
