"""Token records in Redis, with Redis locks: shared by every process on every host."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from .base import Backend, LockTimeout

#: How often a waiting request tries a Redis lock again.
LOCK_POLL_SECONDS = 0.005
log = logging.getLogger(__name__)


class RedisBackend(Backend):
    """The Redis client of Flask-Session's Redis backend; values are stored as JSON."""

    shared = True

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, key: str) -> Any:
        data = self.client.get(key)
        return None if data is None else json.loads(data)

    def write(self, key: str, value: Any, ttl: int) -> None:
        self.client.set(key, json.dumps(value), ex=ttl)

    def delete(self, key: str) -> None:
        self.client.delete(key)

    @contextlib.contextmanager
    def lock(self, key: str, seconds: float) -> Iterator[None]:
        lock = self.client.lock(
            f"{key}:lock", timeout=seconds, blocking_timeout=seconds, sleep=LOCK_POLL_SECONDS
        )
        if not lock.acquire():
            raise LockTimeout(key)
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception as exc:  # it expired while held: another request may have renewed
                log.warning("a lock expired before it was released: %s", exc)
