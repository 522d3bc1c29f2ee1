"""Sessions read from Redis kept in each process, and dropped the moment Redis says they changed:
server-assisted client-side caching (``CLIENT TRACKING`` in broadcast mode, Redis 6 and later).

A process holds one tracking connection of its own, watched by a background thread. Redis pushes
on it the name of every session key that any client (on any host) writes, deletes or lets
expire. Before a request is served from the cache, whatever Redis pushed so far is applied (one
``poll`` when nothing came). Redis sends an invalidation in the same pass as its answer to the
write that caused it, so a logout answered on one host has reached every other host before the
user's next request can.

The copy is used only while the connection is known to be alive: the thread sends a ``PING``
every ``PING_SECONDS``, and without an answer to one within ``STALE_SECONDS`` the copy is not
used; on any error the connection is dropped, the copy emptied, and reads go to Redis until a
new tracking connection is up.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

#: How often the watcher thread checks the tracking connection with a ``PING``.
PING_SECONDS = 0.5
#: How long after the last answer the copy is still trusted.
STALE_SECONDS = 2.0
#: How long the watcher waits before it tries a lost tracking connection again.
RECONNECT_SECONDS = 1.0
#: How long without a read before the watcher closes the tracking connection and stops (the
#: next read starts it again).
IDLE_SECONDS = 30.0
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
        self._socket: Any = None
        self._pid = 0  # the process whose watcher runs (0: none)
        self._used = 0.0
        self._epoch = 0  # counts invalidations: a read overtaken by one is not kept
        self._answered = 0.0  # when the tracking connection last answered a PING
        self._ping_sent = 0.0
        self._disabled = False
        self._outage = False  # a failed connection has been reported

    def get(self, key: str) -> bytes | None:
        """The value at ``key``: from this process's copy while Redis has not changed it."""
        with self._lock:
            self._used = time.monotonic()
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
        """Apply what Redis pushed; False when the copy cannot be trusted now (it is then
        unused, and emptied if the connection is gone). Called with the lock held."""
        if self._pid != os.getpid():  # a new process (forked), or no watcher: start afresh
            self._pid = os.getpid()
            self._drop()
            self._disabled = False
            connection = self._connect()  # here, once: the watcher takes over from now on
            if connection is not None:
                self._adopt(connection)
            threading.Thread(target=self._watch, args=(self._pid,), daemon=True).start()
        if self._connection is None:
            return False
        try:
            self._drain()
        except BaseException as exc:
            self._lose(exc)
            if not isinstance(exc, Exception):
                raise
            return False
        return time.monotonic() - self._answered < STALE_SECONDS

    def _drain(self) -> None:
        connection = self._connection
        if connection._sock is not self._socket:  # redis-py reconnected it: tracking is off
            raise ConnectionError("the tracking connection was replaced")
        master = getattr(self.client.connection_pool, "master_address", None)
        if master and tuple(master) != (connection.host, connection.port):
            raise ConnectionError("Sentinel names another master")
        if self._poll.poll(0):
            while connection.can_read(timeout=0):
                if connection.read_response(push_request=True) == b"PONG":
                    self._answered, self._ping_sent = time.monotonic(), 0.0

    def _watch(self, pid: int) -> None:
        """The process's watcher: connects, pings, and applies pushes between requests (so
        that Redis never has to hold them for an idle process)."""
        watched, waiting = None, select.poll()  # its own poll: requests use the other
        while True:
            with self._lock:
                if self._pid != pid or self._disabled:
                    return
                if time.monotonic() - self._used > IDLE_SECONDS:
                    self._retire()
                    return
                if self._connection is not None:
                    try:
                        self._drain()
                        self._ping()
                    except BaseException as exc:
                        self._lose(exc)
            if self._connection is None:
                connection = self._connect()
                with self._lock:
                    if connection is not None and self._pid == pid:
                        self._adopt(connection)
                        continue
                if connection is not None:
                    connection.disconnect()
                time.sleep(RECONNECT_SECONDS)
                continue
            if self._socket is not watched:
                watched, waiting = self._socket, select.poll()
                if watched is not None:
                    waiting.register(watched, select.POLLIN)
            waiting.poll(PING_SECONDS * 1000)

    def _ping(self) -> None:
        now = time.monotonic()
        if self._ping_sent and now - self._ping_sent > STALE_SECONDS:
            raise ConnectionError("no answer to PING")
        if not self._ping_sent and now - self._answered >= PING_SECONDS:
            self._connection.send_command("PING")
            self._ping_sent = now

    def _connect(self) -> Any:
        """A new tracking connection (no retries, short timeouts), or None."""
        pool = self.client.connection_pool
        options = {
            **pool.connection_kwargs,
            "protocol": 3,
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": STALE_SECONDS,
            "socket_connect_timeout": STALE_SECONDS,
        }
        connection = pool.connection_class(**options)
        try:
            connection.connect()
            parser = connection._parser
            if not hasattr(parser, "set_invalidation_push_handler"):
                raise ResponseError("this redis-py parser cannot handle invalidation pushes")
            parser.set_invalidation_push_handler(self._invalidated)
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
            connection.read_response()
        except ResponseError as exc:  # refused, and it will be again: no client cache
            connection.disconnect()
            self._disabled = True
            log.warning("session reads go to Redis: client tracking is unavailable (%s)", exc)
            return None
        except (RedisError, OSError) as exc:
            connection.disconnect()
            if not self._outage:  # once per outage, not once per try
                log.warning("session reads go to Redis: no tracking connection (%s)", exc)
            self._outage = True
            return None
        return connection

    def _adopt(self, connection: Any) -> None:
        if self._outage:
            log.info("the session tracking connection is back")
            self._outage = False
        self._drop()
        self._connection, self._socket = connection, connection._sock
        self._poll = select.poll()
        self._poll.register(self._socket, select.POLLIN)
        self._answered, self._ping_sent = time.monotonic(), 0.0

    def _retire(self) -> None:
        """Stop watching, unused for a while: the tracking connection is closed."""
        connection = self._connection
        self._drop()
        self._pid = 0
        if connection is not None:
            connection.disconnect()

    def _lose(self, exc: BaseException) -> None:
        """Forget the tracking connection and everything it vouched for."""
        log.warning("lost the session tracking connection; reads go to Redis: %r", exc)
        connection = self._connection
        self._drop()
        if connection is not None:
            connection.disconnect()

    def _drop(self) -> None:
        self._connection = self._poll = self._socket = None
        self._entries.clear()
        self._epoch += 1

    def _invalidated(self, message: list[Any]) -> None:
        """Redis's push: ``["invalidate", keys]``, or no keys for a flush."""
        self._epoch += 1
        keys = message[1]
        if keys is None:
            self._entries.clear()
            return
        for key in keys:
            if isinstance(key, bytes):
                key = key.decode(errors="surrogateescape")
            self._entries.pop(key, None)
