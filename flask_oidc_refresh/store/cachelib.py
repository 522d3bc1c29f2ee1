"""Token records beside a cachelib session cache: with the embedded default store (a file
cache) in a file cache of their own, with file locks, shared by every worker process on the
host; beside an in-process cache, in another in-process cache.

The records never share a cache with the sessions: a cache past its threshold evicts what
expires soonest, and no amount of session writes may evict a sign-in. Expired records are swept
at most once per ``SWEEP_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from cachelib import FileSystemCache, SimpleCache

from .. import clock
from .base import Backend, file_lock, thread_lock

#: How often (at most) a process removes the expired records, in the background.
SWEEP_SECONDS = 3600


class CacheLibBackend(Backend):
    """Records beside the cachelib cache ``sessions``; shared when that is a file cache."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        path = getattr(sessions, "_path", None)
        self.shared = isinstance(path, str)
        if isinstance(path, str):
            root = os.path.normpath(path) + "-oidc"
            self.cache: Any = FileSystemCache(os.path.join(root, "tokens"), threshold=0, mode=0o600)
            self.lock_dir: str | None = os.path.join(root, "locks")
        else:
            self.cache = SimpleCache(threshold=sys.maxsize)
            self.lock_dir = None
        self._thread_lock = threading.RLock()  # reentrant: an index entry is locked under a record
        self._swept = float("-inf")

    def read(self, key: str) -> Any:
        return self.cache.get(key)

    def write(self, key: str, value: Any, ttl: int) -> None:
        self.cache.set(key, value, timeout=ttl)
        if self.shared and clock.monotonic() - self._swept >= SWEEP_SECONDS:
            self._swept = clock.monotonic()
            threading.Thread(target=self.sweep, name="oidc-token-sweep", daemon=True).start()

    def sweep(self) -> None:
        """Remove the expired records (of a file cache; an in-process one expires on read)."""
        self.cache._remove_expired(clock.now())

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def delete_session(self, key: str) -> None:
        self.sessions.delete(key)

    @contextlib.contextmanager
    def lock(self, key: str, seconds: float) -> Iterator[None]:
        if self.lock_dir is None:
            with thread_lock(self._thread_lock, key, seconds):
                yield
            return
        with file_lock(self.lock_dir, key, seconds):
            yield
