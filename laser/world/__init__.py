"""The built-in world: a task suite, an SFT policy and a pool of specialised reward models."""

from laser.world.config import PrepareConfig, RMSpec, SFTConfig, TaskConfig, WorldConfig
from laser.world.prepare import World, build_world, prepare_world

__all__ = [
    "PrepareConfig",
    "RMSpec",
    "SFTConfig",
    "TaskConfig",
    "World",
    "WorldConfig",
    "build_world",
    "prepare_world",
]
