"""Non-learning selectors, the baselines every learned selector must beat. Context-free.

- ``FixedArm(arm)``: always the same RM ("pick one RM and hope").
- ``RandomArm``: uniformly random RM per batch.
- ``RoundRobin``: RMs in turn, the LASeR paper's "sequential" baseline. The turn advances on
  ``update`` (after the played arm), so ``select``/``scores``/``probabilities`` are pure.
- ``DomainRouter`` / ``DomainTierRouter``: references that know each prompt's domain (the
  "oracle router"): its best RM, or a uniformly random one of its best tier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laser.bandits.base import (
    SelectorBase,
    check_arm,
    check_positive_int,
    check_reward,
    make_rng,
)


class _NonLearning(SelectorBase):
    """Keeps only the arm count; ``update`` validates its input and learns nothing."""

    def __init__(self, num_arms: int) -> None:
        self._num_arms = check_positive_int("num_arms", num_arms)

    @property
    def num_arms(self) -> int:
        return self._num_arms

    def probabilities(self, x: Any = None) -> np.ndarray:
        raise NotImplementedError

    def scores(self, x: Any = None) -> np.ndarray:
        """The selection probabilities: these rules have no other index."""
        return self.probabilities(x)

    def update(self, arm: int, x: Any, reward: float) -> None:
        check_arm(arm, self.num_arms)
        check_reward(reward)

    def add_arm(self) -> int:
        self._num_arms += 1
        return self._num_arms - 1

    def remove_arm(self, arm: int) -> None:
        self._check_removal(arm)
        self._num_arms -= 1

    def _hparams(self) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, Any]:
        return {"num_arms": self._num_arms}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._num_arms = check_positive_int("num_arms", state["num_arms"])


def _one_hot(k: int, n: int) -> np.ndarray:
    probs = np.zeros(n)
    probs[k] = 1.0
    return probs


def arm_by_name(name: str, names: list[str], where: str) -> int:
    """The index of RM ``name`` among ``names`` (``where`` says what they are, for the error):
    configs name FixedArm's arm by RM, the selector counts arms."""
    if name not in names:
        raise ValueError(f"bandit.arm={name!r} is not {where} {names}")
    return names.index(name)


class FixedArm(_NonLearning):
    """Always plays ``arm``. Removing an earlier arm shifts it down; removing it is an error."""

    def __init__(self, num_arms: int, arm: int = 0) -> None:
        super().__init__(num_arms)
        self.arm = check_arm(arm, self.num_arms)

    def select(self, x: Any = None) -> int:
        return self.arm

    def probabilities(self, x: Any = None) -> np.ndarray:
        return _one_hot(self.arm, self.num_arms)

    def remove_arm(self, arm: int) -> None:
        arm = self._check_removal(arm)
        if arm == self.arm:
            raise ValueError(f"cannot remove arm {arm}: it is the arm FixedArm always plays")
        super().remove_arm(arm)
        if arm < self.arm:
            self.arm -= 1

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "arm": self.arm}

    def _load_state(self, state: dict[str, Any]) -> None:
        arm = check_arm(state["arm"], check_positive_int("num_arms", state["num_arms"]))
        super()._load_state(state)
        self.arm = arm


class RandomArm(_NonLearning):
    """Uniformly random arm each call."""

    def __init__(self, num_arms: int, seed: int | None = None) -> None:
        super().__init__(num_arms)
        self.rng = make_rng(seed)

    def select(self, x: Any = None) -> int:
        return int(self.rng.integers(self.num_arms))

    def probabilities(self, x: Any = None) -> np.ndarray:
        return np.full(self.num_arms, 1.0 / self.num_arms)


class RoundRobin(_NonLearning):
    """Arms 0, 1, ..., K-1, 0, ... : after an update on arm a, the next turn is a + 1."""

    def __init__(self, num_arms: int) -> None:
        super().__init__(num_arms)
        self.next_arm = 0

    def select(self, x: Any = None) -> int:
        return self.next_arm

    def probabilities(self, x: Any = None) -> np.ndarray:
        return _one_hot(self.next_arm, self.num_arms)

    def update(self, arm: int, x: Any, reward: float) -> None:
        super().update(arm, x, reward)
        self.next_arm = (check_arm(arm, self.num_arms) + 1) % self.num_arms

    def remove_arm(self, arm: int) -> None:
        arm = check_arm(arm, self.num_arms)
        super().remove_arm(arm)
        if arm < self.next_arm:
            self.next_arm -= 1
        self.next_arm %= self.num_arms

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "next_arm": self.next_arm}

    def _load_state(self, state: dict[str, Any]) -> None:
        nxt = check_arm(state["next_arm"], check_positive_int("num_arms", state["num_arms"]))
        super()._load_state(state)
        self.next_arm = nxt


