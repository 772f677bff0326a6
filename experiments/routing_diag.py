"""What a checkpointed ``spectral_pooled`` run believes, per domain: the pooled agreement
model's rank-one fit c (each RM's estimated reliability 2p - 1) and the linear selector's
mean, both averaged over the contexts of the domain's held-out eval prompts.

    python -m experiments.routing_diag <laser-train overrides of the run> resume=<run dir>

(the run's own overrides, so the same world, features and selector are rebuilt, then loaded
from its last checkpoint). Where the two rank the RMs differently, the selector is not
following the model (stale estimates); where the model itself ranks a worse RM first, the
label-free signal is wrong there (experiments/results/refit/README.md, world 9).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from laser.spectral import rank_one_fit_batch


def per_domain(
    signal: Any, selector: Any, featurizer: Callable[[list], torch.Tensor], examples: Sequence
) -> dict[str, dict[str, list[float]]]:
    """{domain: {"model": c per RM, "selector": mean per RM}} (the signal's RM order), each
    averaged over the domain's examples' contexts."""
    out = {}
    for domain in dict.fromkeys(e.domain for e in examples):
        chosen = [e for e in examples if e.domain == domain]
        xs = featurizer(chosen).double()
        c = rank_one_fit_batch(signal.model.predict_many(xs)).mean(0)
        means = np.mean([selector.estimator.predict(x.numpy())[0] for x in xs], axis=0)
        out[domain] = {"model": c.tolist(), "selector": means.tolist()}
    return out


def markdown(names: list[str], table: dict[str, dict[str, list[float]]]) -> str:
    order = " / ".join(names)
    lines = [
        f"| domain | model's c: {order} | selector mean: {order} |",
        "|---|---|---|",
    ]
    for domain, row in table.items():
        model = " / ".join(f"{v:+.2f}" for v in row["model"])
        mean = " / ".join(f"{v:.2f}" for v in row["selector"])
        lines.append(f"| {domain} | {model} | {mean} |")
    return "\n".join(lines)


def main(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir

    from laser.build import build_loop
    from laser.cli import CONF_DIR
    from laser.logging import NullLogger

    if not any(o.startswith("resume=") for o in overrides):
        raise SystemExit("routing_diag reads a checkpointed run: pass resume=<its run dir>")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, "logger=none"])
    loop = build_loop(cfg, NullLogger())
    signal = loop.router.signal
    if not hasattr(signal, "model"):
        raise SystemExit(f"feedback {signal.name!r} has no pooled agreement model")
    print(f"step {loop.step_count}; RMs {signal.names}")
    table = per_domain(signal, loop.router.selector, loop.featurizer, loop.evaluator.examples)
    print(markdown(signal.names, table))


if __name__ == "__main__":
    main(sys.argv[1:])
