"""Runnable comparisons of LASER against baselines (``laser-compare``)."""
