"""The RM pool as the selector's arms: names by arm index, failure counting, quarantine, and
reconciliation of the arms with the pool on resume.

Arm ``k`` of the selector is ``names[k]``. An RM that fails ``quarantine_after`` times in a
row leaves the pool (its arm is removed, later arms shift down, like ``list.pop``); on resume
RMs added to the pool since get fresh arms and removed ones are dropped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tqdm.auto import tqdm

from laser.bandits.base import Bandit
from laser.distributed import Distributed
from laser.rewards.base import RewardModel, RewardModelError


class Arms:
    """``rms`` (name -> RewardModel, every RM ever in the run), ``names`` (the selector's
    arms, in order), ``failures`` (consecutive, per RM), ``quarantined`` and ``picks``
    (prompts routed to each RM so far)."""

    def __init__(self, rms: dict[str, RewardModel], quarantine_after: int = 3) -> None:
        if not rms:
            raise ValueError("the pool needs at least one reward model")
        if quarantine_after < 1:
            raise ValueError(f"quarantine_after must be >= 1, got {quarantine_after}")
        self.rms, self.names = dict(rms), list(rms)
        self.quarantine_after = quarantine_after
        self.failures: Counter[str] = Counter()
        self.quarantined: list[str] = []
        self.picks: Counter[str] = Counter()

    def succeeded(self, name: str) -> None:
        self.failures[name] = 0

    def failed(self, name: str, error: Exception, step: int) -> None:
        self.failures[name] += 1
        tqdm.write(
            f"step {step}: {error} (failure {self.failures[name]} of "
            f"{self.quarantine_after} before quarantine)"
        )

    def quarantine_failing(self, selector: Bandit, dist: Distributed) -> None:
        """Remove RMs that failed too often in a row (on any rank: all ranks remove alike)."""
        local = [n for n in self.names if self.failures[n] >= self.quarantine_after]
        failing = {n for part in dist.gather(local) for n in part}
        for name in [n for n in self.names if n in failing]:
            if len(self.names) == 1:
                raise RewardModelError(
                    f"reward model {name!r} failed {self.failures[name]} "
                    "times in a row and it is the last one in the pool"
                )
            try:
                selector.remove_arm(self.names.index(name))
            except ValueError as exc:  # e.g. FixedArm cannot lose the arm it always plays
                raise RewardModelError(
                    f"reward model {name!r} failed {self.failures[name]} "
                    f"times in a row and cannot be quarantined: {exc}"
                ) from exc
            self.names.remove(name)
            self.quarantined.append(name)
            tqdm.write(
                f"quarantined reward model {name!r} after {self.failures[name]} "
                "consecutive failures; training continues without it"
            )

    def forward_samples(self) -> int:
        """RM forward samples spent by this process's RM objects."""
        return sum(getattr(rm, "forward_samples", 0) for rm in self.rms.values())

    def state_dict(self) -> dict[str, Any]:
        return {
            "arms": list(self.names),
            "quarantined": list(self.quarantined),
            "failures": dict(self.failures),
            "picks": dict(self.picks),
        }

    def load_state_dict(self, state: dict[str, Any], selector: Bandit) -> None:
        """Restore the counters and reconcile the (already restored) selector's arms with the
        pool: RMs added since get fresh arms, removed ones are dropped."""
        self.failures = Counter({k: int(v) for k, v in state["failures"].items()})
        self.picks = Counter({k: int(v) for k, v in state["picks"].items()})
        self.quarantined = list(state["quarantined"])
        names = list(state["arms"])
        for name in [n for n in names if n not in self.rms]:
            selector.remove_arm(names.index(name))
            names.remove(name)
            tqdm.write(f"reward model {name!r} is no longer in the pool: its arm is dropped")
        for name in [n for n in self.rms if n not in names and n not in self.quarantined]:
            selector.add_arm()
            names.append(name)
            tqdm.write(f"reward model {name!r} joined the pool: new arm, fresh statistics")
        self.names = names