def domain_index(x: Any, domains: int, who: str) -> int:
    """The domain a finite domain one-hot context of length ``domains`` names."""
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.shape != (domains,) or not np.isfinite(x).all():
        raise ValueError(
            f"{who} needs a finite domain one-hot of length {domains}, got shape {x.shape}"
        )
    return int(np.argmax(x))


class DomainRouter(_NonLearning):
    """The "oracle router": ``routes[d]`` is the arm for domain ``d``, read from a domain
    one-hot context (``features=domain_onehot``). An upper reference for what routing can
    buy, not a competitor: it knows each prompt's domain and which RM is best there."""

    def __init__(self, num_arms: int, dim: int, routes: list[int]) -> None:
        super().__init__(num_arms)
        self.routes = [check_arm(a, self.num_arms) for a in routes]
        if len(self.routes) != check_positive_int("dim", dim):
            raise ValueError(f"routes has {len(self.routes)} entries for a context of dim {dim}")

    def select(self, x: Any = None) -> int:
        return self.routes[domain_index(x, len(self.routes), "DomainRouter")]

    def probabilities(self, x: Any = None) -> np.ndarray:
        return _one_hot(self.select(x), self.num_arms)

    def remove_arm(self, arm: int) -> None:
        arm = self._check_removal(arm)
        if arm in self.routes:
            raise ValueError(f"cannot remove arm {arm}: DomainRouter routes a domain to it")
        super().remove_arm(arm)
        self.routes = [a - 1 if a > arm else a for a in self.routes]

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "routes": list(self.routes)}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.routes = [check_arm(a, self.num_arms) for a in state["routes"]]


class DomainTierRouter(_NonLearning):
    """The oracle router's tier variant: each prompt goes to an RM drawn uniformly from
    ``tiers[d]``, the RMs within a margin of the best held-out accuracy on its domain ``d``
    (read from a domain one-hot context). A reference, not a competitor: it separates what
    perfect routing to the best tier buys from what *spreading* a domain's prompts over
    several equally good RMs buys (a policy trained on one RM learns that RM's errors; on
    several, only the errors they share: Coste et al. 2024, arXiv 2310.02743)."""

    def __init__(self, num_arms: int, dim: int, tiers: list[list[int]], seed: int | None = None):
        super().__init__(num_arms)
        self.tiers = [self._check_tier(t) for t in tiers]
        if len(self.tiers) != check_positive_int("dim", dim):
            raise ValueError(f"tiers has {len(self.tiers)} entries for a context of dim {dim}")
        self.rng = make_rng(seed)

    def _check_tier(self, tier: Any) -> list[int]:
        arms = [check_arm(a, self.num_arms) for a in tier]
        if not arms or len(set(arms)) != len(arms):
            raise ValueError(f"each tier must list distinct arms, at least one; got {list(tier)}")
        return arms

    def _tier(self, x: Any) -> list[int]:
        return self.tiers[domain_index(x, len(self.tiers), "DomainTierRouter")]

    def select(self, x: Any = None) -> int:
        tier = self._tier(x)
        return tier[int(self.rng.integers(len(tier)))]

    def probabilities(self, x: Any = None) -> np.ndarray:
        probs = np.zeros(self.num_arms)
        tier = self._tier(x)
        probs[tier] = 1.0 / len(tier)
        return probs

    def remove_arm(self, arm: int) -> None:
        arm = self._check_removal(arm)
        if any(tier == [arm] for tier in self.tiers):
            raise ValueError(f"cannot remove arm {arm}: it is the only RM of a domain's tier")
        super().remove_arm(arm)
        self.tiers = [[a - 1 if a > arm else a for a in t if a != arm] for t in self.tiers]

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "tiers": [list(t) for t in self.tiers]}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.tiers = [self._check_tier(t) for t in state["tiers"]]
