"""LASER."""
