"""Sessions read from Redis kept in each process, and dropped the moment Redis says they changed:
server-assisted client-side caching (``CLIENT TRACKING`` in broadcast mode, Redis 6 and later).

A process holds one tracking connection of its own. Redis pushes on it the name of every
session key that any client (on any host) writes, deletes or lets expire. Before a request is
served from the cache, whatever Redis pushed so far is applied (one ``poll`` when nothing came).
Redis sends an invalidation in the same pass as its answer to the write that caused it, so a
logout answered on one host has reached every other host before the user's next request can.

Whenever the tracking connection is down, the cache is emptied and reads go to Redis, so a lost
invalidation can never leave a stale session behind; a ``PING`` every ``PING_SECONDS`` tells a
silent connection from a live one.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

from redis.exceptions import RedisError

#: How often the tracking connection is checked with a ``PING``; no answer within as long, and
#: it counts as lost.
PING_SECONDS = 5.0
#: How long a process waits before it tries a lost tracking connection again.
RECONNECT_SECONDS = 1.0
#: How many sessions' bytes a process keeps.
CACHE_ENTRIES = 50_000
log = logging.getLogger(__name__)


class TrackedReads:
    """Cached ``GET`` of the keys under ``prefix`` through ``client`` (a ``redis.Redis``)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._entries: dict[str, tuple[float, bytes]] = {}  # key: (expires, value)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._poll: Any = None
        self._pid = 0
        self._epoch = 0  # counts invalidations: a read overtaken by one is not kept
        self._retry_at = 0.0
        self._ping_at = 0.0
        self._ping_sent = 0.0

    def get(self, key: str) -> bytes | None:
        """The value at ``key``: from this process's copy while Redis has not changed it."""
        with self._lock:
            tracking = self._apply_invalidations()
            if tracking:
                entry = self._entries.get(key)
                if entry is not None and entry[0] > time.monotonic():
                    return entry[1]
            epoch = self._epoch
        if not tracking:
            return self.client.get(key)  # type: ignore[no-any-return]
        pipe = self.client.pipeline(transaction=False)
        value, ttl_ms = pipe.get(key).pttl(key).execute()
        with self._lock:
            if (
                value is not None
                and ttl_ms > 0
                and self._apply_invalidations()
                and self._epoch == epoch
            ):
                if len(self._entries) >= CACHE_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (time.monotonic() + ttl_ms / 1000, value)
        return value  # type: ignore[no-any-return]

    def forget(self, key: str) -> None:
        """Drop ``key`` now: this process wrote or deleted it (Redis's push follows)."""
        with self._lock:
            self._entries.pop(key, None)
            self._epoch += 1

    def _apply_invalidations(self) -> bool:
        """Apply what Redis pushed; False while there is no tracking connection (the cache is
        then empty and unused)."""
        if self._pid != os.getpid():  # a forked worker: its parent's connection is not its own
            self._pid = os.getpid()
            self._connection = self._poll = None
            self._entries.clear()
            self._epoch += 1
        if self._connection is None and not self._connect():
            return False
        try:
            if self._poll.poll(0):
                while self._connection.can_read(timeout=0):
                    if self._connection.read_response(push_request=True) == b"PONG":
                        self._ping_sent = 0.0
            now = time.monotonic()
            if self._ping_sent and now - self._ping_sent > PING_SECONDS:
                raise ConnectionError("no answer to PING")
            if not self._ping_sent and now >= self._ping_at:
                self._connection.send_command("PING")
                self._ping_sent, self._ping_at = now, now + PING_SECONDS
        except (RedisError, OSError) as exc:
            self._lose(exc)
            return False
        return True

    def _connect(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        pool = self.client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 3})
        try:
            connection.connect()
            connection._parser.set_invalidation_push_handler(self._invalidated)
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
            if connection.read_response() != b"OK":
                raise RedisError("CLIENT TRACKING was refused")
        except (RedisError, OSError) as exc:
            connection.disconnect()
            self._retry_at = time.monotonic() + RECONNECT_SECONDS
            log.warning("session reads go to Redis: no tracking connection (%s)", exc)
            return False
        self._connection = connection
        self._poll = select.poll()
        self._poll.register(connection._sock, select.POLLIN)
        self._ping_sent, self._ping_at = 0.0, time.monotonic() + PING_SECONDS
        return True

    def _lose(self, exc: Exception) -> None:
        """Forget the tracking connection and everything it vouched for."""
        log.warning("lost the session tracking connection; reads go to Redis: %s", exc)
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = self._poll = None
        self._entries.clear()
        self._epoch += 1
        self._retry_at = time.monotonic() + RECONNECT_SECONDS

    def _invalidated(self, message: list[Any]) -> None:
        """Redis's push: ``["invalidate", keys]``, or no keys for a flush."""
        keys = message[1]
        if keys is None:
            self._entries.clear()
        else:
            for key in keys:
                self._entries.pop(key.decode() if isinstance(key, bytes) else key, None)
        self._epoch += 1
