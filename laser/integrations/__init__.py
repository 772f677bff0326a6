"""Adapters that put LASER's learned RM selection into other trainers (TRL)."""

from laser.integrations.trl import LaserCallback, LaserRewardSelector

__all__ = ["LaserCallback", "LaserRewardSelector"]
