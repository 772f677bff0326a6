"""Each RM's quality per domain, read from a world's report (the built-in world's own, or an
external world's ``external.report``): what the oracle router, ``bandit.arm=best`` and the
routing accuracy measure against."""

from __future__ import annotations

TIER = 0.05  # an RM within this of the best held-out accuracy on a domain is "best tier"


def best_rm_per_domain(world, names: list[str], domains: list[str]) -> list[str]:
    """For each domain, the RM among ``names`` with the best held-out pairwise accuracy there
    (the world's report): what the oracle router and routing accuracy measure against."""
    matrix = world.summary["rm_domain_accuracy"]
    missing = [n for n in names if n not in matrix]
    if missing:
        raise ValueError(f"the world's report has no accuracy for RM(s) {missing}")
    return [max(names, key=lambda n: matrix[n][d]) for d in domains]


def best_tier_per_domain(
    world, names: list[str], domains: list[str], margin: float = TIER
) -> list[list[str]]:
    """For each domain, the RMs among ``names`` within ``margin`` of the best held-out pairwise
    accuracy there, in pool order: the tier oracle router's choices, and what best-tier
    routing accuracy counts."""
    matrix = world.summary["rm_domain_accuracy"]
    best = best_rm_per_domain(world, names, domains)
    return [
        [n for n in names if matrix[n][d] >= matrix[b][d] - margin]
        for b, d in zip(best, domains, strict=True)
    ]


def best_overall(world, names: list[str]) -> str:
    """The RM with the best mean held-out pairwise accuracy over the world's domains: the one
    a user would pick up front by its benchmark score (``bandit.arm=best``)."""
    matrix = world.summary.get("rm_domain_accuracy") or {}
    missing = [n for n in names if n not in matrix]
    if missing:
        raise ValueError(f"bandit.arm=best needs the world's report; it has no RM(s) {missing}")
    return max(names, key=lambda n: sum(matrix[n].values()) / len(matrix[n]))


def _oracle_domains(featurizer) -> list[str]:
    domains = getattr(featurizer, "domains", None)
    if domains is None:
        raise ValueError("the oracle router needs features=domain_onehot")
    return domains


def oracle_routes(world, names: list[str], featurizer) -> list[int]:
    """The oracle router's arm per domain (it reads the domain from its one-hot context)."""
    return [names.index(n) for n in best_rm_per_domain(world, names, _oracle_domains(featurizer))]


def oracle_tiers(world, names: list[str], featurizer) -> list[list[int]]:
    """The tier oracle router's arms per domain: every RM within TIER of the domain's best."""
    tiers = best_tier_per_domain(world, names, _oracle_domains(featurizer))
    return [[names.index(n) for n in tier] for tier in tiers]
