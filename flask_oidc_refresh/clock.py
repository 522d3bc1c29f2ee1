"""The package's clock: every deadline and cache age is read here, so tests move time in one
place."""

from __future__ import annotations

import time


def now() -> float:
    """Wall-clock time (a Unix time), for deadlines that are stored or sent."""
    return time.time()


def monotonic() -> float:
    """Monotonic time, for the ages of what a process caches."""
    return time.monotonic()
