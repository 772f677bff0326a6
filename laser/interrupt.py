"""Ctrl-C and SIGTERM (a cluster's preemption notice) without losing work.

``GracefulStop`` turns the first SIGINT/SIGTERM into a request: the loop finishes the step it
is in, writes a checkpoint of that consistent state and stops (``RunInterrupted``); a second
signal aborts at once, as Ctrl-C normally does. Saving mid-step instead would write a torn
state (the policy updated, the bandit not yet).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """``with GracefulStop() as stop: loop.run(stop=stop)``; ``stop()`` is True once asked."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second signal: stop now
            self._restore()
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(
            f"\n{name}: finishing the current step, then saving a checkpoint "
            "(send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulStop:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __exit__(self, *exc: Any) -> None:
        self._restore()
