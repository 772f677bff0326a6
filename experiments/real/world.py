"""The real-model world as configured in conf/experiment/real_smollm2.yaml (one source)."""

from __future__ import annotations

from laser.build import typed
from laser.cli import compose_train
from laser.world.external import ExternalWorld

EXPERIMENT = "real_smollm2"


def real_world(*overrides: str) -> ExternalWorld:
    """The ExternalWorld of the experiment (models load lazily, on first use)."""
    cfg = typed(compose_train([f"experiment={EXPERIMENT}", *overrides]))
    return ExternalWorld(cfg.external, cfg.cache_dir)
