"""Token records in a cachelib cache: the embedded default store (a file cache, with file locks
shared by every worker process on the host), or an in-process cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from .base import RECORD_PREFIX, Backend, LockTimeout, thread_lock

#: Lock files of the file cache: keys share a fixed number of them, so they never pile up.
#: Records and index entries have separate files, since an index entry is locked while its
#: record's lock is held (a second lock on the same file would wait for itself).
LOCK_BUCKETS = 256
#: How often a waiting request tries a file lock again.
LOCK_POLL_SECONDS = 0.005


class CacheLibBackend(Backend):
    """A cachelib cache; shared when it is a file cache, process-local otherwise."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        path = getattr(cache, "_path", None)
        self.lock_dir = os.path.join(path, "locks") if isinstance(path, str) else None
        self.shared = self.lock_dir is not None
        self._thread_lock = threading.RLock()  # reentrant: an index entry is locked under a record

    def read(self, key: str) -> Any:
        return self.cache.get(key)

    def write(self, key: str, value: Any, ttl: int) -> None:
        self.cache.set(key, value, timeout=ttl)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    @contextlib.contextmanager
    def lock(self, key: str, seconds: float) -> Iterator[None]:
        if self.lock_dir is None:
            with thread_lock(self._thread_lock, key, seconds):
                yield
            return
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        deadline = time.monotonic() + seconds  # the real clock: waiting takes real time
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS
        kind = "record" if key.startswith(RECORD_PREFIX) else "index"
        with open(os.path.join(self.lock_dir, f"{kind}-{bucket:03d}"), "a") as file:
            while True:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(key) from None
                    time.sleep(LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)
